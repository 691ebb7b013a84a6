"""Argument checks shared by the functional API and the modules.

Each failure names the argument and the expected form. The checks are attribute comparisons only
(no device synchronisation, nothing that reads tensor values), so they are safe on every call and
under CUDA-graph capture.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .dispatch import BACKENDS

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_DTYPE_NAMES = "float16, bfloat16, float32 or float64"


def _check_param(name: str, t: torch.Tensor, x: torch.Tensor, hidden: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or None, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a floating dtype ({_DTYPE_NAMES}), got {t.dtype}")
    if t.shape != (hidden,):
        raise ValueError(f"{name}: expected shape ({hidden},) to match the last dim of x, got {tuple(t.shape)}")
    if t.device != x.device:
        raise ValueError(f"{name}: expected a tensor on {x.device} like x, got one on {t.device}")


def check_norm_args(
    x: torch.Tensor,
    residual: Optional[torch.Tensor],
    weight: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    eps: float,
    backend: str,
) -> None:
    """Raise TypeError/ValueError naming the bad argument; return None when all is well."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x: expected a floating dtype ({_DTYPE_NAMES}), got {x.dtype}")
    shape = x.shape
    if not shape or shape[-1] == 0:
        raise ValueError(f"x: expected at least one dimension with a non-empty last dim, got shape {tuple(shape)}")
    hidden = shape[-1]
    # Checked here rather than inside _check_param: this runs on every call, and a call costs host time.
    if weight is not None:
        _check_param("weight", weight, x, hidden)
    if bias is not None:
        _check_param("bias", bias, x, hidden)
    if residual is not None:
        if not isinstance(residual, torch.Tensor):
            raise TypeError(f"residual: expected a torch.Tensor, got {type(residual).__name__}")
        if residual.shape != shape:
            raise ValueError(f"residual: expected shape {tuple(shape)} like x, got {tuple(residual.shape)}")
        if residual.dtype != x.dtype:
            raise ValueError(f"residual: expected dtype {x.dtype} like x, got {residual.dtype}")
        if residual.device != x.device:
            raise ValueError(f"residual: expected a tensor on {x.device} like x, got one on {residual.device}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps: expected a positive finite Python float, got {type(eps).__name__}")
    if not 0 < eps < math.inf:  # also rejects NaN
        raise ValueError(f"eps: expected a positive finite float, got {eps!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")


def check_offset(offset: float) -> None:
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
        raise TypeError(f"offset: expected a finite Python float, got {offset!r}")
