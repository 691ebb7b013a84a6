"""The one setup factory, and the correctness check against float64 references.

``make_case(spec, provider, device, seed)`` builds the inputs of a cell and returns a ``Case``: the
callable that is timed (``run``), the untimed step before every iteration (``prepare``: reset grads
to None, restore the inputs an in-place API overwrote), and what is needed to read its results.
The same Case serves the correctness check, the timing loop and the memory measurement.

Mode semantics:

- ``fwd``: ``run`` is one forward call; nothing requires grad (inference).
- ``bwd``: the forward runs once in ``make_case``; ``run`` is
  ``torch.autograd.backward(outputs, grads, retain_graph=True)``.
- ``full``: ``run`` is forward + ``torch.autograd.backward(outputs, grads)``.

With a residual the outputs are (y, residual_out) and the grads (dy, dres), both random.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .. import reference as ref
from .spec import Built, Inputs, Provider, Spec

# Rows checked against the reference: all of them up to this many, else this many evenly spaced
# rows (first and last included). Weight/bias gradients sum over every row, so they are always
# checked in full (the reference walks all rows in chunks for them).
MAX_CHECK_ROWS = 2048
# Elements per float64 reference chunk: 2^24 * 8 B = 128 MiB a tensor bounds the reference's memory.
REF_CHUNK_ELEMENTS = 1 << 24

ROW_WISE = ("y", "residual_out", "dx", "dresidual")


def input_seed(base: int, spec: Spec) -> int:
    """A seed shared by every provider and mode of a (config, layer, residual, dtype): all providers
    see the same numbers, so their errors and timings are comparable."""
    key = f"{spec.config.name}/{spec.config.rows}x{spec.config.hidden}/{spec.layer}/{spec.residual}/{spec.dtype}"
    return (base * 1_000_003 + zlib.crc32(key.encode())) % 2**62


def make_inputs(spec: Spec, device: torch.device, seed: int) -> Inputs:
    """Random normal rows x hidden tensors (never zeros or ones), in a fixed draw order."""
    g = torch.Generator(device=device).manual_seed(seed)
    m, n = spec.config.rows, spec.config.hidden

    def randn(*shape, draw=True):
        if not draw:
            return None
        return torch.randn(*shape, generator=g, device=device, dtype=spec.torch_dtype)

    x, residual = randn(m, n), randn(m, n, draw=spec.residual)
    weight, bias = randn(n), randn(n, draw=spec.layer == "layernorm")
    dy, dres = randn(m, n, draw=spec.needs_grad), randn(m, n, draw=spec.needs_grad and spec.residual)
    for t in (x, residual, weight, bias):
        if t is not None:
            t.requires_grad_(spec.needs_grad)
    return Inputs(x, residual, weight, bias, dy, dres)


@dataclass
class Case:
    spec: Spec
    inputs: Inputs
    built: Built
    run: Callable[[], Optional[tuple]]  # the measured region; returns the outputs (bwd: None)
    prepare: Callable[[], None]  # untimed, before every iteration
    outputs: Optional[tuple] = None  # bwd: the outputs of the one forward made at setup


def _as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def make_case(spec: Spec, provider: Provider, device: torch.device, seed: int) -> Case:
    """The setup factory: inputs + provider callable + mode wrapper (see the module docstring)."""
    inp = make_inputs(spec, device, seed)
    built = provider.build(spec, inp)
    x, r = inp.x, inp.residual
    leaves = [t for t in (x, r, *built.params.values()) if t is not None]
    pristine = {name: getattr(inp, name).detach().clone() for name in built.mutates}
    grads = tuple(t for t in (inp.dy, inp.dres) if t is not None)

    def prepare():
        for t in leaves:
            t.grad = None
        with torch.no_grad():
            for name, saved in pristine.items():
                getattr(inp, name).copy_(saved)

    def forward():
        return _as_tuple(built.fn(x, r))

    if spec.mode == "fwd":
        return Case(spec, inp, built, forward, prepare)
    if spec.mode == "bwd":
        outputs = forward()
        return Case(
            spec, inp, built,
            lambda: torch.autograd.backward(outputs, grads[: len(outputs)], retain_graph=True),
            prepare, outputs,
        )

    def full():
        outs = forward()
        torch.autograd.backward(outs, grads[: len(outs)])
        return outs

    return Case(spec, inp, built, full, prepare)


def check_rows(rows: int, device: torch.device) -> torch.Tensor:
    """The row indices the correctness check compares (deterministic, sorted)."""
    if rows <= MAX_CHECK_ROWS:
        return torch.arange(rows, device=device)
    return torch.linspace(0, rows - 1, MAX_CHECK_ROWS, device=device).round().long().unique()


def _reference_op(spec: Spec):
    """f(x, residual, weight, bias) -> tuple of outputs, from trinix_bench.reference."""
    eps = spec.eps
    if spec.layer == "rmsnorm":
        if spec.residual:
            return lambda x, r, w, b: ref.fused_add_rms_norm_reference(x, r, w, eps)
        return lambda x, r, w, b: (ref.rms_norm_reference(x, w, eps),)
    if spec.residual:
        return lambda x, r, w, b: ref.fused_add_layer_norm_reference(x, r, w, b, eps)
    return lambda x, r, w, b: (ref.layer_norm_reference(x, w, b, eps),)


def reference_results(spec: Spec, inp: Inputs, rows: torch.Tensor) -> dict:
    """Float64 outputs (and, in bwd/full, gradients by autograd) for ``rows``, on the CPU.

    Inputs are upcast to float64 copies, so the residual sum is exact rather than rounded to the
    input dtype first; the difference is one rounding of the input dtype, far inside the tolerance.
    """
    f, grad = _reference_op(spec), spec.needs_grad
    n = inp.x.shape[-1]
    w = inp.weight.detach().double().requires_grad_(grad)
    b = None if inp.bias is None else inp.bias.detach().double().requires_grad_(grad)
    visit = torch.arange(inp.x.shape[0], device=rows.device) if grad else rows
    chunk = max(1, REF_CHUNK_ELEMENTS // n)
    kept: dict = {}
    for start in range(0, visit.numel(), chunk):
        idx = visit[start : start + chunk]

        def leaf(t):
            return None if t is None else t.detach()[idx].double().requires_grad_(grad)

        xc, rc = leaf(inp.x), leaf(inp.residual)
        outs = f(xc, rc, w, b)
        if grad:
            upstream = [t.detach()[idx].double() for t in (inp.dy, inp.dres) if t is not None]
            torch.autograd.backward(outs, upstream)
        keep = torch.isin(idx, rows)
        found = dict(zip(("y", "residual_out"), outs))
        if grad:
            found.update(dx=xc.grad, dresidual=None if rc is None else rc.grad)
        for name, t in found.items():
            if t is not None:
                kept.setdefault(name, []).append(t.detach()[keep].cpu())
    result = {name: torch.cat(parts) for name, parts in kept.items()}
    if grad:
        result["dweight"] = w.grad.cpu()
        if b is not None:
            result["dbias"] = b.grad.cpu()
    return result


def provider_results(case: Case, outs: tuple, rows: torch.Tensor) -> dict:
    """What the provider produced, row-wise tensors restricted to ``rows``; missing ones are None."""
    spec, inp = case.spec, case.inputs
    names = ("y", "residual_out") if spec.residual else ("y",)
    got = {name: (outs[i] if i < len(outs) else None) for i, name in enumerate(names)}
    if spec.needs_grad:
        got["dx"] = inp.x.grad
        if spec.residual:
            got["dresidual"] = inp.residual.grad
        got["dweight"] = case.built.params["weight"].grad
        if spec.layer == "layernorm":
            got["dbias"] = case.built.params["bias"].grad
    n = inp.x.shape[-1]
    return {
        name: (t.detach().reshape(-1, n)[rows] if name in ROW_WISE and t is not None else t)
        for name, t in got.items()
    }


def check_case(case: Case, rows: torch.Tensor) -> tuple[float, list[str]]:
    """Run the case once and compare every output/gradient with the float64 reference.

    Returns (worst relative error, ["name=error", ...] for those above the dtype's tolerance). The
    reference is computed from the restored inputs before the call, because in-place providers
    overwrite them.
    """
    case.prepare()
    expected = reference_results(case.spec, case.inputs, rows)
    outs = case.run()
    got = provider_results(case, outs if outs is not None else case.outputs, rows)
    tol = ref.tolerance_for(case.spec.torch_dtype)
    errors = {}
    for name, exp in expected.items():
        actual = got.get(name)
        if actual is None or tuple(actual.shape) != tuple(exp.shape):
            errors[name] = float("inf")
        else:
            errors[name] = ref.relative_error(actual, exp)
    bad = [f"{name}={err:.3g}" for name, err in errors.items() if not err <= tol]
    return max(errors.values()), bad
