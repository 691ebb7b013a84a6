"""The types shared by the providers, the setup factory and the runner.

A ``Spec`` is one cell of the sweep (config, layer, residual, mode, dtype); a ``Provider`` turns a
Spec and its ``Inputs`` into a ``Built`` callable. Keeping these in one small module lets the
built-in providers and the optional peer adapters share them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .configs import DTYPES, EPS, Config


@dataclass(frozen=True)
class Spec:
    config: Config
    layer: str  # "rmsnorm" | "layernorm"
    residual: bool  # the fused add + norm variant
    mode: str  # "fwd" | "bwd" | "full"
    dtype: str  # "fp16" | "bf16" | "fp32"

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def eps(self) -> float:
        return EPS[self.layer]

    @property
    def needs_grad(self) -> bool:
        return self.mode != "fwd"

    @property
    def op(self) -> str:
        """The trinix_bench op name, as dispatch.OPS spells it."""
        base = "rms_norm" if self.layer == "rmsnorm" else "layer_norm"
        return f"fused_add_{base}" if self.residual else base

    def label(self) -> str:
        layer = f"{self.layer}+add" if self.residual else self.layer
        return f"{self.config.name}/{layer}/{self.mode}/{self.dtype}"


@dataclass
class Inputs:
    """Fresh random tensors for one cell, rows x hidden (residual/bias None where unused).

    In ``bwd``/``full`` x, residual, weight and bias require grad; ``dy``/``dres`` are the random
    upstream gradients of y and residual_out.
    """

    x: torch.Tensor
    residual: Optional[torch.Tensor]
    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    dy: Optional[torch.Tensor]  # None in fwd
    dres: Optional[torch.Tensor]

    def params(self) -> dict:
        """The weight/bias leaves, as ``Built.params`` wants them for functional providers."""
        return {"weight": self.weight, "bias": self.bias}


@dataclass
class Built:
    """What a provider returns for one cell.

    ``fn(x, residual)`` runs the op: it returns y, or (y, residual_out) when the cell has a
    residual (``residual`` is None otherwise). ``params`` are the leaf tensors whose ``.grad`` is the
    weight (and bias) gradient, which for module-based providers are the module's parameters.
    ``mutates`` names the Inputs fields the call overwrites (in-place peer APIs write x/residual,
    Liger's backward writes dx into dy); the factory restores them before each iteration, outside
    the timed region.
    """

    fn: Callable
    params: dict
    backend: str
    dispatch_reason: str = ""
    mutates: tuple = ()


@dataclass(frozen=True)
class Provider:
    """A named implementation. ``probe()`` gives the reason it is unavailable (None if importable);
    ``unsupported(spec, device_type)`` the reason it cannot run that cell (None if it can)."""

    name: str
    build: Callable[[Spec, Inputs], Built]
    probe: Callable[[], Optional[str]] = field(default=lambda: None)
    unsupported: Callable[[Spec, str], Optional[str]] = field(default=lambda spec, device_type: None)
