"""The stored-results contract shared by the harness (writer) and the report (reader).

Results are long format: one row per (config, layer, residual, mode, dtype, provider) measurement,
appended to ``results.jsonl`` and ``results.csv`` the moment it completes. Each row carries the run's
environment too, so a single row is self-describing. ``environment.json`` holds the same
environment once, plus run-level facts (dispatch thresholds, measured copy bandwidth).
"""

from __future__ import annotations

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
ENVIRONMENT_JSON = "environment.json"

# Row status values. Only STATUS_OK rows have timings and enter speedups.
STATUS_OK = "ok"
STATUS_FAILED = "FAILED"  # ran, but the output or a gradient missed the float64 reference
STATUS_OOM = "OOM"  # out of memory while setting up or measuring; the sweep went on
STATUS_UNAVAILABLE = "unavailable"  # provider not importable / op not supported by it
STATUS_SKIPPED = "skipped"  # e.g. the config does not fit the device's free memory
STATUS_ERROR = "error"  # any other exception; its message is in `reason`
STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_OOM, STATUS_UNAVAILABLE, STATUS_SKIPPED, STATUS_ERROR)

# Environment columns, repeated on every row (values from environment.json).
ENV_COLUMNS = (
    "run_id",  # the save directory's name, e.g. 20261120-231500
    "git_sha",  # HEAD of the trinix_bench checkout, "unknown" outside git
    "package_version",
    "command",  # the full command line of the run
    "device",  # "cuda" or "cpu"
    "gpu_name",  # torch.cuda.get_device_name(), or the CPU model string
    "driver_version",  # NVIDIA driver, "" on CPU
    "cuda_version",  # torch.version.cuda, "" on CPU
    "torch_version",
    "triton_version",  # "" when triton is not importable
    "python_version",
    "copy_bandwidth_gbps",  # device-to-device copy measured at run start (read + write bytes)
    "spec_bandwidth_gbps",  # datasheet peak when the GPU is known, else empty
)

# Measurement columns.
MEASUREMENT_COLUMNS = (
    "timestamp",  # ISO-8601 UTC time the row was written
    "config",  # registry name, e.g. "Small", "Decode-1", "Custom"
    "batch",
    "seq_len",
    "hidden",
    "rows",  # batch * seq_len
    "layer",  # "rmsnorm" | "layernorm"
    "residual",  # bool: the fused add + norm variant
    "mode",  # "fwd" | "bwd" | "full"
    "dtype",  # "fp16" | "bf16" | "fp32"
    "provider",  # "pytorch", "torch_native", "torch_compile", "triton", "trinix", "liger", ...
    "backend",  # what actually ran: for "trinix" the auto-dispatch pick ("triton"/"torch")
    "dispatch_reason",  # trinix only: explain() text; else empty
    "status",  # one of STATUSES
    "reason",  # why a row is not "ok" (import error, OOM text, error norms); else empty
    "warmup",
    "iters",
    "flush_l2",  # bool
    "cuda_graph",  # bool
    "median_ms",
    "p20_ms",
    "p80_ms",
    "min_ms",
    "max_ms",
    "peak_memory_mb",  # extra memory the call needs beyond its inputs (see docs/harness.md)
    "ideal_bytes",  # bytes model for (layer, residual, mode) at this shape and dtype
    "gbps",  # ideal_bytes / median time
    "pct_of_copy",  # gbps / copy_bandwidth_gbps * 100
    "pct_of_spec",  # gbps / spec_bandwidth_gbps * 100, empty when no spec is known
    "max_rel_error",  # worst ||out - ref|| / ||ref|| over the outputs and gradients checked
    "tolerance",  # the dtype-keyed tolerance it was held to
)

ROW_COLUMNS = ENV_COLUMNS + MEASUREMENT_COLUMNS
