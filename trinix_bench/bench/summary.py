"""The console summary printed after a run: a pure function of the rows.

Measured rows (ok, FAILED, OOM, error, skipped) get one line each; unavailable rows are folded into
one line per (provider, reason) so absent peers do not bury the results.
"""

from __future__ import annotations

from collections import Counter

from .schema import STATUS_OK, STATUS_UNAVAILABLE

_COLUMNS = (("config", 10), ("layer", 14), ("mode", 4), ("dtype", 5), ("provider", 20),
            ("median ms", 10), ("GB/s", 9), ("% copy", 7), ("status", 11))


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _cells(row: dict) -> tuple:
    layer = f"{row['layer']}+add" if row["residual"] else row["layer"]
    provider = row["provider"]
    if provider == "trinix" and row.get("backend"):
        provider = f"trinix[{row['backend']}]"
    status = row["status"]
    if status != STATUS_OK and row.get("reason"):
        status = f"{status}: {row['reason'][:70]}"
    return (row["config"], layer, row["mode"], row["dtype"], provider,
            _num(row.get("median_ms"), ".4f"), _num(row.get("gbps"), ".1f"), _num(row.get("pct_of_copy"), ".1f"),
            status)


def format_summary(rows: list) -> str:
    shown = [r for r in rows if r["status"] != STATUS_UNAVAILABLE]
    lines = ["  ".join(f"{name:<{width}}" for name, width in _COLUMNS).rstrip()]
    for row in shown:
        lines.append("  ".join(f"{cell:<{width}}" for cell, (_, width) in zip(_cells(row), _COLUMNS)).rstrip())
    folded = Counter((r["provider"], r["reason"]) for r in rows if r["status"] == STATUS_UNAVAILABLE)
    for (provider, reason), count in folded.items():
        lines.append(f"unavailable ({count} rows): {provider}: {reason}")
    counts = Counter(r["status"] for r in rows)
    lines.append("rows: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return "\n".join(lines)
