"""Ratios of the best peer's time to ours, cell by cell, from stored peer-table runs.

Reads the JSON lines that ``scripts/peer_table.py --out`` writes (several files: each
(cell, config, provider) takes the median of all its measurements) and the peer bar
``PEERS_H200.md``, and prints, per cell: ours, the best peer measured in the runs, the file's best
peer, both ratios (best peer us / ours us; > 1 means we are faster), ours % of copy, and whether
the cell passes issue 5's rule: ratio >= 1, or >= 0.97 where that peer is above 97% of copy. Ends
with the geometric mean of each ratio over the cells and the pass counts.

    python scripts/peer_ratios.py --peers ../shared/PEERS_H200.md run23_peer.jsonl [run24_peer.jsonl ...]

With ``--supersede`` a later file's rows of a (cell, config) replace the earlier files' rows of that
(cell, config) instead of joining them: a re-run of the cells whose kernels changed updates a table.

A pure function of stored results: nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections import defaultdict

# Section headings of PEERS_H200.md -> the peer table's cell names
SECTIONS = {"rms fwd": "rms_fwd", "rms full": "rms_full", "add_rms fwd": "add_rms_fwd", "ln fwd": "ln_fwd",
            "ln full": "ln_full"}
RUN_PEERS = ("hf_eager", "torch_F", "torch_compile", "liger")
TOLERATED_RATIO, TOLERATED_ABOVE_PCT = 0.97, 97.0  # issue 5's exception for peers at the ceiling


def parse_peer_file(text: str) -> dict:
    """(cell, config) -> (best peer name, its us, its % of copy) from the file's tables."""
    bar, cell, header = {}, None, None
    for line in text.splitlines():
        heading = re.match(r"#+\s+(.*)", line)
        if heading:
            cell, header = SECTIONS.get(heading.group(1).strip()), None
            continue
        if cell is None or not line.startswith("|"):
            continue
        fields = [f.strip() for f in line.strip().strip("|").split("|")]
        if header is None:
            header = fields
            continue
        if set(fields[0]) <= set("-: "):
            continue
        row = dict(zip(header, fields))
        best = row["best"]
        bar[(cell, row["config"])] = (best, float(row[best]), float(row["best % of copy"].rstrip("%")))
    return bar


def load_runs(paths, supersede: bool = False) -> dict:
    """(cell, config, provider) -> (median us, median % of copy) over every ok row of the files;
    with ``supersede``, over the last file holding rows of that (cell, config)."""
    samples = defaultdict(list)
    for path in paths:
        with open(path) as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        if supersede:
            replaced = {(row["cell"], row["config"]) for row in rows}
            for key in [key for key in samples if key[:2] in replaced]:
                del samples[key]
        for row in rows:
            if row.get("status") == "ok":
                samples[(row["cell"], row["config"], row["provider"])].append((row["us"], row["pct_of_copy"]))
    return {key: (statistics.median(u for u, _ in rows), statistics.median(p for _, p in rows))
            for key, rows in samples.items()}


def passes(ratio: float, peer_pct: float) -> bool:
    return ratio >= 1.0 or (ratio >= TOLERATED_RATIO and peer_pct > TOLERATED_ABOVE_PCT)


def ratio_rows(bar: dict, runs: dict) -> list[dict]:
    rows = []
    for (cell, config), (file_peer, file_us, file_pct) in bar.items():
        ours = runs.get((cell, config, "ours"))
        if ours is None:
            continue
        measured = [(runs[(cell, config, p)], p) for p in RUN_PEERS if (cell, config, p) in runs]
        (run_us, run_pct), run_peer = min(measured) if measured else ((math.nan, math.nan), "-")
        rows.append(dict(cell=cell, config=config, ours_us=ours[0], ours_pct=ours[1],
                         run_peer=run_peer, run_us=run_us, run_ratio=run_us / ours[0],
                         run_pass=passes(run_us / ours[0], run_pct),
                         file_peer=file_peer, file_us=file_us, file_ratio=file_us / ours[0],
                         file_pass=passes(file_us / ours[0], file_pct)))
    return rows


def geomean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="peer_table.py JSON-lines files")
    parser.add_argument("--peers", required=True, help="path of PEERS_H200.md")
    parser.add_argument("--supersede", action="store_true",
                        help="a later file's rows of a (cell, config) replace the earlier files' rows of it")
    args = parser.parse_args()
    with open(args.peers) as handle:
        bar = parse_peer_file(handle.read())
    rows = ratio_rows(bar, load_runs(args.runs, args.supersede))
    print("| cell | config | ours us | ours % copy | best peer (runs) | ratio | best peer (file) | ratio | pass runs / file |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cell']} | {r['config']} | {r['ours_us']:.1f} | {r['ours_pct']:.0f}% | "
              f"{r['run_peer']} {r['run_us']:.1f} | {r['run_ratio']:.2f} | {r['file_peer']} {r['file_us']:.1f} | "
              f"{r['file_ratio']:.2f} | {'yes' if r['run_pass'] else 'no'} / {'yes' if r['file_pass'] else 'no'} |")
    print()
    for cell in SECTIONS.values():
        part = [r for r in rows if r["cell"] == cell]
        print(f"{cell}: geomean vs runs {geomean(r['run_ratio'] for r in part):.3f}, "
              f"vs file {geomean(r['file_ratio'] for r in part):.3f}")
    print(f"all {len(rows)} cells: geomean vs runs {geomean(r['run_ratio'] for r in rows):.3f}, "
          f"vs file {geomean(r['file_ratio'] for r in rows):.3f}; "
          f"passing {sum(r['run_pass'] for r in rows)} vs runs, {sum(r['file_pass'] for r in rows)} vs file")


if __name__ == "__main__":
    main()
