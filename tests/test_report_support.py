"""Shared helpers for the report tests (no tests here): the committed fixture and edited copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Optional

FIXTURE = Path(__file__).parent / "fixtures" / "results_cpu_quick"


def fixture_rows(directory: Path = FIXTURE) -> list[dict]:
    """The rows of a results.jsonl, read with plain json (not through the report's loader)."""
    return [json.loads(line) for line in (directory / "results.jsonl").read_text().splitlines() if line.strip()]


def copy_fixture(tmp_path: Path, change: Optional[Callable[[list[dict]], None]] = None, name: str = "copy") -> Path:
    """A copy of the fixture whose rows went through ``change(rows)`` (edited in place).

    results.csv is dropped from an edited copy so the edited JSONL is its only results file.
    """
    copy = tmp_path / name
    shutil.copytree(FIXTURE, copy)
    if change is not None:
        (copy / "results.csv").unlink(missing_ok=True)
        rows = fixture_rows(copy)
        change(rows)
        (copy / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return copy


def first_ok(rows: list[dict], provider: str) -> dict:
    return next(r for r in rows if r["status"] == "ok" and r["provider"] == provider)
