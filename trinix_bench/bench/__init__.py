"""The benchmark harness behind ``benchmark_normalization.py`` / ``trinix-bench`` (docs/harness.md).

configs (size registry) -> spec (shared types) -> providers/peers (implementations) -> cases (setup
factory + float64 correctness check) -> timing/memory/metrics -> runner (sweep) -> results (files in
schema.py's format) -> cli (arguments, summary, report/compare subcommands).
"""
