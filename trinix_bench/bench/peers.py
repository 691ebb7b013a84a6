"""Adapters for the peer libraries the benchmark compares against, when they are importable.

Each adapter calls the package's public API as its users do; nothing is imported until the sweep
probes it, and an absent package yields ``unavailable`` rows with the import error and an install
hint. The APIs, as their sources define them (checked against the repositories named below):

- apex (NVIDIA/apex ``apex/normalization/fused_layer_norm.py``):
  ``fused_rms_norm_affine(input, weight, normalized_shape, eps)`` and
  ``fused_layer_norm_affine(input, weight, bias, normalized_shape, eps)``, autograd functions backed
  by the ``fused_layer_norm_cuda`` extension. No fused residual variant.
- liger (linkedin/Liger-Kernel ``src/liger_kernel/transformers/functional.py``):
  ``liger_rms_norm(X, W, eps)``, ``liger_layer_norm(X, W, B, eps)``,
  ``liger_fused_add_rms_norm(X, R, W, eps) -> (Y, X + R)``. The RMSNorm backwards default to
  ``in_place=True``: dX is written into the incoming dY, so dy is restored before each iteration.
- quack (Dao-AILab/quack ``quack/rmsnorm.py``): ``rmsnorm(x, weight, residual=None, eps=...,
  prenorm=False)`` with autograd (``prenorm=True`` also returns residual_out), and the forward-only
  ``layernorm_fwd(x, weight, bias, eps)`` that takes fp32 weight/bias and 2-D x.
- flashinfer (flashinfer-ai/flashinfer ``flashinfer/norm.py``), forward only:
  ``rmsnorm(input, weight, eps)``; ``fused_add_rmsnorm(input, residual, weight, eps)`` is in place
  (residual += input, then input = rmsnorm(residual) * weight); ``layernorm(input, gemma, beta, eps)``
  takes bf16 input and fp32 gamma/beta.
- vllm (vllm-project/vllm ``vllm/_custom_ops.py``), forward only: ``rms_norm(out, input, weight,
  epsilon)`` writes into a caller-allocated ``out``; ``fused_add_rms_norm(input, residual, weight,
  epsilon)`` is in place like flashinfer's. No LayerNorm kernel.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Optional

import torch

from .spec import Built, Inputs, Provider, Spec


def _probe(*modules: str, hint: str):
    """A probe that imports ``modules`` and reports the first failure with an install hint."""

    def probe() -> Optional[str]:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # ImportError, or a build that fails to load (OSError, RuntimeError)
                return f"{name} not importable ({type(exc).__name__}: {exc}); {hint}"
        return None

    return probe


def _first(*rules) -> Optional[str]:
    """The reason of the first (condition, reason) pair whose condition holds."""
    return next((reason for cond, reason in rules if cond), None)


def _forward_only(spec: Spec, device_type: str, who: str) -> Optional[str]:
    return _first(
        (device_type != "cuda", f"{who} kernels run on CUDA only"),
        (spec.needs_grad, f"{who} norms are forward-only (no backward); mode {spec.mode} needs one"),
    )


def _fp32(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    # Converted once at build time, outside the timed region.
    return None if t is None else t.detach().float()


# --- apex ------------------------------------------------------------------------------------

_APEX = "apex.normalization.fused_layer_norm"


def _apex_unsupported(spec: Spec, device_type: str) -> Optional[str]:
    return _first(
        (device_type != "cuda", "apex fused norms run on CUDA only"),
        (spec.residual, "apex has no fused add + norm"),
    )


def _apex_build(spec: Spec, inp: Inputs) -> Built:
    m = importlib.import_module(_APEX)
    shape, eps, w, b = (inp.x.shape[-1],), spec.eps, inp.weight, inp.bias
    if spec.layer == "rmsnorm":
        fn = lambda x, r: m.fused_rms_norm_affine(x, w, shape, eps)  # noqa: E731
    else:
        fn = lambda x, r: m.fused_layer_norm_affine(x, w, b, shape, eps)  # noqa: E731
    return Built(fn, inp.params(), "apex")


# --- Liger-Kernel ----------------------------------------------------------------------------

_LIGER = "liger_kernel.transformers.functional"


def _liger_unsupported(spec: Spec, device_type: str) -> Optional[str]:
    lf = importlib.import_module(_LIGER)
    return _first(
        (device_type != "cuda", "Liger-Kernel's Triton kernels run on CUDA only"),
        (spec.layer == "layernorm" and spec.residual, "Liger-Kernel has no fused add + LayerNorm"),
        (
            spec.residual and not hasattr(lf, "liger_fused_add_rms_norm"),
            "this liger-kernel has no liger_fused_add_rms_norm (added in newer releases)",
        ),
    )


def _liger_build(spec: Spec, inp: Inputs) -> Built:
    lf = importlib.import_module(_LIGER)
    eps, w, b = spec.eps, inp.weight, inp.bias
    if spec.layer == "layernorm":
        return Built(lambda x, r: lf.liger_layer_norm(x, w, b, eps), inp.params(), "liger")
    if spec.residual:
        fn = lambda x, r: lf.liger_fused_add_rms_norm(x, r, w, eps)  # noqa: E731
    else:
        fn = lambda x, r: lf.liger_rms_norm(x, w, eps)  # noqa: E731
    # Default in_place=True: the backward overwrites dy with dx.
    return Built(fn, inp.params(), "liger", mutates=("dy",) if spec.needs_grad else ())


# --- quack -----------------------------------------------------------------------------------

_QUACK = "quack.rmsnorm"


def _quack_unsupported(spec: Spec, device_type: str) -> Optional[str]:
    q = importlib.import_module(_QUACK)
    if spec.layer == "rmsnorm":
        return _first(
            (device_type != "cuda", "quack (CuTe DSL) kernels run on CUDA only"),
            (
                spec.residual and "residual" not in inspect.signature(q.rmsnorm).parameters,
                "this quack's rmsnorm has no residual argument",
            ),
        )
    return _first(
        (not hasattr(q, "layernorm_fwd"), "this quack has no quack.rmsnorm.layernorm_fwd"),
        ("bias" not in inspect.signature(q.layernorm_fwd).parameters, "this quack's layernorm_fwd takes no bias"),
        (spec.residual, "quack has no fused add + LayerNorm"),
    ) or _forward_only(spec, device_type, "quack LayerNorm (layernorm_fwd)")


def _quack_build(spec: Spec, inp: Inputs) -> Built:
    q = importlib.import_module(_QUACK)
    eps, w = spec.eps, inp.weight
    if spec.layer == "layernorm":
        w32, b32 = _fp32(inp.weight), _fp32(inp.bias)
        return Built(lambda x, r: q.layernorm_fwd(x, w32, b32, eps=eps), inp.params(), "quack")
    if spec.residual:
        fn = lambda x, r: q.rmsnorm(x, w, residual=r, eps=eps, prenorm=True)  # noqa: E731
    else:
        fn = lambda x, r: q.rmsnorm(x, w, eps=eps)  # noqa: E731
    return Built(fn, inp.params(), "quack")


# --- flashinfer ------------------------------------------------------------------------------

_FLASHINFER = "flashinfer.norm"


def _flashinfer_unsupported(spec: Spec, device_type: str) -> Optional[str]:
    fi = importlib.import_module(_FLASHINFER)
    reason = _forward_only(spec, device_type, "flashinfer")
    if reason or spec.layer == "rmsnorm":
        return reason
    return _first(
        (not hasattr(fi, "layernorm"), "this flashinfer has no flashinfer.norm.layernorm"),
        (spec.residual, "flashinfer has no fused add + LayerNorm"),
        (spec.dtype != "bf16", "flashinfer.norm.layernorm takes bfloat16 input only"),
    )


def _in_place_fused_add(op, w, eps):
    """fn for the in-place fused add APIs: op(x, residual, w, eps) leaves y in x, x + residual in residual."""

    def fn(x, r):
        op(x, r, w, eps)
        return x, r

    return fn


def _flashinfer_build(spec: Spec, inp: Inputs) -> Built:
    fi = importlib.import_module(_FLASHINFER)
    eps, w = spec.eps, inp.weight
    if spec.layer == "layernorm":
        w32, b32 = _fp32(inp.weight), _fp32(inp.bias)
        return Built(lambda x, r: fi.layernorm(x, w32, b32, eps), inp.params(), "flashinfer")
    if spec.residual:
        fused = _in_place_fused_add(fi.fused_add_rmsnorm, w, eps)
        return Built(fused, inp.params(), "flashinfer", mutates=("x", "residual"))
    return Built(lambda x, r: fi.rmsnorm(x, w, eps), inp.params(), "flashinfer")


# --- vLLM ------------------------------------------------------------------------------------

_VLLM = "vllm._custom_ops"


def _vllm_unsupported(spec: Spec, device_type: str) -> Optional[str]:
    if spec.layer == "layernorm":
        return "vLLM's custom ops have no LayerNorm kernel"
    return _forward_only(spec, device_type, "vLLM")


def _vllm_build(spec: Spec, inp: Inputs) -> Built:
    ops = importlib.import_module(_VLLM)
    eps, w = spec.eps, inp.weight
    if spec.residual:
        fused = _in_place_fused_add(ops.fused_add_rms_norm, w, eps)
        return Built(fused, inp.params(), "vllm", mutates=("x", "residual"))

    def rms(x, r):
        # vLLM's RMSNorm layer allocates the output the same way before calling the op.
        out = torch.empty_like(x)
        ops.rms_norm(out, x, w, eps)
        return out

    return Built(rms, inp.params(), "vllm")


PEERS = (
    Provider("apex", _apex_build, _probe(_APEX, "fused_layer_norm_cuda",
                                         hint="build NVIDIA apex from source with --cuda_ext"), _apex_unsupported),
    Provider("liger", _liger_build, _probe(_LIGER, hint="pip install liger-kernel"), _liger_unsupported),
    Provider("quack", _quack_build, _probe(_QUACK, hint="pip install quack-kernels"), _quack_unsupported),
    Provider("flashinfer", _flashinfer_build, _probe(_FLASHINFER, hint="pip install flashinfer-python"),
             _flashinfer_unsupported),
    Provider("vllm", _vllm_build, _probe(_VLLM, hint="pip install vllm (a build matching your torch)"),
             _vllm_unsupported),
)
