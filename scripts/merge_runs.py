"""Merge several stored runs into one results directory for a single report.

    PYTHONPATH=. python scripts/merge_runs.py OUT_DIR RUN_DIR [RUN_DIR ...]

Rows are keyed by their cell (config, batch, seq_len, hidden, layer, residual, mode, dtype,
provider); a later RUN_DIR's row replaces an earlier one with the same key, so a completion run of
an interrupted sweep supersedes its partial rows. Each row keeps its own environment columns
(run_id, git SHA, ...); environment.json is the first run's, with the merged run ids added (a merged
run's own list flattened in) and, where the rows kept differ in run id or git SHA, every value.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from trinix_bench.bench.results import load_environment, load_rows
from trinix_bench.bench.schema import ENVIRONMENT_JSON, RESULTS_CSV, RESULTS_JSONL, ROW_COLUMNS

CELL_KEY = ("config", "batch", "seq_len", "hidden", "layer", "residual", "mode", "dtype", "provider")
ROW_LEVEL_FACTS = ("run_id", "git_sha")


def merge(out_dir: Path, run_dirs: list[Path]) -> int:
    merged: dict[tuple, dict] = {}
    source: dict[tuple, int] = {}  # cell -> index of the run its kept row came from
    for index, run in enumerate(run_dirs):
        for row in load_rows(run):
            key = tuple(row.get(k) for k in CELL_KEY)
            merged[key], source[key] = row, index
    out_dir.mkdir(parents=True, exist_ok=False)
    environments = [load_environment(run) for run in run_dirs]
    environment = dict(environments[0])
    # A run that is itself a merge contributes the runs it was merged from.
    environment["merged_from"] = [name for env, run in zip(environments, run_dirs)
                                  for name in env.get("merged_from") or [env.get("run_id", run.name)]]
    # Run-level facts that differ between the rows kept (a completion run at a later commit) list
    # every value, in the order of the runs given, instead of the first run's alone.
    in_run_order = [merged[cell] for cell in sorted(merged, key=source.__getitem__)]
    for key in ROW_LEVEL_FACTS:
        values = list(dict.fromkeys(row[key] for row in in_run_order if row.get(key)))
        if len(values) > 1:
            environment[key] = ", ".join(values)
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
