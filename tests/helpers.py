"""Shared checks: run an op and its backward, then compare with float64 references."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

import trinix_bench as tb
from trinix_bench import reference as ref

OPS = ("rms_norm", "layer_norm", "fused_add_rms_norm", "fused_add_layer_norm")


def make_inputs(op, rows, hidden, dtype, device, *, weight=True, bias=True, param_dtype=None, seed=None,
                requires_grad=True, x=None):
    """Fresh random inputs (never zeros, never a gradient of ones) for one op call."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed if seed is not None else torch.randint(0, 2**31 - 1, ()).item())

    def rand(*shape, dt=dtype, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float32) * scale + shift).to(device=device, dtype=dt)

    param_dtype = param_dtype or dtype
    x = rand(rows, hidden, scale=2.0, shift=0.5) if x is None else x
    inputs = {
        "x": x,
        "residual": rand(*x.shape) if op.startswith("fused_add") else None,
        "weight": rand(hidden, dt=param_dtype, shift=1.0) if weight else None,
        "bias": rand(hidden, dt=param_dtype) if (bias and op.endswith("layer_norm")) else None,
    }
    shape = inputs["x"].shape
    grads = {"dy": rand(*shape), "dres": rand(*shape) if op.startswith("fused_add") else None}
    if requires_grad:
        for t in inputs.values():
            if t is not None:
                t.requires_grad_(True)
    return inputs, grads


def call(op, inputs, *, eps=None, offset=0.0, backend="auto"):
    """(y, residual_out or None) from the public functional API."""
    fn = getattr(tb, op)
    kwargs = {"backend": backend}
    if eps is not None:
        kwargs["eps"] = eps
    if "rms" in op:
        kwargs["offset"] = offset
    args = [inputs["x"]]
    if op.startswith("fused_add"):
        args.append(inputs["residual"])
    args.append(inputs["weight"])
    if op.endswith("layer_norm"):
        args.append(inputs["bias"])
    out = fn(*args, **kwargs)
    return out if isinstance(out, tuple) else (out, None)


def call_reference(op, inputs, *, eps=None, offset=0.0):
    """Float64 reference outputs on float64 leaf copies, which carry the reference gradients."""
    leaves = {k: (v.detach().double().requires_grad_(v.requires_grad) if v is not None else None)
              for k, v in inputs.items()}
    eps = eps if eps is not None else (1e-6 if "rms" in op else 1e-5)
    x, r, w, b = leaves["x"], leaves["residual"], leaves["weight"], leaves["bias"]
    if op == "rms_norm":
        out = (ref.rms_norm_reference(x, w, eps, offset), None)
    elif op == "layer_norm":
        out = (ref.layer_norm_reference(x, w, b, eps), None)
    elif op == "fused_add_rms_norm":
        out = ref.fused_add_rms_norm_reference(x, r, w, eps, offset, residual_dtype=inputs["x"].dtype)
    else:
        out = ref.fused_add_layer_norm_reference(x, r, w, b, eps, residual_dtype=inputs["x"].dtype)
    return out, leaves


def backward(outputs, grads):
    y, res_out = outputs
    tensors, upstream = [y], [grads["dy"].to(y.dtype)]
    if res_out is not None:
        tensors.append(res_out)
        upstream.append(grads["dres"].to(res_out.dtype))
    torch.autograd.backward(tensors, upstream)


def dx_scale(op, leaves, grads, eps, offset, leaves_dtype):
    """Norm of rstd * dy * (w + offset): the size of the terms dx is a difference of.

    dx = rstd * (g - xhat * c1 - c2) cancels almost completely when a row is tiny (hidden 1 RMSNorm
    gives dx = g * eps / (x^2 + eps)^1.5), so its rounding error is relative to this scale.
    """
    x = leaves["x"].detach()
    if leaves["residual"] is not None:
        x = ref.add_residual_reference(x, leaves["residual"].detach(), leaves_dtype)
    if "rms" in op:
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    else:
        rstd = torch.rsqrt((x - x.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True) + eps)
    w = leaves["weight"].detach() + offset if leaves["weight"] is not None else 1.0 + offset
    return torch.linalg.vector_norm(rstd * grads["dy"].double() * w).item()


def check_op(op, inputs, grads, *, eps=None, offset=0.0, backend="triton", check_grads=True):
    """Run ``op`` forward (and backward) and assert every output and gradient is within tolerance."""
    dtype = inputs["x"].dtype
    tol = ref.tolerance_for(dtype)
    out = call(op, inputs, eps=eps, offset=offset, backend=backend)
    (ref_y, ref_res), leaves = call_reference(op, inputs, eps=eps, offset=offset)
    assert out[0].dtype == dtype and out[0].shape == inputs["x"].shape
    # name -> (relative error, tolerance); parameters are held to their own dtype's tolerance.
    errors = {"y": (ref.relative_error(out[0], ref_y), tol)}
    if ref_res is not None:
        errors["residual_out"] = (ref.relative_error(out[1], ref_res), tol)
    if check_grads:
        backward(out, grads)
        backward((ref_y, ref_res), grads)
        eps_used = eps if eps is not None else (1e-6 if "rms" in op else 1e-5)
        scale = dx_scale(op, leaves, grads, eps_used, offset, dtype)
        for name in ("x", "residual", "weight", "bias"):
            t = inputs[name]
            if t is None:
                continue
            assert t.grad is not None, f"no gradient reached {name}"
            expected = leaves[name].grad
            if name in ("x", "residual"):
                diff = torch.linalg.vector_norm(t.grad.double().cpu() - expected.cpu()).item()
                denom = max(torch.linalg.vector_norm(expected).item(), scale)
                errors["d" + name] = (diff / denom if denom else diff, tol)
            else:
                # A sum over rows carries error relative to the size of its terms, sum_rows |dy|
                # (|xhat| is O(1)); it also keeps exact zeros (LayerNorm of width 1) measurable.
                terms = torch.linalg.vector_norm(grads["dy"].double().abs().reshape(-1, t.shape[-1]).sum(0)).item()
                diff = torch.linalg.vector_norm(t.grad.double().cpu() - expected.cpu()).item()
                denom = max(torch.linalg.vector_norm(expected).item(), terms)
                param_tol = ref.tolerance_for(t.dtype)
                if dtype == torch.bfloat16 and t.device.type == "cpu" and backend == "triton":
                    # The Triton interpreter casts fp32 -> bf16 by truncation, not round-to-nearest
                    # (seen with triton 3.9), so bf16 residual_out values feeding dweight differ from
                    # the reference by bf16 rounding. On the GPU the strict bound applies.
                    param_tol = max(param_tol, tol)
                errors["d" + name] = (diff / denom if denom else diff, param_tol)
    bad = {k: v for k, v in errors.items() if not v[0] <= v[1]}
    assert not bad, f"{op} {tuple(inputs['x'].shape)} {dtype}: (error, tolerance) {bad} (all: {errors})"
    return {k: v[0] for k, v in errors.items()}


def recorded_flags(monkeypatch, flag, kernel=None):
    """The value of the constexpr ``flag`` at each launch of a normalization kernel from now on (None
    for a kernel without it; the backward's partial-sum kernel is left out), or only at launches of
    ``kernel`` when given."""
    from trinix_bench.ops import normalization

    flags = []
    real_launch = normalization._LAUNCHES.launch

    def launch(launched, grid, args, unspecialized, constexprs, num_warps, *options):
        if launched is kernel or (kernel is None and launched is not normalization._sum_partials_kernel):
            flags.append(constexprs.get(flag))
        return real_launch(launched, grid, args, unspecialized, constexprs, num_warps, *options)

    monkeypatch.setattr(normalization._LAUNCHES, "launch", launch)
    return flags


def load_script(name):
    """The module of ``scripts/<name>.py`` (the scripts are not a package)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
