"""The run's environment: versions, device, git SHA, and the copy bandwidth measured at the start.

Copy bandwidth is the reference the results' "% of copy" is taken against: a device-to-device copy
of a large buffer (1 GiB on CUDA, 256 MiB on CPU, both far beyond any cache), timed like the ops
(same loop, same clock), counted as bytes read + bytes written, median of the iterations.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Optional

import torch

from .. import __version__
from ..dispatch import current_thresholds, thresholds_source, triton_status
from .memory import CPU_METHOD
from .metrics import gbps, summarize_ms
from .schema import ENV_COLUMNS
from .timing import time_loop

# Datasheet memory bandwidth (GB/s) by a substring of torch.cuda.get_device_name(); first match
# wins, so specific names come before general ones. Numbers from NVIDIA's product datasheets.
SPEC_BANDWIDTH_GBPS = (
    ("H200", 4800.0),  # H200 SXM and H200 NVL: 4.8 TB/s HBM3e
    ("H100 80GB HBM3", 3350.0),  # H100 SXM5
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100-SXM4-40GB", 1555.0),
    ("A100-PCIE-40GB", 1555.0),
    ("A100 80GB PCIe", 1935.0),
)

COPY_BYTES = {"cuda": 2**30, "cpu": 256 * 2**20}
COPY_WARMUP, COPY_ITERS = 2, 10


def spec_bandwidth(device_name: str) -> Optional[float]:
    return next((bw for key, bw in SPEC_BANDWIDTH_GBPS if key in device_name), None)


def measure_copy_bandwidth(device: torch.device) -> tuple[float, list[float]]:
    """(median GB/s, per-iteration ms) of dst.copy_(src) for a COPY_BYTES buffer."""
    nbytes = COPY_BYTES[device.type]
    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    times = time_loop(lambda: dst.copy_(src), device_type=device.type, warmup=COPY_WARMUP, iters=COPY_ITERS)
    # The same median as every measurement row's, so % of copy compares like with like.
    return gbps(2 * nbytes, summarize_ms(times)["median_ms"]), times


GIT_SHA_ENV_VAR = "TRINIX_GIT_SHA"


def git_sha() -> str:
    """$TRINIX_GIT_SHA when set (a copied tree whose git metadata, if any, is not the code that
    runs, e.g. a benchmark machine that receives the working tree only); else HEAD of the checkout
    trinix_bench is imported from; else "unknown"."""
    explicit = os.environ.get(GIT_SHA_ENV_VAR, "").strip()
    if explicit:
        return explicit
    root = Path(__file__).resolve().parents[2]
    fallback = "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return fallback
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else fallback


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _triton_version() -> str:
    try:
        import triton

        return triton.__version__
    except Exception:  # an absent or broken triton is a fact to record, not an error
        return ""


def environment_row(device: torch.device, run_id: str, command: str, copy_gbps: float) -> dict:
    """The ENV_COLUMNS values repeated on every row."""
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else _cpu_name()
    row = {
        "run_id": run_id,
        "git_sha": git_sha(),
        "package_version": __version__,
        "command": command,
        "device": device.type,
        "gpu_name": name,
        "driver_version": _nvidia_driver() if cuda else "",
        "cuda_version": (torch.version.cuda or "") if cuda else "",
        "torch_version": torch.__version__,
        "triton_version": _triton_version(),
        "python_version": platform.python_version(),
        "copy_bandwidth_gbps": copy_gbps,
        "spec_bandwidth_gbps": spec_bandwidth(name) if cuda else None,
    }
    assert tuple(row) == ENV_COLUMNS, "environment_row must follow schema.ENV_COLUMNS"
    return row


def environment_document(env_row: dict, *, date: str, copy_ms: list, settings: dict, probes: dict) -> dict:
    """environment.json: the row's environment plus run-level facts."""
    ready, why = triton_status(env_row["device"])
    return {
        **env_row,
        "date": date,
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "torch_num_threads": torch.get_num_threads(),
        "triton_ready": ready,
        "triton_unready_reason": why,
        "dispatch_thresholds": current_thresholds().to_dict(),
        "dispatch_thresholds_source": thresholds_source(),
        "copy_bandwidth_ms": copy_ms,
        "copy_bandwidth_bytes": 2 * COPY_BYTES[env_row["device"]],
        "cpu_memory_method": "" if env_row["device"] == "cuda" else CPU_METHOD,
        "providers": {name: ("available" if reason is None else reason) for name, reason in probes.items()},
        "settings": settings,
    }
