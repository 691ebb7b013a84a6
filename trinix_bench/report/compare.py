"""Run-to-run comparison: per-row median changes between two results directories, for CI.

Rows are matched on ROW_KEY_COLUMNS (config, batch, seq_len, hidden, layer, residual, mode, dtype,
provider). For a row that is ok in both runs, change = (new median / old median - 1) * 100 %.
The comparison *regresses* when any matched row is slower by more than ``threshold_pct`` (change >
threshold), or when a row that was ok is now FAILED, OOM or error. Rows present in only one run, and
other status changes (now unavailable or skipped, or fixed), are listed but do not regress.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from ..bench.schema import STATUS_ERROR, STATUS_FAILED, STATUS_OK, STATUS_OOM
from . import format as fmt
from .cells import op_label
from .load import ROW_KEY_COLUMNS, LoadedRun, environment_value, load_run
from .render import render_template

COMPARE_TEMPLATE = "compare.md.j2"
BROKEN_STATUSES = (STATUS_FAILED, STATUS_OOM, STATUS_ERROR)  # ok -> one of these is a regression
KEY_HEADINGS = ("Config", "Shape (b×s×h)", "Layer", "Residual", "Mode", "Dtype", "Provider")
CHANGE_COLUMNS = KEY_HEADINGS + ("Old ms", "New ms", "Change", "Verdict")
STATUS_COLUMNS = KEY_HEADINGS + ("Old status", "New status", "Reason now")
ONLY_COLUMNS = KEY_HEADINGS + ("Status",)


def _checked_threshold(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"threshold_pct: expected a finite percentage >= 0, got {value!r}")
    return float(value)


def _rows_by_key(run: LoadedRun) -> dict[tuple, dict[str, Any]]:
    return {tuple(r[c] for c in ROW_KEY_COLUMNS): r for r in run.rows.to_dict("records")}


def _key_cells(record: dict[str, Any]) -> list[str]:
    shape = f"{record['batch']}×{record['seq_len']}×{record['hidden']}"
    return [str(record["config"]), shape, str(record["layer"]), "yes" if record["residual"] else "no",
            str(record["mode"]), str(record["dtype"]), str(record["provider"])]


def _run_facts(run: LoadedRun) -> dict[str, str]:
    def fact(name: str) -> str:
        value = environment_value(run, name, name)
        return str(value) if value is not None else "unknown"

    return {"path": str(run.results_dir), "run_id": fact("run_id"), "gpu": fact("gpu_name"), "git_sha": fact("git_sha")}


def change_pct(old_ms: float, new_ms: float) -> float:
    """(new / old - 1) * 100: positive means the new run is slower."""
    return (new_ms / old_ms - 1.0) * 100.0


def compare_runs(old_dir: Path, new_dir: Path, threshold_pct: float = 5.0) -> tuple[str, bool]:
    """Markdown report of per-row median changes from ``old_dir`` to ``new_dir``, and whether it regressed.

    Raises ValueError for a bad directory (naming old_dir or new_dir) or a negative threshold.
    """
    threshold = _checked_threshold(threshold_pct)
    old, new = load_run(old_dir, "old_dir"), load_run(new_dir, "new_dir")
    old_rows, new_rows = _rows_by_key(old), _rows_by_key(new)
    changes, broken, other_status = [], [], []
    for key in old_rows.keys() & new_rows.keys():
        before, after = old_rows[key], new_rows[key]
        if before["status"] == STATUS_OK and after["status"] == STATUS_OK:
            changes.append((change_pct(before["median_ms"], after["median_ms"]), before, after))
        elif before["status"] != after["status"]:
            target = broken if before["status"] == STATUS_OK and after["status"] in BROKEN_STATUSES else other_status
            target.append(_key_cells(after) + [before["status"], after["status"], fmt.clean_reason(after.get("reason") or "-")])
    changes.sort(key=lambda item: (-item[0], _key_cells(item[1])))
    slower = [c for c in changes if c[0] > threshold]
    faster = [c for c in changes if c[0] < -threshold]
    regressed = bool(slower or broken)
    model = {
        "threshold": f"{threshold:g}%",
        "regressed": regressed,
        "old": _run_facts(old),
        "new": _run_facts(new),
        "counts": {"matched": len(changes), "slower": len(slower), "faster": len(faster), "broken": len(broken)},
        "worst": _worst_text(changes),
        "changes": fmt.table(CHANGE_COLUMNS, [_change_row(c, threshold) for c in changes]),
        "broken": fmt.table(STATUS_COLUMNS, sorted(broken)),
        "other_status": fmt.table(STATUS_COLUMNS, sorted(other_status)),
        "only_old": _only_table(old_rows, new_rows),
        "only_new": _only_table(new_rows, old_rows),
    }
    return render_template(COMPARE_TEMPLATE, model), regressed


def _only_table(present: dict, absent: dict) -> dict[str, Any]:
    rows = sorted(_key_cells(present[k]) + [present[k]["status"]] for k in present.keys() - absent.keys())
    return fmt.table(ONLY_COLUMNS, rows)


def _change_row(change: tuple, threshold: float) -> list[str]:
    pct, before, after = change
    if pct > threshold:
        verdict = "REGRESSED"
    elif pct < -threshold:
        verdict = "improved"
    else:
        verdict = f"within ±{threshold:g}%"
    return _key_cells(after) + [fmt.fmt_ms(before["median_ms"]), fmt.fmt_ms(after["median_ms"]),
                                fmt.fmt_change_pct(pct), verdict]


def _worst_text(changes: list[tuple]) -> Optional[str]:
    if not changes:
        return None
    pct, _, after = changes[0]
    shape = f"{after['batch']}×{after['seq_len']}×{after['hidden']}"
    return (f"{fmt.fmt_change_pct(pct)} ({after['provider']}, {after['config']} {shape} "
            f"{op_label(after['layer'], after['residual'])} {after['mode']} {after['dtype']})")
