"""Command line: ``benchmark_normalization.py`` / ``trinix-bench``.

    trinix-bench [run options]                  run the sweep (the default command)
    trinix-bench report RESULTS_DIR [--output DIR] [--template-dir DIR]
    trinix-bench compare OLD NEW [--threshold 5%] [--output FILE]

Bad input exits with code 2 and one line naming the argument (and the valid choices); Ctrl-C during
a sweep exits 130 after printing what was measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from . import configs as cfg
from .environment import environment_document, environment_row, measure_copy_bandwidth
from .providers import PROVIDERS, QUICK_PROVIDERS
from .results import ResultWriter, utc_now, write_environment
from .runner import Plan, Settings, probe_providers, run_sweep
from .schema import RESULTS_JSONL
from .summary import format_summary

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
QUICK_WARMUP, QUICK_ITERS = 2, 5
DEFAULT_WARMUP, DEFAULT_ITERS = 10, 100


class UsageError(Exception):
    """Bad command-line input: main prints its one-line message and returns 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage block too; we promise one line
        raise UsageError(message)


def _names(valid, kind: str):
    """argparse type: comma-separated names, matched case-insensitively to ``valid`` (in order)."""
    lookup = {v.lower(): v for v in valid}

    def parse(text: str) -> list:
        names = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [n for n in names if n.lower() not in lookup]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(map(repr, unknown)) or repr(text)}; valid choices: {', '.join(valid)}"
            )
        return [lookup[n.lower()] for n in names]

    return parse


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


def _run_parser() -> _Parser:
    p = _Parser(prog="benchmark_normalization.py", description="RMSNorm/LayerNorm benchmark sweep.")
    p.add_argument("--configs", type=_names(tuple(cfg.CONFIGS), "config"), help="comma list; see --list")
    p.add_argument("--list", action="store_true", help="print the named configs and exit")
    p.add_argument("--batch-size", type=_int_at_least(1), help="custom config batch")
    p.add_argument("--seq-len", type=_int_at_least(1), help="custom config sequence length")
    p.add_argument("--hidden-size", type=_int_at_least(1), help="custom config hidden size")
    p.add_argument("--layers", type=_names(cfg.LAYERS, "layer"), default=list(cfg.LAYERS))
    p.add_argument("--use-residual", action="store_true", help="measure the fused add + norm variants")
    p.add_argument("--modes", type=_names(cfg.MODES, "mode"), default=list(cfg.MODES))
    p.add_argument("--dtype", type=_names(tuple(cfg.DTYPES), "dtype"), nargs="+", default=[["bf16"]])
    p.add_argument("--providers", type=_names(tuple(PROVIDERS), "provider"), help="comma list (default: all)")
    p.add_argument("--warmup", type=_int_at_least(0), help=f"untimed iterations (default {DEFAULT_WARMUP})")
    p.add_argument("--iters", type=_int_at_least(1), help=f"timed iterations (default {DEFAULT_ITERS})")
    p.add_argument("--no-flush", action="store_true", help="do not flush L2 between CUDA iterations")
    p.add_argument("--cuda-graph", action="store_true", help="time CUDA-graph replays (fwd mode)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--save-path", type=Path, help="results directory (default ./results/<timestamp>/)")
    p.add_argument("--quick", action="store_true",
                   help=f"{', '.join(cfg.QUICK_CONFIGS)}; warmup {QUICK_WARMUP}, iters {QUICK_ITERS}; "
                        f"providers {', '.join(QUICK_PROVIDERS)}")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true", help="render the markdown report at the end")
    p.add_argument("--template-dir", type=Path, help="report templates (with --report)")
    return p


def _plan(args) -> Plan:
    configs = [cfg.CONFIGS[n] for n in (args.configs or [])]
    if any(v is not None for v in (args.batch_size, args.seq_len, args.hidden_size)):
        configs.append(cfg.custom_config(args.batch_size, args.seq_len, args.hidden_size))
    if not configs:
        configs = [cfg.CONFIGS[n] for n in (cfg.QUICK_CONFIGS if args.quick else cfg.CONFIGS)]
    providers = args.providers or (QUICK_PROVIDERS if args.quick else tuple(PROVIDERS))
    return Plan(
        configs=_unique(configs),
        layers=_unique(args.layers),
        residual=args.use_residual,
        modes=_unique(args.modes),
        dtypes=_unique(d for group in args.dtype for d in group),
        providers=_unique(providers),
    )


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("argument --device: cuda requested but torch.cuda.is_available() is False; "
                         "valid choices: auto, cpu")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def _save_dir(path: Optional[Path], run_id: str) -> Path:
    """Create the results directory and prove it is writable (UsageError otherwise)."""
    directory = path if path is not None else Path("results") / run_id
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"argument --save-path: cannot write to {str(directory)!r} ({exc.strerror or exc})")
    if (directory / RESULTS_JSONL).exists():
        raise UsageError(f"argument --save-path: {str(directory)!r} already holds {RESULTS_JSONL}; "
                         "choose a new or empty directory")
    return directory


def _command_line(argv: list) -> str:
    program = sys.argv[0] if sys.argv and sys.argv[0] else "trinix-bench"
    prefix = ["python"] if program.endswith(".py") else []
    return shlex.join(prefix + [program, *argv])


def _run(argv: list) -> int:
    args = _run_parser().parse_args(argv)
    if args.list:
        print(cfg.format_registry())
        return 0
    plan = _plan(args)
    device = _device(args.device)
    quick_default = (QUICK_WARMUP, QUICK_ITERS) if args.quick else (DEFAULT_WARMUP, DEFAULT_ITERS)
    settings = Settings(
        device=device,
        warmup=args.warmup if args.warmup is not None else quick_default[0],
        iters=args.iters if args.iters is not None else quick_default[1],
        flush_l2=not args.no_flush,
        cuda_graph=args.cuda_graph,
        seed=args.seed,
    )
    run_id = time.strftime("%Y%m%d-%H%M%S")
    save_dir = _save_dir(args.save_path, run_id)
    print(f"trinix-bench: {len(plan.specs())} cells x {len(plan.providers)} providers on {device}; "
          f"results in {save_dir}", flush=True)
    probes = probe_providers(plan.providers)
    copy_gbps, copy_ms = measure_copy_bandwidth(device)
    env_row = environment_row(device, save_dir.name, _command_line(argv), copy_gbps)
    settings_doc = {**dataclasses.asdict(plan), **{k: v for k, v in vars(settings).items() if k != "device"},
                    "quick": args.quick}
    write_environment(save_dir, environment_document(
        env_row, date=utc_now(), copy_ms=copy_ms, settings=settings_doc, probes=probes))
    print(f"copy bandwidth: {copy_gbps:.1f} GB/s"
          + (f" (spec {env_row['spec_bandwidth_gbps']:.0f} GB/s)" if env_row["spec_bandwidth_gbps"] else ""),
          flush=True)
    with ResultWriter(save_dir, env_row) as writer:
        result = run_sweep(plan, settings, writer, probes=probes, copy_gbps=copy_gbps,
                           spec_gbps=env_row["spec_bandwidth_gbps"], progress=not args.no_progress)
    print(format_summary(result.rows))
    if result.interrupted:
        print(f"interrupted: {len(result.rows)} rows kept in {save_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"results: {save_dir}")
    if args.report:
        return _render(save_dir, None, args.template_dir)
    return 0


def _render(results_dir: Path, output: Optional[Path], template_dir: Optional[Path]) -> int:
    # Imported here: the report renderer is optional for a run and lives in its own package.
    try:
        from ..report.render import render_report
    except ImportError as exc:
        print(f"error: the report renderer is not available ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    try:
        path = render_report(results_dir, output, template_dir)
    except ValueError as exc:  # the renderer's way of saying the input is bad (no rows, no templates)
        raise UsageError(f"report: {exc}") from None
    print(f"report: {path}")
    return 0


def _existing_dir(text: str) -> Path:
    path = Path(text)
    if not (path / RESULTS_JSONL).is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a results directory (no {RESULTS_JSONL})")
    return path


def _threshold(text: str) -> float:
    """'5%' or '5' -> 5.0 (percent)."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative percentage like 5% or 5, got {text!r}")
    return value


def _report(argv: list) -> int:
    p = _Parser(prog="benchmark_normalization.py report", description="Render NORMALIZATION.md from a run.")
    p.add_argument("results_dir", type=_existing_dir)
    p.add_argument("--output", type=Path, help="output directory (default: the results directory)")
    p.add_argument("--template-dir", type=Path)
    args = p.parse_args(argv)
    return _render(args.results_dir, args.output, args.template_dir)


def _compare(argv: list) -> int:
    p = _Parser(prog="benchmark_normalization.py compare", description="Compare two runs; exit 1 on regression.")
    p.add_argument("old", type=_existing_dir)
    p.add_argument("new", type=_existing_dir)
    p.add_argument("--threshold", type=_threshold, default=5.0, help="regression threshold, e.g. 5%%")
    p.add_argument("--output", type=Path, help="write the markdown here instead of printing it")
    args = p.parse_args(argv)
    try:
        from ..report.compare import compare_runs
    except ImportError as exc:
        print(f"error: the run comparison is not available ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    try:
        markdown, regressed = compare_runs(args.old, args.new, args.threshold)
    except ValueError as exc:  # e.g. a run without rows
        raise UsageError(f"compare: {exc}") from None
    if args.output is None:
        print(markdown)
    else:
        try:
            args.output.write_text(markdown)
        except OSError as exc:
            raise UsageError(f"argument --output: cannot write {str(args.output)!r} ({exc.strerror or exc})")
        print(f"comparison: {args.output}")
    return 1 if regressed else 0


SUBCOMMANDS = {"report": _report, "compare": _compare}


def main(argv: Optional[list] = None) -> int:
    """Entry point of the console script and of benchmark_normalization.py; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    handler = SUBCOMMANDS.get(argv[0]) if argv else None
    try:
        return handler(argv[1:]) if handler else _run(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside a sweep (which handles its own): nothing was measured yet
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
