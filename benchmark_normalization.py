"""Benchmark RMSNorm / LayerNorm providers: ``python benchmark_normalization.py --help``.

The same entry point is installed as the ``trinix-bench`` console script; see docs/harness.md.
"""

from trinix_bench.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
