"""Merge several stored runs into one results directory for a single report.

    PYTHONPATH=. python scripts/merge_runs.py OUT_DIR RUN_DIR [RUN_DIR ...]

Rows are keyed by their cell (config, batch, seq_len, hidden, layer, residual, mode, dtype,
provider); a later RUN_DIR's row replaces an earlier one with the same key, so a completion run of
an interrupted sweep supersedes its partial rows. Each row keeps its own environment columns
(run_id, git SHA, ...); environment.json is the first run's, with the merged run ids added.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from trinix_bench.bench.results import load_environment, load_rows
from trinix_bench.bench.schema import ENVIRONMENT_JSON, RESULTS_CSV, RESULTS_JSONL, ROW_COLUMNS

CELL_KEY = ("config", "batch", "seq_len", "hidden", "layer", "residual", "mode", "dtype", "provider")


def merge(out_dir: Path, run_dirs: list[Path]) -> int:
    merged: dict[tuple, dict] = {}
    for run in run_dirs:
        for row in load_rows(run):
            merged[tuple(row.get(k) for k in CELL_KEY)] = row
    out_dir.mkdir(parents=True, exist_ok=False)
    environments = [load_environment(run) for run in run_dirs]
    environment = dict(environments[0])
    environment["merged_from"] = [env.get("run_id", run.name) for env, run in zip(environments, run_dirs)]
    # Every run's command line, in order, so the report's Reproduce section covers the whole sweep.
    environment["command"] = "\n".join(dict.fromkeys(env.get("command", "") for env in environments))
    (out_dir / ENVIRONMENT_JSON).write_text(json.dumps(environment, indent=2) + "\n")
    with open(out_dir / RESULTS_JSONL, "w") as jsonl, open(out_dir / RESULTS_CSV, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in merged.values():
            jsonl.write(json.dumps(row) + "\n")
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in ROW_COLUMNS})
    return len(merged)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        raise SystemExit(2)
    print(merge(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]), "rows")
