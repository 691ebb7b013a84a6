"""Plain PyTorch references for every op, in a chosen compute precision.

These are the single source of truth for what the ops compute. The PyTorch fallback path runs them
in float32 (``compute_dtype=torch.float32``), the tests and the benchmark's correctness check run
them in float64 on upcast inputs.

Maths, over the last dimension of size N (row r, column j):

- RMSNorm:   y = x * rsqrt(mean_j(x^2) + eps) * (w + offset)
- LayerNorm: y = (x - mean_j(x)) * rsqrt(var_j(x) + eps) * w + b,   var is the biased variance
- fused add: r = x + residual (rounded to x.dtype, as an unfused ``x + residual`` would be),
  then y = norm(r); both y and r are returned.

Missing weight means w = 1 (and offset still adds), missing bias means b = 0.
"""

from __future__ import annotations

from typing import Optional

import torch

Tensor = torch.Tensor


def _affine(y: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], offset: float) -> Tensor:
    if weight is not None:
        y = y * (weight.to(y.dtype) + offset)
    elif offset != 0.0:
        y = y * (1.0 + offset)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y


def rms_norm_reference(
    x: Tensor,
    weight: Optional[Tensor] = None,
    eps: float = 1e-6,
    offset: float = 0.0,
    *,
    compute_dtype: torch.dtype = torch.float64,
    out_dtype: Optional[torch.dtype] = None,
) -> Tensor:
    """y = x / sqrt(mean(x^2) + eps) * (weight + offset), computed in ``compute_dtype``.

    The result is returned in ``out_dtype`` (default: ``compute_dtype``, so float64 references stay
    float64 for error measurement).
    """
    xc = x.to(compute_dtype)
    rstd = torch.rsqrt(xc.pow(2).mean(dim=-1, keepdim=True) + eps)
    y = _affine(xc * rstd, weight, None, offset)
    return y.to(out_dtype or compute_dtype)


def layer_norm_reference(
    x: Tensor,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-5,
    *,
    compute_dtype: torch.dtype = torch.float64,
    out_dtype: Optional[torch.dtype] = None,
) -> Tensor:
    """y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias (biased variance), in ``compute_dtype``."""
    xc = x.to(compute_dtype)
    mean = xc.mean(dim=-1, keepdim=True)
    centered = xc - mean
    rstd = torch.rsqrt(centered.pow(2).mean(dim=-1, keepdim=True) + eps)
    y = _affine(centered * rstd, weight, bias, 0.0)
    return y.to(out_dtype or compute_dtype)


def add_residual_reference(x: Tensor, residual: Tensor, round_to: Optional[torch.dtype] = None) -> Tensor:
    """residual_out = x + residual, rounded to ``round_to`` (default x.dtype) as the unfused add is.

    A float64 reference on upcast copies passes the original dtype as ``round_to`` so the sum is
    rounded exactly where the kernels round it; the casts pass gradients through unchanged.
    """
    # PyTorch adds half-precision tensors in fp32 and rounds once, which is what the kernels do too.
    total = x + residual
    if round_to is not None and round_to != total.dtype:
        total = total.to(round_to).to(total.dtype)
    return total


def fused_add_rms_norm_reference(
    x: Tensor,
    residual: Tensor,
    weight: Optional[Tensor] = None,
    eps: float = 1e-6,
    offset: float = 0.0,
    *,
    compute_dtype: torch.dtype = torch.float64,
    out_dtype: Optional[torch.dtype] = None,
    residual_dtype: Optional[torch.dtype] = None,
) -> tuple[Tensor, Tensor]:
    """(rms_norm(x + residual), x + residual); the sum is rounded to ``residual_dtype`` (x.dtype) first."""
    residual_out = add_residual_reference(x, residual, residual_dtype)
    y = rms_norm_reference(residual_out, weight, eps, offset, compute_dtype=compute_dtype, out_dtype=out_dtype)
    return y, residual_out


def fused_add_layer_norm_reference(
    x: Tensor,
    residual: Tensor,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-5,
    *,
    compute_dtype: torch.dtype = torch.float64,
    out_dtype: Optional[torch.dtype] = None,
    residual_dtype: Optional[torch.dtype] = None,
) -> tuple[Tensor, Tensor]:
    """(layer_norm(x + residual), x + residual); the sum is rounded to ``residual_dtype`` (x.dtype) first."""
    residual_out = add_residual_reference(x, residual, residual_dtype)
    y = layer_norm_reference(residual_out, weight, bias, eps, compute_dtype=compute_dtype, out_dtype=out_dtype)
    return y, residual_out


# Dtype-keyed tolerances for ||out - ref|| / ||ref|| against a float64 reference. An output rounded
# to bf16 carries a relative error up to 2^-9 per element (2^-11 for fp16), so the norm-wise error of
# a correct kernel sits near 0.2% (bf16) and 0.05% (fp16); fp32 outputs land near 1e-7. The bounds
# leave ~4x headroom for fp32 accumulation-order differences and gradient sums over many rows.
RELATIVE_TOLERANCE = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 4e-3,
    torch.bfloat16: 1.6e-2,
}


def relative_error(actual: Tensor, expected: Tensor) -> float:
    """||actual - expected||_2 / ||expected||_2 in float64; NaN/Inf where they disagree give inf.

    Positions where both are the same non-finite value (NaN and NaN, +inf and +inf) count as equal,
    so a row that is NaN in the reference must be NaN in the output too.
    """
    a = actual.detach().to(device="cpu", dtype=torch.float64)
    e = expected.detach().to(device="cpu", dtype=torch.float64)
    if a.shape != e.shape:
        raise ValueError(f"shape mismatch: actual {tuple(a.shape)} vs expected {tuple(e.shape)}")
    same_nonfinite = (torch.isnan(a) & torch.isnan(e)) | (torch.isinf(a) & torch.isinf(e) & (a == e))
    finite_both = torch.isfinite(a) & torch.isfinite(e)
    if bool((~same_nonfinite & ~finite_both).any()):
        return float("inf")
    a = torch.where(finite_both, a, torch.zeros_like(a))
    e = torch.where(finite_both, e, torch.zeros_like(e))
    denom = torch.linalg.vector_norm(e).item()
    num = torch.linalg.vector_norm(a - e).item()
    if denom == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / denom


def tolerance_for(dtype: torch.dtype) -> float:
    """The relative-error bound for outputs held in ``dtype``."""
    try:
        return RELATIVE_TOLERANCE[dtype]
    except KeyError:
        raise ValueError(f"dtype: no tolerance for {dtype}; expected one of {list(RELATIVE_TOLERANCE)}") from None
