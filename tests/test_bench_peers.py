"""Peer adapters against the real packages, wherever they are installed.

On a machine without a peer its tests skip; the probe must then report it unavailable with an
install hint. With CUDA, every importable provider runs a small sweep and must pass the float64
correctness check (this is where the adapters meet the real kernels, e.g. Liger-Kernel on the H200).
"""

import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trinix_bench.bench import cli, peers, providers, schema
from trinix_bench.bench.results import load_rows

REPO = Path(__file__).resolve().parents[1]

# provider -> (module, {function: (parameters passed by position, parameters passed by name)})
BOUND = {
    "apex": ("apex.normalization.fused_layer_norm", {
        "fused_rms_norm_affine": (("input", "weight", "normalized_shape", "eps"), ()),
        "fused_layer_norm_affine": (("input", "weight", "bias", "normalized_shape", "eps"), ())}),
    "liger": ("liger_kernel.transformers.functional", {
        "liger_rms_norm": (("X", "W", "eps"), ()),
        "liger_layer_norm": (("X", "W", "B", "eps"), ()),
        "liger_fused_add_rms_norm": (("X", "R", "W", "eps"), ())}),
    "quack": ("quack.rmsnorm", {
        "rmsnorm": (("x", "weight"), ("residual", "eps", "prenorm")),
        "layernorm_fwd": (("x", "weight", "bias"), ("eps",))}),
    "flashinfer": ("flashinfer.norm", {
        "rmsnorm": (("input", "weight", "eps"), ()),
        "fused_add_rmsnorm": (("input", "residual", "weight", "eps"), ()),
        "layernorm": (("input", "gemma", "beta", "eps"), ())}),
    "vllm": ("vllm._custom_ops", {
        "rms_norm": (("out", "input", "weight", "epsilon"), ()),
        "fused_add_rms_norm": (("input", "residual", "weight", "epsilon"), ())}),
}


@pytest.mark.parametrize("name", sorted(BOUND))
def test_adapter_binds_the_real_public_api(name):
    reason = providers.PROVIDERS[name].probe()
    if reason is not None:
        assert "not importable" in reason and ("pip install" in reason or "build" in reason)
        pytest.skip(f"{name} not installed here: {reason}")
    module, functions = BOUND[name]
    mod = importlib.import_module(module)
    for fn, (positional, keywords) in functions.items():
        params = tuple(inspect.signature(getattr(mod, fn)).parameters)
        assert params[: len(positional)] == positional and set(keywords) <= set(params), (name, fn, params)


def test_every_peer_is_registered():
    assert {p.name for p in peers.PEERS} == set(BOUND) <= set(providers.PROVIDERS)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("residual", [False, True])
def test_all_importable_providers_pass_the_reference_on_cuda(tmp_path, residual):
    available = [n for n, p in providers.PROVIDERS.items() if p.probe() is None and n != "torch_compile"]
    args = ["--configs", "Decode-32", "--batch-size", "3", "--seq-len", "100", "--hidden-size", "1024",
            "--dtype", "bf16", "fp16", "fp32", "--providers", ",".join(available), "--device", "cuda",
            "--warmup", "2", "--iters", "5", "--cuda-graph", "--no-progress", "--save-path", str(tmp_path / "r")]
    assert cli.main(args + (["--use-residual"] if residual else [])) == 0
    rows = load_rows(tmp_path / "r")
    bad = [(r["provider"], r["layer"], r["mode"], r["dtype"], r["status"], r["reason"]) for r in rows
           if r["status"] not in (schema.STATUS_OK, schema.STATUS_UNAVAILABLE)]
    assert bad == []
    assert any(r["cuda_graph"] for r in rows if r["status"] == schema.STATUS_OK)


@pytest.mark.skipif(importlib.util.find_spec("trinix_bench.ops.normalization") is None,
                    reason="the Triton kernels (trinix_bench.ops.normalization) have not landed yet")
def test_triton_provider_under_the_interpreter_on_cpu(tmp_path):
    out = tmp_path / "interp"
    proc = subprocess.run(
        [sys.executable, "-m", "trinix_bench.bench.cli", "--batch-size", "2", "--seq-len", "4", "--hidden-size", "64",
         "--device", "cpu", "--providers", "triton", "--dtype", "fp32", "--use-residual", "--warmup", "0",
         "--iters", "1", "--no-progress", "--save-path", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "TRITON_INTERPRET": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = load_rows(out)
    assert rows and all(r["status"] == schema.STATUS_OK and r["backend"] == "triton" for r in rows), rows


# --- the adapters' in-place handling, against stand-ins that follow each API's documented contract


def _rms(x, w, eps):
    h = x.float()
    return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)


def _fused_add_in_place(input, residual, weight, eps):
    """flashinfer/vLLM contract: residual += input, then input = rmsnorm(residual) * weight."""
    residual.add_(input)
    input.copy_(_rms(residual, weight, eps))


class _RmsWritesDxIntoDy(torch.autograd.Function):
    """Liger's in_place=True contract: the backward returns dY's own storage, overwritten with dX."""

    @staticmethod
    def forward(ctx, x, w, eps):
        ctx.save_for_backward(x, w)
        ctx.eps = eps
        return _rms(x, w, eps)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        with torch.enable_grad():
            xr, wr = x.detach().float().requires_grad_(), w.detach().float().requires_grad_()
            h = xr * torch.rsqrt(xr.pow(2).mean(-1, keepdim=True) + ctx.eps) * wr
            dx, dw = torch.autograd.grad(h, (xr, wr), dy.float())
        dy.copy_(dx)
        return dy, dw.to(w.dtype), None


STAND_INS = {
    "flashinfer": ("flashinfer.norm", dict(fused_add_rmsnorm=_fused_add_in_place,
                                           rmsnorm=lambda x, w, eps: _rms(x, w, eps))),
    "vllm": ("vllm._custom_ops", dict(fused_add_rms_norm=_fused_add_in_place,
                                      rms_norm=lambda out, x, w, eps: out.copy_(_rms(x, w, eps)))),
    "liger": ("liger_kernel.transformers.functional",
              dict(liger_rms_norm=lambda X, W, eps: _RmsWritesDxIntoDy.apply(X, W, eps))),
}


@pytest.mark.parametrize("name,residual,mode", [
    ("flashinfer", True, "fwd"), ("flashinfer", False, "fwd"), ("vllm", True, "fwd"), ("vllm", False, "fwd"),
    ("liger", False, "bwd"), ("liger", False, "full")])
def test_adapters_restore_what_the_api_overwrites(monkeypatch, name, residual, mode):
    import types

    from trinix_bench.bench import cases, configs, timing
    from trinix_bench.bench.spec import Provider, Spec

    module, attrs = STAND_INS[name]
    monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(**attrs))
    spec = Spec(configs.Config("T", 2, 8, 64), "rmsnorm", residual, mode, "fp32")
    real = providers.PROVIDERS[name]
    case = cases.make_case(spec, Provider(name, real.build), torch.device("cpu"), seed=5)
    rows = cases.check_rows(spec.config.rows, torch.device("cpu"))
    assert cases.check_case(case, rows)[1] == []
    timing.time_loop(case.run, device_type="cpu", warmup=1, iters=3, prepare=case.prepare)
    case.prepare()
    fresh = cases.make_inputs(spec, torch.device("cpu"), seed=5)
    for field in ("x", "residual", "dy", "dres"):
        now, then = getattr(case.inputs, field), getattr(fresh, field)
        assert (now is None and then is None) or torch.equal(now, then), f"{field} not restored"
    worst, bad = cases.check_case(case, rows)
    assert bad == [] and worst < 1e-5
