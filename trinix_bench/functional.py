"""The public functional API: validate, dispatch, then run Triton or the PyTorch path.

The PyTorch path on CUDA is torch.nn.functional.rms_norm / layer_norm where their contract matches
ours (parameters in x's dtype, no offset): one fused ATen kernel, much cheaper per call than a chain
of eager ops. Otherwise (CPU, fp32 weights with half activations, an offset) it is the float32
reference from ``reference.py``. Either way y = norm(x) is computed in fp32 (float64 stays float64) and returned in
x.dtype.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import reference
from ._validate import check_norm_args, check_offset
from .dispatch import uses_triton

Tensor = torch.Tensor


def _needs_grad(x: Tensor, *params: Optional[Tensor]) -> bool:
    # A plain loop: on every call, and a generator under any() costs several times as much host time.
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad:
        return True
    for p in params:
        if p is not None and p.requires_grad:
            return True
    return False


def _compute_dtype(x: Tensor) -> torch.dtype:
    # fp16/bf16/fp32 compute in fp32; float64 keeps its precision.
    return torch.float64 if x.dtype == torch.float64 else torch.float32


_norm_triton = None


def _triton_norm(x, residual, weight, bias, eps, offset, is_rms, needs_grad):
    # Imported on first Triton use only: importing triton costs ~1 s and is not needed on CPU.
    global _norm_triton
    if _norm_triton is None:
        from .ops.normalization import norm_triton

        _norm_triton = norm_triton
    return _norm_triton(x, residual, weight, bias, eps, offset, is_rms, needs_grad)


def _fused_aten_ok(x: Tensor, *params: Optional[Tensor]) -> bool:
    """F.rms_norm / F.layer_norm serve as the torch path on CUDA when parameters match x's dtype.

    CPU keeps the fp32 reference: PyTorch's CPU bf16 LayerNorm backward missed the float64
    reference by 3.7% on dweight (4x512x4096), and CPU is not where speed matters.
    """
    if not x.is_cuda:
        return False
    for p in params:
        if p is not None and p.dtype != x.dtype:
            return False
    return True


def _torch_rms_norm(x, weight, eps, offset):
    if offset == 0.0 and _fused_aten_ok(x, weight):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
    return reference.rms_norm_reference(x, weight, eps, offset, compute_dtype=_compute_dtype(x), out_dtype=x.dtype)


def _torch_layer_norm(x, weight, bias, eps):
    if _fused_aten_ok(x, weight, bias):
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), weight, bias, eps)
    return reference.layer_norm_reference(x, weight, bias, eps, compute_dtype=_compute_dtype(x), out_dtype=x.dtype)


def rms_norm(
    x: Tensor,
    weight: Optional[Tensor] = None,
    eps: float = 1e-6,
    *,
    offset: float = 0.0,
    backend: str = "auto",
) -> Tensor:
    """y = x / sqrt(mean(x^2 over the last dim) + eps) * (weight + offset), in fp32, returned in x.dtype.

    ``offset=1.0`` gives the Gemma convention (weights stored as w - 1). ``backend`` is "auto",
    "triton" or "torch"; see ``trinix_bench.explain``.
    """
    check_norm_args(x, None, weight, None, eps, backend)
    check_offset(offset)
    needs_grad = _needs_grad(x, weight)
    if uses_triton("rms_norm", x, needs_grad, backend):
        return _triton_norm(x, None, weight, None, eps, offset, True, needs_grad)[0]
    return _torch_rms_norm(x, weight, eps, offset)


def layer_norm(
    x: Tensor,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-5,
    *,
    backend: str = "auto",
) -> Tensor:
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last dim (biased var), in fp32."""
    check_norm_args(x, None, weight, bias, eps, backend)
    needs_grad = _needs_grad(x, weight, bias)
    if uses_triton("layer_norm", x, needs_grad, backend):
        return _triton_norm(x, None, weight, bias, eps, 0.0, False, needs_grad)[0]
    return _torch_layer_norm(x, weight, bias, eps)


def fused_add_rms_norm(
    x: Tensor,
    residual: Tensor,
    weight: Optional[Tensor] = None,
    eps: float = 1e-6,
    *,
    offset: float = 0.0,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """(y, residual_out) with residual_out = x + residual and y = rms_norm(residual_out).

    Gradients flow through both outputs to x, residual and weight.
    """
    check_norm_args(x, residual, weight, None, eps, backend)
    check_offset(offset)
    needs_grad = _needs_grad(x, residual, weight)
    if uses_triton("fused_add_rms_norm", x, needs_grad, backend):
        return _triton_norm(x, residual, weight, None, eps, offset, True, needs_grad)
    residual_out = x + residual
    return _torch_rms_norm(residual_out, weight, eps, offset), residual_out


def fused_add_layer_norm(
    x: Tensor,
    residual: Tensor,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-5,
    *,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """(y, residual_out) with residual_out = x + residual and y = layer_norm(residual_out)."""
    check_norm_args(x, residual, weight, bias, eps, backend)
    needs_grad = _needs_grad(x, residual, weight, bias)
    if uses_triton("fused_add_layer_norm", x, needs_grad, backend):
        return _triton_norm(x, residual, weight, bias, eps, 0.0, False, needs_grad)
    residual_out = x + residual
    return _torch_layer_norm(residual_out, weight, bias, eps), residual_out
