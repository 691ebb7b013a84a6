"""Bad input gets an error naming the argument and the expected form."""

import math

import pytest
import torch

import trinix_bench as tb


@pytest.mark.parametrize("call, exc, message", [
    (lambda: tb.rms_norm([1.0, 2.0]), TypeError, "x: expected a torch.Tensor"),
    (lambda: tb.rms_norm(torch.ones(2, 3, dtype=torch.int32)), TypeError, "x: expected a floating dtype"),
    (lambda: tb.rms_norm(torch.tensor(1.0)), ValueError, "x: expected at least one dimension"),
    (lambda: tb.rms_norm(torch.randn(2, 0)), ValueError, "x: expected at least one dimension"),
    (lambda: tb.rms_norm(torch.randn(2, 4), torch.randn(5)), ValueError, r"weight: expected shape \(4,\)"),
    (lambda: tb.rms_norm(torch.randn(2, 4), torch.randn(2, 4)), ValueError, r"weight: expected shape \(4,\)"),
    (lambda: tb.rms_norm(torch.randn(2, 4), torch.ones(4, dtype=torch.int64)), TypeError, "weight: expected a floating"),
    (lambda: tb.layer_norm(torch.randn(2, 4), None, torch.randn(3)), ValueError, r"bias: expected shape \(4,\)"),
    (lambda: tb.layer_norm(torch.randn(2, 4), None, torch.randn(4, device="meta")), ValueError, "bias: expected a tensor on cpu"),
    (lambda: tb.fused_add_rms_norm(torch.randn(2, 4), torch.randn(2, 5)), ValueError, "residual: expected shape"),
    (lambda: tb.fused_add_rms_norm(torch.randn(2, 4), torch.randn(2, 4).double()), ValueError, "residual: expected dtype"),
    (lambda: tb.fused_add_layer_norm(torch.randn(2, 4), torch.randn(2, 4, device="meta")), ValueError, "residual: expected a tensor on cpu"),
    (lambda: tb.fused_add_layer_norm(torch.randn(2, 4), "r"), TypeError, "residual: expected a torch.Tensor"),
    (lambda: tb.rms_norm(torch.randn(2, 4), eps=0.0), ValueError, "eps: expected a positive finite"),
    (lambda: tb.rms_norm(torch.randn(2, 4), eps=-1e-6), ValueError, "eps: expected a positive finite"),
    (lambda: tb.rms_norm(torch.randn(2, 4), eps=math.inf), ValueError, "eps: expected a positive finite"),
    (lambda: tb.rms_norm(torch.randn(2, 4), eps=math.nan), ValueError, "eps: expected a positive finite"),
    (lambda: tb.layer_norm(torch.randn(2, 4), eps=torch.tensor(1e-5)), TypeError, "eps: expected"),
    (lambda: tb.rms_norm(torch.randn(2, 4), offset=math.nan), TypeError, "offset: expected a finite"),
    (lambda: tb.rms_norm(torch.randn(2, 4), backend="cuda"), ValueError, "backend: expected one of"),
    (lambda: tb.FastRMSNorm(8, eps=0), ValueError, "eps: expected a positive finite"),
])
def test_bad_input_names_the_argument(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_triton_forced_without_cuda_or_interpreter_says_why(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="backend='triton' cannot run: Triton kernels need a CUDA tensor"):
        tb.layer_norm(torch.randn(2, 4), backend="triton")


def test_float64_runs_on_torch_path_and_is_exact():
    x = torch.randn(3, 5, dtype=torch.float64)
    y = tb.rms_norm(x, backend="auto")
    assert y.dtype == torch.float64
    assert torch.allclose(y, x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt(), rtol=1e-12, atol=0)
