"""Read a stored results directory into one normalised table plus its environment.

The harness writes ``results.jsonl`` (typed) and ``results.csv`` (the same rows as text); we prefer
the JSONL and fall back to the CSV. Everything downstream (the report model, plots, the run-to-run
comparison) works on what ``load_run`` returns and never touches the files again, so reports are a
pure function of the directory.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from ..bench.schema import ENVIRONMENT_JSON, RESULTS_CSV, RESULTS_JSONL, STATUS_OK, STATUSES

# A measurement is identified by these columns; a run that re-measured a key (an appended re-run)
# keeps its last row, which is the newest.
CELL_COLUMNS = ("config", "batch", "seq_len", "hidden", "layer", "residual", "mode", "dtype")
ROW_KEY_COLUMNS = CELL_COLUMNS + ("provider",)

# The columns the report cannot do without: without them no row can be placed or judged.
REQUIRED_COLUMNS = ROW_KEY_COLUMNS + ("status", "median_ms")

INTEGER_COLUMNS = ("batch", "seq_len", "hidden", "rows", "warmup", "iters")
FLOAT_COLUMNS = (
    "median_ms", "p20_ms", "p80_ms", "min_ms", "max_ms", "peak_memory_mb", "ideal_bytes", "gbps",
    "pct_of_copy", "pct_of_spec", "max_rel_error", "tolerance", "copy_bandwidth_gbps", "spec_bandwidth_gbps",
)
BOOL_COLUMNS = ("residual", "flush_l2", "cuda_graph")
TEXT_COLUMNS = ("provider", "backend", "dispatch_reason", "status", "reason", "config", "layer", "mode", "dtype")


@dataclass
class LoadedRun:
    """The rows of one run (one per measurement key) and its environment.json (may be empty)."""

    results_dir: Path
    rows: pd.DataFrame
    environment: dict[str, Any]
    source_file: str  # which results file was read
    notes: list[str] = field(default_factory=list)  # things the reader tolerated, shown in the report


def _parse_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "", "nan", "none"):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _read_jsonl(path: Path, notes: list[str]) -> list[dict]:
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            # The harness appends each row as it completes, so a run killed mid-write leaves a torn
            # last line; that one is dropped (and said so). A torn line elsewhere means a damaged file.
            if number == len(lines):
                notes.append(f"{path.name}: ignored an incomplete last line {number} ({exc.msg}).")
                continue
            raise ValueError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
    return records


def _normalise(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; expected the columns of trinix_bench.bench.schema.ROW_COLUMNS")
    for column in ROW_KEY_COLUMNS + ("status",):
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            raise ValueError(f"{where}: {int(empty.sum())} row(s) have no {column!r}; every row needs {list(ROW_KEY_COLUMNS)}")
    frame = frame.copy()
    for column in FLOAT_COLUMNS + INTEGER_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in INTEGER_COLUMNS:
        if column in frame.columns and frame[column].notna().all():
            frame[column] = frame[column].astype("int64")
    for column in BOOL_COLUMNS:
        if column in frame.columns:
            try:
                frame[column] = frame[column].map(_parse_bool).astype(bool)
            except ValueError as exc:
                raise ValueError(f"{where}: column {column!r}: {exc}") from None
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].fillna("").astype(str)
    if "rows" not in frame.columns or frame["rows"].isna().any():
        frame["rows"] = frame["batch"] * frame["seq_len"]
    unknown = sorted(set(frame["status"]) - set(STATUSES))
    if unknown:
        raise ValueError(f"{where}: unknown status value(s) {unknown}; expected one of {list(STATUSES)}")
    bad_ok = frame[(frame["status"] == STATUS_OK) & ~(frame["median_ms"] > 0)]
    if len(bad_ok):
        raise ValueError(f"{where}: {len(bad_ok)} row(s) with status 'ok' lack a positive median_ms")
    frame["elements"] = frame["rows"] * frame["hidden"]
    return frame.drop_duplicates(subset=list(ROW_KEY_COLUMNS), keep="last").reset_index(drop=True)


def load_run(results_dir: Path, argument: str = "results_dir") -> LoadedRun:
    """Load ``results_dir``; ``argument`` names the caller's parameter in error messages.

    Raises ValueError for a missing directory, no results file, an unreadable file or no rows.
    """
    if results_dir is None:
        raise ValueError(f"{argument}: expected a results directory, got None")
    directory = Path(results_dir)
    if not directory.is_dir():
        raise ValueError(f"{argument}: expected an existing results directory, got {str(directory)!r}")
    notes: list[str] = []
    jsonl, csv = directory / RESULTS_JSONL, directory / RESULTS_CSV
    if jsonl.is_file():
        frame, source = pd.DataFrame.from_records(_read_jsonl(jsonl, notes)), RESULTS_JSONL
    elif csv.is_file():
        try:
            frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            frame = pd.DataFrame()
        source = RESULTS_CSV
    else:
        raise ValueError(f"{argument}: expected {RESULTS_JSONL} or {RESULTS_CSV} in {str(directory)!r}, found neither")
    if frame.empty:
        raise ValueError(f"{argument}: expected at least one result row in {str(directory / source)!r}, found none")
    rows = _normalise(frame, f"{argument}: {directory / source}")
    return LoadedRun(directory, rows, _read_environment(directory, argument), source, notes)


def _read_environment(directory: Path, argument: str) -> dict[str, Any]:
    path = directory / ENVIRONMENT_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{argument}: {path} is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{argument}: {path} must hold a JSON object, got {type(data).__name__}")
    return data


def environment_value(run: LoadedRun, name: str, row_column: Optional[str] = None) -> Any:
    """A run-level fact: environment.json's ``name``, else the rows' ``row_column`` values, else
    environment.json's ``settings[name]`` (what was asked for, which the rows may refine: an L2
    flush requested on a CPU run is not applied, and the rows say so).

    Several distinct row values are joined with ", " (e.g. the dtypes of a run). Returns None when
    none has a non-empty value; the caller decides whether that is fatal.
    """
    value = run.environment.get(name)
    if _present(value):
        return value
    if row_column is not None and row_column in run.rows.columns:
        values = [v.item() if hasattr(v, "item") else v for v in run.rows[row_column].unique()]
        values = [v for v in values if _present(v)]
        if len(values) == 1:
            return values[0]
        if len(values) > 1:
            return ", ".join(str(v) for v in sorted(values, key=str))
    settings = run.environment.get("settings")
    if isinstance(settings, dict) and _present(settings.get(name)):
        return settings[name]
    return None


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, str) and not value.strip():
        return False
    return True
