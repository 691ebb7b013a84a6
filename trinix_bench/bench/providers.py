"""The provider registry: the PyTorch baselines, our kernels, and the optional peers.

Built-ins:

- ``pytorch``: the eager reference. RMSNorm is the HuggingFace LlamaRMSNorm formula (upcast x to
  fp32, y = x * rsqrt(mean(x^2) + eps), cast back, multiply by the weight in the input dtype);
  LayerNorm is ``torch.nn.functional.layer_norm``. With a residual: r = x + residual, then norm(r).
- ``torch_native``: ``torch.nn.functional.rms_norm`` (RMSNorm only: the native LayerNorm op is the
  one ``pytorch`` already measures).
- ``torch_compile``: ``torch.compile`` of the ``pytorch`` code.
- ``triton``: ``trinix_bench`` functional ops with ``backend="triton"`` (forced).
- ``trinix``: ``FastRMSNorm`` / ``FastLayerNorm`` with auto dispatch; the row records its pick.

Tests and users add providers with ``register_provider`` (e.g. a deliberately wrong one to see the
correctness check mark it FAILED); ``PROVIDERS`` is a plain dict, so a test may also monkeypatch it.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .. import functional as tbf
from ..dispatch import triton_status
from ..modules import FastLayerNorm, FastRMSNorm
from . import peers
from .spec import Built, Inputs, Provider, Spec


def hf_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """HuggingFace LlamaRMSNorm: statistics in fp32, the weight multiply in the input dtype."""
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def eager_norm(spec: Spec, inp: Inputs):
    """The eager PyTorch function of a cell: fn(x, residual) -> y or (y, x + residual)."""
    n, eps, w, b = inp.x.shape[-1], spec.eps, inp.weight, inp.bias

    def norm(t):
        return hf_rms_norm(t, w, eps) if spec.layer == "rmsnorm" else F.layer_norm(t, (n,), w, b, eps)

    return _with_residual(norm, spec.residual)


def _with_residual(norm, residual: bool):
    """fn(x, residual): norm(x), or (norm(x + residual), x + residual) for the fused variant."""
    if not residual:
        return lambda x, r: norm(x)

    def fused(x, r):
        s = x + r
        return norm(s), s

    return fused


def _build_pytorch(spec: Spec, inp: Inputs) -> Built:
    return Built(eager_norm(spec, inp), inp.params(), "torch")


def _build_torch_native(spec: Spec, inp: Inputs) -> Built:
    n, w = inp.x.shape[-1], inp.weight
    return Built(_with_residual(lambda t: F.rms_norm(t, (n,), w, spec.eps), spec.residual), inp.params(), "torch")


def _native_unsupported(spec: Spec, device_type: str) -> Optional[str]:
    if spec.layer == "layernorm":
        return "LayerNorm's native op is torch.nn.functional.layer_norm, measured as provider 'pytorch'"
    return None


def _build_torch_compile(spec: Spec, inp: Inputs) -> Built:
    # Dynamo caches per code object with a small recompile limit; every cell compiles the same
    # eager code for a new shape/dtype, so start from a clean cache instead of hitting the limit
    # (after which it would silently fall back to eager). dynamic=False: one static kernel per shape.
    torch._dynamo.reset()
    return Built(torch.compile(eager_norm(spec, inp), dynamic=False), inp.params(), "inductor")


def _build_triton(spec: Spec, inp: Inputs) -> Built:
    eps = spec.eps
    ops = {
        "rms_norm": lambda x, r: tbf.rms_norm(x, inp.weight, eps, backend="triton"),
        "layer_norm": lambda x, r: tbf.layer_norm(x, inp.weight, inp.bias, eps, backend="triton"),
        "fused_add_rms_norm": lambda x, r: tbf.fused_add_rms_norm(x, r, inp.weight, eps, backend="triton"),
        "fused_add_layer_norm": lambda x, r: tbf.fused_add_layer_norm(
            x, r, inp.weight, inp.bias, eps, backend="triton"
        ),
    }
    return Built(ops[spec.op], inp.params(), "triton")


def _triton_unsupported(spec: Spec, device_type: str) -> Optional[str]:
    ready, why = triton_status(device_type)
    return None if ready else why


def _build_trinix(spec: Spec, inp: Inputs) -> Built:
    n = inp.x.shape[-1]
    factory = {"device": inp.x.device, "dtype": inp.x.dtype}
    if spec.layer == "rmsnorm":
        module = FastRMSNorm(n, eps=spec.eps, **factory)
    else:
        module = FastLayerNorm(n, eps=spec.eps, **factory)
    params = {"weight": module.weight, "bias": getattr(module, "bias", None)}  # FastRMSNorm has no bias
    with torch.no_grad():
        for name, p in params.items():
            if p is not None:
                p.copy_(getattr(inp, name))
    module.requires_grad_(spec.needs_grad)
    decision = module.explain(inp.x, residual=spec.residual)
    fn = (lambda x, r: module(x, r)) if spec.residual else (lambda x, r: module(x))
    return Built(fn, params, decision.backend, decision.reason)


PROVIDERS: dict[str, Provider] = {
    "pytorch": Provider("pytorch", _build_pytorch),
    "torch_native": Provider("torch_native", _build_torch_native, unsupported=_native_unsupported),
    "torch_compile": Provider("torch_compile", _build_torch_compile),
    "triton": Provider("triton", _build_triton, unsupported=_triton_unsupported),
    "trinix": Provider("trinix", _build_trinix),
    **{p.name: p for p in peers.PEERS},
}

# What --quick runs: the PyTorch path only, no compilation (inductor compiles C++ on CPU: minutes).
QUICK_PROVIDERS = ("pytorch", "torch_native", "trinix")


def register_provider(provider: Provider) -> None:
    """Add (or replace) a provider, e.g. a test-only one; it becomes a valid --providers name."""
    PROVIDERS[provider.name] = provider
