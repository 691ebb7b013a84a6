"""FastRMSNorm / FastLayerNorm as drop-ins for torch.nn.RMSNorm, nn.LayerNorm and LlamaRMSNorm."""

import pytest
import torch
from torch import nn

from trinix_bench import FastLayerNorm, FastRMSNorm
from trinix_bench.reference import relative_error, tolerance_for

pytestmark = pytest.mark.interpreter


class HFStyleRMSNorm(nn.Module):
    """The HuggingFace LlamaRMSNorm maths (fp32 variance, weight applied in the input dtype)."""

    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        dtype = hidden_states.dtype
        h = hidden_states.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(dtype)


def _randomize(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


@pytest.mark.parametrize("use_triton", [True, False])
def test_rmsnorm_state_dict_round_trip_with_torch(use_triton):
    theirs = _randomize(nn.RMSNorm(96, eps=1e-6))
    ours = FastRMSNorm(96, eps=1e-6, use_triton=use_triton)
    ours.load_state_dict(theirs.state_dict())
    back = nn.RMSNorm(96, eps=1e-6)
    back.load_state_dict(ours.state_dict())
    assert set(ours.state_dict()) == set(theirs.state_dict()) == {"weight"}
    x = torch.randn(5, 96)
    assert relative_error(ours(x), theirs(x)) < tolerance_for(torch.float32)
    assert torch.equal(back.weight, theirs.weight)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [80, (4, 20)])
def test_layernorm_state_dict_round_trip_with_torch(bias, shape):
    theirs = _randomize(nn.LayerNorm(shape, eps=1e-5, bias=bias))
    ours = FastLayerNorm(shape, eps=1e-5, bias=bias)
    ours.load_state_dict(theirs.state_dict())
    assert set(ours.state_dict()) == set(theirs.state_dict())
    x = torch.randn(3, 7, *((shape,) if isinstance(shape, int) else shape), requires_grad=True)
    y = ours(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    x2 = x.detach().clone().requires_grad_()
    theirs(x2).backward(dy)
    assert relative_error(y, theirs(x2)) < tolerance_for(torch.float32)
    assert relative_error(x.grad, x2.grad) < 1e-4
    assert relative_error(ours.weight.grad, theirs.weight.grad) < 1e-4
    back = nn.LayerNorm(shape, eps=1e-5, bias=bias)
    back.load_state_dict(ours.state_dict())


def test_rmsnorm_matches_hf_llama_style_module():
    hf = _randomize(HFStyleRMSNorm(64, eps=1e-5))
    ours = FastRMSNorm.from_module(hf)
    assert ours.eps == 1e-5 and ours.variance_epsilon == 1e-5
    x = torch.randn(2, 3, 64)
    assert relative_error(ours(x), hf(x)) < tolerance_for(torch.float32)


def test_from_module_copies_torch_modules():
    rms = _randomize(nn.RMSNorm(32, eps=1e-5))
    fast = FastRMSNorm.from_module(rms)
    assert torch.equal(fast.weight, rms.weight) and fast.eps == 1e-5
    ln = _randomize(nn.LayerNorm(32))
    fast_ln = FastLayerNorm.from_module(ln)
    assert torch.equal(fast_ln.bias, ln.bias)


@pytest.mark.parametrize("module_cls", [FastRMSNorm, FastLayerNorm])
def test_module_residual_call_matches_functional_sum(module_cls):
    norm = _randomize(module_cls(48))
    x, residual = torch.randn(4, 48), torch.randn(4, 48)
    y, res_out = norm(x, residual)
    assert torch.equal(res_out, x + residual)
    assert relative_error(y, norm(x + residual)) < tolerance_for(torch.float32)


def test_module_without_affine_has_no_parameters():
    assert list(FastRMSNorm(16, elementwise_affine=False).parameters()) == []
    assert list(FastLayerNorm(16, elementwise_affine=False).parameters()) == []
    assert [n for n, _ in FastLayerNorm(16, bias=False).named_parameters()] == ["weight"]


def test_use_triton_false_always_picks_torch():
    norm = FastRMSNorm(16, use_triton=False)
    assert norm.explain(torch.randn(2, 16)).backend == "torch"
    assert "forced" in norm.explain(torch.randn(2, 16)).reason


@pytest.mark.parametrize("bad", [0, -3, (4, 0), "16", 2.5])
def test_bad_normalized_shape(bad):
    with pytest.raises((TypeError, ValueError), match="hidden_size|normalized_shape"):
        FastRMSNorm(bad) if not isinstance(bad, tuple) else FastLayerNorm(bad)


def test_wrong_trailing_dims_named():
    with pytest.raises(ValueError, match="x: expected trailing dims"):
        FastLayerNorm((4, 8))(torch.randn(2, 8, 4))


def test_module_residual_must_match_x_shape():
    # Same element count but another shape must be refused, as the functional API does.
    norm = FastLayerNorm((4, 16))
    with pytest.raises(ValueError, match="residual: expected shape"):
        norm(torch.randn(2, 4, 16), torch.randn(8, 16))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_from_module_with_eps_none_matches_torch(dtype):
    # torch.nn.RMSNorm(eps=None) uses fp32's epsilon for half inputs; a row of 0.01 shows the gap
    # between that and bf16's epsilon (7.8e-3) plainly.
    theirs = nn.RMSNorm(8, eps=None).to(dtype)
    ours = FastRMSNorm.from_module(theirs)
    x = torch.full((2, 8), 0.01, dtype=dtype)
    assert relative_error(ours(x), theirs(x)) < tolerance_for(dtype)
