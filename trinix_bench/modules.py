"""Drop-in nn.Modules: FastRMSNorm and FastLayerNorm.

Parameters and state_dict keys match torch.nn.RMSNorm / torch.nn.LayerNorm (``weight``, ``bias``)
and HuggingFace LlamaRMSNorm (``weight``), so a checkpoint loads either way.

The fused residual variant is reached through the same module: ``norm(x, residual)`` returns
``(y, residual_out)`` with residual_out = x + residual and y = norm(residual_out), the convention
vLLM's RMSNorm uses. ``norm(x)`` returns y alone.

A ``normalized_shape`` of several dims (``FastLayerNorm((4, 64))``) normalizes over that many trailing
dims, as torch.nn.LayerNorm does: they are flattened into one row of prod(shape) elements.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Union

import torch
from torch import nn

from . import functional as F

ShapeLike = Union[int, Sequence[int], torch.Size]


def _normalized_shape(shape: ShapeLike, arg_name: str) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        dims = (int(shape),)
    elif isinstance(shape, (tuple, list, torch.Size)) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in shape
    ):
        dims = tuple(int(d) for d in shape)
    else:
        raise TypeError(f"{arg_name}: expected a positive int or a sequence of positive ints, got {shape!r}")
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"{arg_name}: expected a positive int or a sequence of positive ints, got {shape!r}")
    return dims


class _FastNormBase(nn.Module):
    _op: str = ""

    def __init__(self, normalized_shape, eps, elementwise_affine, use_triton, device, dtype, arg_name):
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape, arg_name)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps: expected a positive finite float, got {eps!r}")
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.use_triton = bool(use_triton)
        factory = {"device": device, "dtype": dtype}
        if self.elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape, **factory))
        else:
            self.register_parameter("weight", None)

    @property
    def backend(self) -> str:
        return "auto" if self.use_triton else "torch"

    def _rows(self, x: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Size]]:
        """View x with the normalized dims flattened into one (only when there are several)."""
        k = len(self.normalized_shape)
        if k == 1:
            return x, None
        if not isinstance(x, torch.Tensor) or tuple(x.shape[-k:]) != self.normalized_shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected trailing dims {self.normalized_shape}, got shape {got}")
        return x.reshape(*x.shape[:-k], -1), x.shape

    @staticmethod
    def _residual_rows(residual: torch.Tensor, x: torch.Tensor, x_rows: torch.Tensor) -> torch.Tensor:
        """The residual viewed like ``x_rows``; its shape must equal x's, as the functional API requires."""
        if not isinstance(residual, torch.Tensor) or residual.shape != x.shape:
            got = tuple(residual.shape) if isinstance(residual, torch.Tensor) else type(residual).__name__
            raise ValueError(f"residual: expected shape {tuple(x.shape)} like x, got {got}")
        return residual.reshape(x_rows.shape)

    @staticmethod
    def _flat(p: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if p is None or p.dim() == 1 else p.reshape(-1)

    def explain(self, x: torch.Tensor, residual: bool = False):
        """The backend a call with ``x`` would take, and why (see trinix_bench.explain)."""
        from .dispatch import explain

        op = f"fused_add_{self._op}" if residual else self._op
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        return explain(x, op, backend=self.backend, requires_grad=needs_grad)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"use_triton={self.use_triton}"
        )


class FastRMSNorm(_FastNormBase):
    """RMSNorm over the last dim(s): y = x / sqrt(mean(x^2) + eps) * weight, computed in fp32.

    ``forward(x)`` returns y; ``forward(x, residual)`` returns (y, x + residual) from one fused kernel.
    """

    _op = "rms_norm"

    def __init__(
        self,
        hidden_size: ShapeLike,
        eps: float = 1e-6,
        elementwise_affine: bool = True,
        use_triton: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__(hidden_size, eps, elementwise_affine, use_triton, device, dtype, "hidden_size")

    @property
    def hidden_size(self) -> int:
        return math.prod(self.normalized_shape)

    @property
    def variance_epsilon(self) -> float:
        """HuggingFace LlamaRMSNorm's name for eps, for code that reads it."""
        return self.eps

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None):
        x_rows, shape = self._rows(x)
        weight = self._flat(self.weight) if shape is not None else self.weight
        if residual is None:
            y = F.rms_norm(x_rows, weight, self.eps, backend=self.backend)
            return y if shape is None else y.view(shape)
        res_rows = self._residual_rows(residual, x, x_rows) if shape is not None else residual
        y, res_out = F.fused_add_rms_norm(x_rows, res_rows, weight, self.eps, backend=self.backend)
        return (y, res_out) if shape is None else (y.view(shape), res_out.view(shape))

    @classmethod
    def from_module(cls, module: nn.Module, *, use_triton: bool = True) -> "FastRMSNorm":
        """Build from torch.nn.RMSNorm or a HuggingFace-style RMSNorm (``weight`` + ``variance_epsilon``).

        torch.nn.RMSNorm with eps=None uses machine epsilon at run time, of fp32 for half-precision
        inputs (its computation dtype) and of the input dtype otherwise; the weight's dtype stands in
        for the input's here.
        """
        weight = getattr(module, "weight", None)
        eps = getattr(module, "eps", getattr(module, "variance_epsilon", None))
        if eps is None:
            dtype = weight.dtype if weight is not None else torch.get_default_dtype()
            eps = torch.finfo(torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype).eps
        shape = tuple(weight.shape) if weight is not None else tuple(getattr(module, "normalized_shape"))
        new = cls(shape, eps=eps, elementwise_affine=weight is not None, use_triton=use_triton,
                  device=weight.device if weight is not None else None,
                  dtype=weight.dtype if weight is not None else None)
        if weight is not None:
            new.load_state_dict({"weight": weight.detach()})
        return new


class FastLayerNorm(_FastNormBase):
    """LayerNorm over the last dim(s): y = (x - mean) / sqrt(var + eps) * weight + bias, in fp32.

    ``forward(x)`` returns y; ``forward(x, residual)`` returns (y, x + residual) from one fused kernel.
    """

    _op = "layer_norm"

    def __init__(
        self,
        normalized_shape: ShapeLike,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        use_triton: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__(normalized_shape, eps, elementwise_affine, use_triton, device, dtype, "normalized_shape")
        if self.elementwise_affine and bias:
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None):
        x_rows, shape = self._rows(x)
        weight, bias = (self._flat(self.weight), self._flat(self.bias)) if shape is not None else (self.weight, self.bias)
        if residual is None:
            y = F.layer_norm(x_rows, weight, bias, self.eps, backend=self.backend)
            return y if shape is None else y.view(shape)
        res_rows = self._residual_rows(residual, x, x_rows) if shape is not None else residual
        y, res_out = F.fused_add_layer_norm(x_rows, res_rows, weight, bias, self.eps, backend=self.backend)
        return (y, res_out) if shape is None else (y.view(shape), res_out.view(shape))

    @classmethod
    def from_module(cls, module: nn.LayerNorm, *, use_triton: bool = True) -> "FastLayerNorm":
        """Build from torch.nn.LayerNorm, copying weight and bias."""
        weight, bias = module.weight, module.bias
        ref = weight if weight is not None else bias
        new = cls(tuple(module.normalized_shape), eps=module.eps, elementwise_affine=module.elementwise_affine,
                  bias=bias is not None, use_triton=use_triton,
                  device=ref.device if ref is not None else None, dtype=ref.dtype if ref is not None else None)
        new.load_state_dict(module.state_dict())
        return new
