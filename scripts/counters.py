"""Hardware counters of single calls, read by Nsight Compute (ncu) on the GPU machine.

``run`` calls each target once to compile it and warm the allocator, then once more between
cudaProfilerStart and cudaProfilerStop, so that under

    PYTHONPATH=. ncu --profile-from-start off --clock-control none -f --export ln_large \\
        --section SpeedOfLight --section Occupancy ... \\
        python3 scripts/counters.py run ln_fwd@4096x8192
    ncu --import ln_large.ncu-rep --csv --page raw > ln_large.csv
    python3 scripts/counters.py summary ln_large.csv

ncu profiles exactly the kernels of that one call. ncu's default cache control flushes the
caches before each kernel, as do_bench empties L2 between calls. Give one target a process to
keep the kernels attributable; with several, their kernels follow one another in the CSV.
``--clock-control none`` leaves the GPU's clocks as they are (ncu locks them to base otherwise).

A target is ``CELL@ROWSxHIDDEN[:PROVIDER][=LAUNCH]``: CELL one of peer_table.CELLS (fwd cells run
under no_grad; ``*_full`` is one autograd call ``f(x, w[, b]).backward(dy)``) or ``stream``
(``torch.neg(x, out=y)``: an elementwise kernel moving a forward's bytes; ``y.copy_(x)`` of
contiguous rows is a DMA copy, which ncu does not profile), PROVIDER one of peer_table's for that
cell (default ``ours``). LAUNCH, for our forward cells only, puts a forward launch in place of the
table's, written as ``tune_kernels.py forward_ab`` reads it (e.g. ``single/8192/w16/reg32``).

``summary`` reads such CSVs (``--page raw``: one row per kernel, one column per metric) and prints
one markdown row per kernel with the counters of SUMMARY_COLUMNS and the largest stall reasons,
the target taken from each file's name.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

TARGET_FORM = ("CELL@ROWSxHIDDEN[:PROVIDER][=LAUNCH], e.g. ln_fwd@4096x8192, rms_fwd@2048x4096:liger or "
               "ln_fwd@4096x8192=single/8192/w16/reg32")
# forward cells -> the op name tune_kernels.py forward_ab reads a launch for
_FORWARD_OPS = {"rms_fwd": "rms_norm", "add_rms_fwd": "fused_add_rms_norm", "ln_fwd": "layer_norm"}


def parse_target(text: str) -> tuple[str, int, int, str, str]:
    """(cell, rows, hidden, provider, launch or "") of ``CELL@ROWSxHIDDEN[:PROVIDER][=LAUNCH]``."""
    import peer_table

    match = re.fullmatch(r"([a-z_]+)@(\d+)x(\d+)(?::([A-Za-z_]+))?(?:=(\S+))?", text.strip())
    if match is None:
        raise ValueError(f"target {text!r}: expected {TARGET_FORM}")
    cell, rows, hidden = match.group(1), int(match.group(2)), int(match.group(3))
    provider, launch = match.group(4) or "ours", match.group(5) or ""
    if cell != "stream" and cell not in peer_table.CELLS:
        raise ValueError(f"target {text!r}: cell must be stream or one of {', '.join(peer_table.CELLS)}")
    if rows < 1 or hidden < 1:
        raise ValueError(f"target {text!r}: rows and hidden must be positive")
    if launch and (cell not in _FORWARD_OPS or provider != "ours"):
        raise ValueError(f"target {text!r}: a launch applies to our forward cells ({', '.join(_FORWARD_OPS)}) only")
    return cell, rows, hidden, provider, launch


def _forward_launch(cell, rows, hidden, launch):
    """The ForwardLaunch that ``launch`` names for the cell's op and shape (tune_kernels' reading)."""
    import tune_kernels

    try:
        *_, cfg = tune_kernels._parse_forward_candidate(f"{_FORWARD_OPS[cell]}@{rows}x{hidden}={launch}")
    except SystemExit as exc:  # its error names the expected form
        raise ValueError(str(exc)) from None
    return cfg


def _target_call(cell, rows, hidden, provider, launch=""):
    """A no-argument callable doing the target's call once (inputs made here, outside it), under
    ``launch`` in place of the forward table's where given."""
    import torch

    import peer_table

    if launch:
        from trinix_bench.ops import normalization as nz

        cfg = _forward_launch(cell, rows, hidden, launch)
        call = _target_call(cell, rows, hidden, "ours_triton")

        def forced():
            table = nz.forward_launch
            nz.forward_launch = lambda *_, **__: cfg
            try:
                call()
            finally:
                nz.forward_launch = table
        return forced
    if cell == "stream":
        x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16)
        y = torch.empty_like(x)
        return lambda: torch.neg(x, out=y)
    providers = peer_table._providers(cell)
    if provider not in providers:
        raise ValueError(f"provider {provider!r} is not available for {cell}: {', '.join(providers)}")
    call, leaves, grad_mode = peer_table.cell_call(cell, providers[provider], peer_table.make_inputs(cell, rows, hidden))

    def timed_as_the_table_does():
        for leaf in leaves or ():
            leaf.grad = None
        with grad_mode():
            call()
    return timed_as_the_table_does


def run(targets, clear_l2_first=False):
    """Each target once warm, then once inside cudaProfilerStart / cudaProfilerStop. With
    ``clear_l2_first``, L2 is cleared before the profiled call the way triton.testing.do_bench
    clears it between calls (a 256 MB buffer zeroed), so that under ``ncu --cache-control none``
    the kernel starts, as in do_bench, with L2 holding that buffer's dirty lines."""
    import torch
    import triton

    driver = triton.runtime.driver.active
    l2_buffer = driver.get_empty_cache_for_benchmark() if clear_l2_first else None
    for text in targets:
        call = _target_call(*parse_target(text))
        call()
        torch.cuda.synchronize()
        if clear_l2_first:
            driver.clear_cache(l2_buffer)
        torch.cuda.cudart().cudaProfilerStart()
        call()
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStop()
        print(f"profiled {text}", file=sys.stderr)


# (column, raw metric, unit the column shows it in); a metric the report lacks shows "-"
SUMMARY_COLUMNS = (
    ("us", "gpu__time_duration.sum", "us"),
    ("DRAM % of peak", "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed", "%"),
    ("DRAM read MB", "dram__bytes_read.sum", "MB"),
    ("DRAM write MB", "dram__bytes_write.sum", "MB"),
    ("registers", "launch__registers_per_thread", ""),
    ("blocks/SM (registers)", "launch__occupancy_limit_registers", ""),
    ("achieved occupancy %", "sm__warps_active.avg.pct_of_peak_sustained_active", "%"),
    ("issue slots busy %", "smsp__issue_active.avg.pct_of_peak_sustained_active", "%"),
    ("warp instructions (M)", "smsp__inst_executed.sum", "M"),
    ("cycles between issues", "smsp__average_warp_latency_per_inst_issued.ratio", "cycles"),
)
STALL_METRIC = re.compile(r"smsp__average_warps_issue_stalled_(\w+?)_per_issue_active\.ratio")
# units ncu writes -> factor to the column's unit
_UNIT_FACTORS = {
    "us": {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6, "ns": 1e-3, "us": 1.0, "ms": 1e3},
    "MB": {"byte": 1e-6, "Kbyte": 1e-3, "Mbyte": 1.0, "Gbyte": 1e3, "Tbyte": 1e6},
    "M": {"": 1e-6, "inst": 1e-6, "warp": 1e-6},
    "cycles": {"cycle": 1.0, "": 1.0},
}


def _number(text: str):
    """ncu's printed value as a float (thousands separators dropped); None for "n/a" and the like."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def read_raw(path) -> list[dict]:
    """The kernels of one ``--page raw`` CSV: per kernel, metric -> (value text, unit)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2 or "Kernel Name" not in rows[0]:
        raise ValueError(f"{path}: not an ncu --page raw CSV (no 'Kernel Name' header)")
    header, units, kernels = rows[0], rows[1], rows[2:]
    return [{name: (value, unit) for name, unit, value in zip(header, units, row)} for row in kernels if row]


def _shown(kernel: dict, metric: str, unit: str) -> str:
    if metric not in kernel:
        return "-"
    text, ncu_unit = kernel[metric]
    value = _number(text)
    if value is None:
        return text or "-"
    if unit in _UNIT_FACTORS:
        factor = _UNIT_FACTORS[unit].get(ncu_unit)
        if factor is None:
            return f"{text} {ncu_unit}"
        value *= factor
    return f"{value:.1f}" if unit else f"{value:g}"


def top_stalls(kernel: dict, count: int = 3) -> str:
    """The ``count`` largest stall reasons, in warps stalled per issued instruction."""
    stalls = []
    for metric, (text, _unit) in kernel.items():
        match = STALL_METRIC.fullmatch(metric)
        value = _number(text) if match else None
        if value:
            stalls.append((value, match.group(1)))
    stalls.sort(reverse=True)
    return ", ".join(f"{name} {value:.1f}" for value, name in stalls[:count]) or "-"


def summary(paths) -> list[str]:
    """Markdown lines: one row per kernel of each raw CSV, its target from the file's name."""
    lines = ["| target | kernel | grid x block | " + " | ".join(c for c, _, _ in SUMMARY_COLUMNS) + " | largest stalls |",
             "|---" * (len(SUMMARY_COLUMNS) + 4) + "|"]
    for path in paths:
        for kernel in read_raw(path):
            name = kernel.get("Kernel Name", ("?", ""))[0]
            short = re.sub(r"<.*", "", name).replace("void ", "")[:40]
            shape = f"{kernel.get('Grid Size', ('?', ''))[0]} x {kernel.get('Block Size', ('?', ''))[0]}"
            cells = [_shown(kernel, metric, unit) for _, metric, unit in SUMMARY_COLUMNS]
            lines.append(f"| {Path(path).stem} | {short} | {shape} | " + " | ".join(cells) + f" | {top_stalls(kernel)} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="call the targets, the second call of each under the profiler")
    run_parser.add_argument("targets", nargs="+", help=TARGET_FORM)
    run_parser.add_argument("--clear-l2-first", action="store_true",
                            help="clear L2 as do_bench does before the profiled call (profile with --cache-control none)")
    summary_parser = sub.add_parser("summary", help="one markdown row per kernel of ncu --page raw CSVs")
    summary_parser.add_argument("csvs", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "summary":
        print("\n".join(summary(args.csvs)))
        return
    if args.command == "run":
        for target in args.targets:
            try:
                cell, rows, hidden, _, launch = parse_target(target)
                if launch:
                    _forward_launch(cell, rows, hidden, launch)
            except ValueError as exc:
                parser.error(str(exc))
        run(args.targets, args.clear_l2_first)


if __name__ == "__main__":
    main()
