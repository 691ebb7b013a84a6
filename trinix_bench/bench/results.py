"""Writing and reading the stored results (the contract is schema.py).

Each row is appended to results.jsonl and results.csv and both files are flushed before the next
measurement starts, so a crash, an OOM or Ctrl-C loses nothing already measured. JSON Lines keeps
types (bools, nulls, floats including Infinity/NaN as Python's json writes them); the CSV is the
same rows for spreadsheets and pandas, with empty cells for nulls.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

from .schema import ENVIRONMENT_JSON, MEASUREMENT_COLUMNS, RESULTS_CSV, RESULTS_JSONL, ROW_COLUMNS


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_environment(directory: Path, document: dict) -> Path:
    path = Path(directory) / ENVIRONMENT_JSON
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path


class ResultWriter:
    """Appends complete rows (environment + measurement) to results.jsonl and results.csv."""

    def __init__(self, directory: Path, env_row: dict):
        directory = Path(directory)
        self.env_row = dict(env_row)
        new_csv = not (directory / RESULTS_CSV).exists()
        self._jsonl = open(directory / RESULTS_JSONL, "a")
        self._csv_file = open(directory / RESULTS_CSV, "a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=ROW_COLUMNS)
        if new_csv:
            self._csv.writeheader()
            self._csv_file.flush()

    def write(self, measurement: dict) -> dict:
        unknown = sorted(set(measurement) - set(MEASUREMENT_COLUMNS))
        if unknown:
            raise ValueError(f"not schema columns: {unknown}")
        row = dict.fromkeys(ROW_COLUMNS)
        row.update(self.env_row)
        row.update(measurement)
        row["timestamp"] = utc_now()
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        self._csv.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._csv_file.flush()
        return row

    def close(self) -> None:
        self._jsonl.close()
        self._csv_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_rows(directory: Path) -> list[dict]:
    """Every row of results.jsonl, in the order written (a torn last line from a kill is skipped)."""
    rows = []
    with open(Path(directory) / RESULTS_JSONL) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def load_environment(directory: Path) -> dict:
    return json.loads((Path(directory) / ENVIRONMENT_JSON).read_text())
