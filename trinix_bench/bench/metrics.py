"""The ideal-bytes model, timing statistics and bandwidth figures.

Bytes model, for M rows of N elements of s bytes, r = 1 with a residual (else 0), and p weight
vectors of N elements (p = 1 for RMSNorm: weight; p = 2 for LayerNorm: weight and bias):

    fwd  = (2 + 2r) * M*N*s + p*N*s
           read x [and residual], write y [and residual_out]; read the weight [and bias]
    bwd  = (3 + r) * M*N*s + (1 + p)*N*s
           read x (the saved residual_out with a residual), dy [and d residual_out], write dx (with
           a residual dx is one tensor that serves x and residual); read the weight, write dweight
           [and dbias]
    full = fwd + bwd

It is the traffic of an ideal fused kernel: per-row statistics (mean/rstd, 4-8 bytes a row) and the
partial weight-gradient buffers are left out, and every tensor is counted once. GB/s is
ideal_bytes / median time, so it is comparable across providers that move more or less than ideal.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from .configs import MODES


def ideal_bytes(layer: str, residual: bool, mode: str, rows: int, hidden: int, elem_size: int) -> int:
    """Bytes an ideal kernel moves for one call (see the module docstring for the model)."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    r = 1 if residual else 0
    p = 1 if layer == "rmsnorm" else 2
    tensor, vector = rows * hidden * elem_size, hidden * elem_size
    fwd = (2 + 2 * r) * tensor + p * vector
    bwd = (3 + r) * tensor + (1 + p) * vector
    return {"fwd": fwd, "bwd": bwd, "full": fwd + bwd}[mode]


def summarize_ms(times_ms: Sequence[float]) -> dict:
    """median, p20, p80 (linear interpolation), min and max of per-iteration times in ms."""
    a = np.asarray(times_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no timings to summarize")
    p20, med, p80 = np.percentile(a, [20, 50, 80])
    return {"median_ms": float(med), "p20_ms": float(p20), "p80_ms": float(p80),
            "min_ms": float(a.min()), "max_ms": float(a.max())}


def gbps(nbytes: int, ms: float) -> float:
    """Decimal GB/s: bytes / seconds / 1e9."""
    return nbytes / (ms * 1e-3) / 1e9


def percent_of(value: float, reference: Optional[float]) -> Optional[float]:
    """value / reference * 100, or None when the reference is unknown or not positive."""
    if reference is None or not math.isfinite(reference) or reference <= 0:
        return None
    return value / reference * 100.0
