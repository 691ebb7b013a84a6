"""Backend choice between our Triton kernels and the PyTorch path.

``decide_backend`` is a pure function of the call's facts (op, device, size, whether gradients are
needed) and a ``DispatchThresholds``; ``explain`` gathers those facts from real tensors so a user or
the benchmark report can see what "auto" will do and why.

Thresholds are data: the defaults below come from measurements on an H200 (docs/dispatch.md says
which run), and a JSON profile can replace them, either through ``set_dispatch_profile(path)`` or the
``TRINIX_DISPATCH_PROFILE`` environment variable (read on first use).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch

BACKENDS = ("auto", "triton", "torch")
OPS = ("rms_norm", "layer_norm", "fused_add_rms_norm", "fused_add_layer_norm")
PROFILE_ENV_VAR = "TRINIX_DISPATCH_PROFILE"

# Dtypes our kernels take for x; anything else (float64) runs on the PyTorch path.
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def threshold_field(op: str, training: bool) -> str:
    """The DispatchThresholds field of an op and regime, e.g. rms_norm_train_min_elements."""
    return f"{op}_train_min_elements" if training else f"{op}_min_elements"


@dataclass(frozen=True)
class DispatchThresholds:
    """Smallest rows*hidden at which "auto" picks Triton, per op, for inference and for training.

    Below a threshold the PyTorch path was measured faster (or within noise) on the H200: tiny calls
    are launch-bound, and there the fewest Python layers win. "train" applies when any input needs a
    gradient, since the autograd round trip has its own fixed cost.
    """

    # scripts/measure_dispatch.py on the H200, 2026-11-21, bf16, commit d2cd7d6 (best of three
    # do_bench medians per size; docs/results/h200/dispatch_profile*.json, docs/dispatch.md). A
    # second measurement in the next device run (run 38) gave the same eight thresholds.
    # Inference: Triton at least as fast as the PyTorch path (F.rms_norm / F.layer_norm, fused: x + r
    # first) from the smallest size, 1x4096, up (rms_norm 5.0 vs 10.6 us; fused add + RMSNorm 5.0 vs
    # 11.8 us, which lost at 1x4096-128x4096 before the launch wrappers' host time was cut).
    rms_norm_min_elements: int = 4096
    layer_norm_min_elements: int = 4096
    fused_add_rms_norm_min_elements: int = 4096
    fused_add_layer_norm_min_elements: int = 4096
    # Training (forward + backward through autograd): the eager Triton fwd+bwd still costs ~100-160 us
    # of host time a call against ~30-70 us for F.*, so PyTorch wins until the GPU time dominates:
    # RMSNorm and LayerNorm from 4096x8192 (33.5M; rms 113.2 vs 193.1 us), the fused ops from
    # 4096x4096 (16.8M; 132.5 vs 161.4 us, LayerNorm 156.0 vs 174.1 us).
    rms_norm_train_min_elements: int = 33_554_432
    layer_norm_train_min_elements: int = 33_554_432
    fused_add_rms_norm_train_min_elements: int = 16_777_216
    fused_add_layer_norm_train_min_elements: int = 16_777_216

    def __post_init__(self):
        # (op, training) -> threshold, looked up on every call; built once since the fields are frozen.
        limits = {(op, training): getattr(self, threshold_field(op, training))
                  for op in OPS for training in (False, True)}
        object.__setattr__(self, "_limits", limits)

    def min_elements(self, op: str, training: bool) -> int:
        return self._limits[op, training]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "profile") -> "DispatchThresholds":
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of threshold names to integers")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{source}: unknown threshold(s) {unknown}; expected names from {sorted(names)}")
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{source}: threshold {key!r} must be a non-negative integer, got {value!r}")
        return dataclasses.replace(cls(), **data)


class DispatchDecision(NamedTuple):
    backend: str  # "triton" or "torch"
    reason: str


def decide_backend(
    op: str,
    *,
    device_type: str,
    dtype: torch.dtype,
    numel: int,
    needs_grad: bool,
    triton_ready: bool,
    triton_unready_reason: str,
    thresholds: DispatchThresholds,
    force: str = "auto",
) -> DispatchDecision:
    """Pick the backend for one call. Pure: the same facts always give the same answer.

    ``force`` is the user's ``backend`` argument: "torch" and "triton" are obeyed ("triton" raises
    when it cannot run), "auto" compares ``numel`` with the op's threshold.
    """
    if force == "torch":
        return DispatchDecision("torch", "forced: backend='torch'")
    if force == "triton":
        if not triton_ready:
            raise ValueError(f"backend='triton' cannot run: {triton_unready_reason}")
        if dtype not in TRITON_DTYPES:
            raise ValueError(f"backend='triton' cannot run: x dtype {dtype} is not one of float16, bfloat16, float32")
        return DispatchDecision("triton", "forced: backend='triton'")
    if force != "auto":
        raise ValueError(f"backend: expected one of {BACKENDS}, got {force!r}")
    if device_type != "cuda":
        return DispatchDecision("torch", f"auto: {device_type} tensor; Triton kernels are used on CUDA only")
    if not triton_ready:
        return DispatchDecision("torch", f"auto: {triton_unready_reason}")
    if dtype not in TRITON_DTYPES:
        return DispatchDecision("torch", f"auto: dtype {dtype} has no Triton kernel")
    limit = thresholds.min_elements(op, needs_grad)
    kind = "training" if needs_grad else "inference"
    if numel < limit:
        return DispatchDecision("torch", f"auto: {numel} elements < {kind} threshold {limit} for {op}")
    return DispatchDecision("triton", f"auto: {numel} elements >= {kind} threshold {limit} for {op}")


# ---------------------------------------------------------------------------------------------
# Triton availability (cached: importing triton is slow and its answer does not change)

_triton_import_error: Optional[str] = None
_triton_checked = False


def _triton_import_problem() -> Optional[str]:
    global _triton_checked, _triton_import_error
    if not _triton_checked:
        try:
            import triton  # noqa: F401
        except Exception as exc:  # ImportError, or a broken install raising anything else
            _triton_import_error = f"triton is not importable ({type(exc).__name__}: {exc}); pip install triton"
        _triton_checked = True
    return _triton_import_error


def interpreter_enabled() -> bool:
    """True when TRITON_INTERPRET=1, in which case Triton kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_status(device_type: str) -> tuple[bool, str]:
    """(can our Triton kernels run on this device, why not)."""
    problem = _triton_import_problem()
    if problem is not None:
        return False, problem
    if device_type == "cuda":
        return True, ""
    if device_type == "cpu" and interpreter_enabled():
        return True, ""
    return False, f"Triton kernels need a CUDA tensor (got a {device_type} tensor; TRITON_INTERPRET=1 runs them on CPU)"


# ---------------------------------------------------------------------------------------------
# The thresholds in effect

_active_thresholds: Optional[DispatchThresholds] = None
_active_source = "defaults"


def load_dispatch_profile(path: Union[str, os.PathLike]) -> DispatchThresholds:
    """Read a JSON profile ({"rms_norm_min_elements": 65536, ...}); missing names keep defaults."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ValueError(f"dispatch profile path {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"dispatch profile {str(p)!r} is not valid JSON: {exc}") from None
    return DispatchThresholds.from_dict(data, source=f"dispatch profile {str(p)!r}")


def set_dispatch_profile(profile: Union[None, str, os.PathLike, DispatchThresholds, dict]) -> DispatchThresholds:
    """Replace the thresholds "auto" uses: a JSON path, a dict, a DispatchThresholds, or None (defaults)."""
    global _active_thresholds, _active_source
    if profile is None:
        thresholds, source = DispatchThresholds(), "defaults"
    elif isinstance(profile, DispatchThresholds):
        thresholds, source = profile, "set_dispatch_profile(DispatchThresholds)"
    elif isinstance(profile, dict):
        thresholds, source = DispatchThresholds.from_dict(profile, source="profile dict"), "set_dispatch_profile(dict)"
    elif isinstance(profile, (str, os.PathLike)):
        thresholds, source = load_dispatch_profile(profile), str(profile)
    else:
        raise TypeError(
            f"profile: expected a path, dict, DispatchThresholds or None, got {type(profile).__name__}"
        )
    _active_thresholds, _active_source = thresholds, source
    return thresholds


def current_thresholds() -> DispatchThresholds:
    """The thresholds in effect; the first call honours TRINIX_DISPATCH_PROFILE."""
    global _active_thresholds, _active_source
    if _active_thresholds is None:
        env_path = os.environ.get(PROFILE_ENV_VAR)
        if env_path:
            _active_thresholds, _active_source = load_dispatch_profile(env_path), f"${PROFILE_ENV_VAR}={env_path}"
        else:
            _active_thresholds, _active_source = DispatchThresholds(), "defaults"
    return _active_thresholds


def thresholds_source() -> str:
    """Where the thresholds in effect came from (for the report)."""
    current_thresholds()
    return _active_source


def resolve_backend(op: str, x: torch.Tensor, needs_grad: bool, backend: str) -> DispatchDecision:
    """Gather the facts of a call from its tensors and decide. Used on every call: keep it lean."""
    device_type = x.device.type
    ready, why = triton_status(device_type)
    return decide_backend(
        op,
        device_type=device_type,
        dtype=x.dtype,
        numel=x.numel(),
        needs_grad=needs_grad,
        triton_ready=ready,
        triton_unready_reason=why,
        thresholds=current_thresholds(),
        force=backend,
    )


def uses_triton(op: str, x: torch.Tensor, needs_grad: bool, backend: str) -> bool:
    """``resolve_backend(op, x, needs_grad, backend).backend == "triton"``, for the per-call path.

    An auto call on a CUDA tensor of a kernel dtype (the case that matters for host time) is
    decided here by the threshold alone, without gathering ``x.device.type`` or formatting the
    reason; every other call goes through ``resolve_backend``. tests/test_dispatch.py checks that
    both agree.
    """
    if backend == "auto" and x.is_cuda and x.dtype in TRITON_DTYPES and _triton_import_problem() is None:
        return x.numel() >= current_thresholds().min_elements(op, needs_grad)
    return resolve_backend(op, x, needs_grad, backend).backend == "triton"


def explain(
    x: torch.Tensor,
    op: str = "rms_norm",
    *,
    backend: str = "auto",
    requires_grad: Optional[bool] = None,
) -> DispatchDecision:
    """What ``op`` would run for ``x`` and why, e.g. ``explain(x, op="rms_norm").backend``.

    ``requires_grad`` defaults to whether a call now would record autograd for ``x``.
    """
    if op not in OPS:
        raise ValueError(f"op: expected one of {OPS}, got {op!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if requires_grad is None:
        requires_grad = torch.is_grad_enabled() and x.requires_grad
    return resolve_backend(op, x, requires_grad, backend)
