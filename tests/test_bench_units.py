"""Unit tests of the harness pieces: bytes model, statistics, registry, memory, correctness check."""

import math

import pytest
import torch

from trinix_bench.bench import cases, configs, environment, memory, metrics, providers
from trinix_bench.bench.spec import Built, Provider, Spec


def _spec(layer="rmsnorm", residual=False, mode="fwd", dtype="fp32", rows=(2, 8), hidden=64):
    return Spec(configs.Config("T", rows[0], rows[1], hidden), layer, residual, mode, dtype)


@pytest.mark.parametrize(
    "layer,residual,mode,expected",
    [
        # M=16 rows, N=64, s=2: tensor = 2048 B, vector = 128 B
        ("rmsnorm", False, "fwd", 2 * 2048 + 1 * 128),
        ("rmsnorm", True, "fwd", 4 * 2048 + 1 * 128),
        ("rmsnorm", False, "bwd", 3 * 2048 + 2 * 128),
        ("layernorm", True, "bwd", 4 * 2048 + 3 * 128),
        ("layernorm", False, "full", (2 * 2048 + 2 * 128) + (3 * 2048 + 3 * 128)),
    ],
)
def test_ideal_bytes_model(layer, residual, mode, expected):
    assert metrics.ideal_bytes(layer, residual, mode, rows=16, hidden=64, elem_size=2) == expected


def test_ideal_bytes_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        metrics.ideal_bytes("rmsnorm", False, "sideways", 1, 1, 2)


def test_summarize_and_bandwidth():
    stats = metrics.summarize_ms([5.0, 1.0, 3.0, 2.0, 4.0])
    assert stats == pytest.approx({"median_ms": 3.0, "p20_ms": 1.8, "p80_ms": 4.2, "min_ms": 1.0, "max_ms": 5.0})
    assert metrics.gbps(2_000_000, 1.0) == pytest.approx(2.0)
    assert metrics.percent_of(50.0, 200.0) == pytest.approx(25.0)
    assert metrics.percent_of(50.0, None) is None and metrics.percent_of(1.0, 0.0) is None


def test_config_registry_and_custom():
    assert list(configs.CONFIGS) == ["Decode-1", "Decode-32", "Small", "Medium", "Large", "XL", "XXL", "XXXL"]
    assert (configs.CONFIGS["XXL"].rows, configs.CONFIGS["XXL"].hidden) == (32768, 12288)
    assert configs.CONFIGS["Small"].elements == 4 * 512 * 4096
    c = configs.custom_config(hidden=256)
    assert (c.name, c.batch, c.seq_len, c.hidden) == ("Custom", 1, 2048, 256)
    assert "XXXL" in configs.format_registry()


def test_spec_bandwidth_table():
    assert environment.spec_bandwidth("NVIDIA H200") == 4800.0
    assert environment.spec_bandwidth("NVIDIA H100 80GB HBM3") == 3350.0
    assert environment.spec_bandwidth("NVIDIA H100 PCIe") == 2000.0
    assert environment.spec_bandwidth("Some Future GPU") is None


def test_cpu_peak_memory_counts_frees():
    mib = 2**20

    def sequential():  # three 1 MiB buffers, each freed before the next: peak is 1 MiB, not 3
        for _ in range(3):
            t = torch.ones(mib, dtype=torch.uint8)
            del t

    def overlapping():  # a, then a + 1 while a is alive: 2 MiB
        a = torch.ones(mib, dtype=torch.uint8)
        return a + 1

    cpu = torch.device("cpu")
    assert mib <= memory.peak_bytes(sequential, lambda: None, cpu) < mib + 64 * 1024
    assert 2 * mib <= memory.peak_bytes(overlapping, lambda: None, cpu) < 2 * mib + 64 * 1024


def test_fit_estimate_grows_with_mode_and_residual():
    fwd, full = memory.estimate_bytes(_spec(mode="fwd")), memory.estimate_bytes(_spec(mode="full"))
    assert full > fwd > memory.FIXED_OVERHEAD_BYTES
    xxxl = Spec(configs.CONFIGS["XXXL"], "rmsnorm", True, "full", "bf16")
    # 2^31 elements * (8 bf16 tensors * 2 B + 5 fp32 copies * 4 B) + overhead
    assert memory.estimate_bytes(xxxl) == 131072 * 16384 * 36 + memory.FIXED_OVERHEAD_BYTES


def test_inputs_are_random_and_shared_across_modes():
    fwd, full = _spec(mode="fwd", residual=True), _spec(mode="full", residual=True)
    a = cases.make_inputs(fwd, torch.device("cpu"), cases.input_seed(0, fwd))
    b = cases.make_inputs(full, torch.device("cpu"), cases.input_seed(0, full))
    assert torch.equal(a.x, b.x) and torch.equal(a.residual, b.residual) and torch.equal(a.weight, b.weight)
    assert a.dy is None and b.dy is not None and b.x.requires_grad and not a.x.requires_grad
    for t in (b.x, b.dy, b.dres, b.weight):
        assert t.std() > 0.5 and not torch.all(t == 1)


def test_check_rows_subsample_is_deterministic_and_bounded():
    cpu = torch.device("cpu")
    assert torch.equal(cases.check_rows(5, cpu), torch.arange(5))
    rows = cases.check_rows(100_000, cpu)
    assert len(rows) == cases.MAX_CHECK_ROWS and rows[0] == 0 and rows[-1] == 99_999
    assert torch.equal(rows, cases.check_rows(100_000, cpu))


class _ScaleGrad(torch.autograd.Function):
    """Identity forward, gradient scaled by 1.1: a provider whose outputs are right and grads wrong."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * 1.1


@pytest.mark.parametrize("mode", ["fwd", "bwd", "full"])
def test_check_case_catches_wrong_gradients_only_where_checked(mode):
    spec = _spec(layer="layernorm", residual=True, mode=mode)

    def build(s, inp):
        fn = providers.eager_norm(s, inp)
        return Built(lambda x, r: fn(_ScaleGrad.apply(x), r), inp.params(), "test")

    case = cases.make_case(spec, Provider("bad_grad", build), torch.device("cpu"), seed=1)
    worst, bad = cases.check_case(case, cases.check_rows(spec.config.rows, torch.device("cpu")))
    if mode == "fwd":
        assert bad == [] and worst < 1e-6
    else:
        assert [b.split("=")[0] for b in bad] == ["dx"]  # residual's grad does not pass through x
        assert worst == pytest.approx(0.1, rel=0.05)


def test_reference_chunking_matches_one_pass(monkeypatch):
    spec = _spec(layer="rmsnorm", residual=True, mode="full", rows=(4, 16), hidden=32)
    inp = cases.make_inputs(spec, torch.device("cpu"), 3)
    rows = cases.check_rows(64, torch.device("cpu"))
    whole = cases.reference_results(spec, inp, rows)
    monkeypatch.setattr(cases, "REF_CHUNK_ELEMENTS", 32 * 5)  # 5-row chunks, the last one short
    chunked = cases.reference_results(spec, inp, rows)
    assert whole.keys() == chunked.keys() == {"y", "residual_out", "dx", "dresidual", "dweight"}
    for name in whole:
        assert torch.allclose(whole[name], chunked[name], rtol=1e-12, atol=1e-12), name
    x64 = inp.x.detach().double() + inp.residual.detach().double()
    expected_y = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + spec.eps) * inp.weight.detach().double()
    assert torch.allclose(whole["y"], expected_y, rtol=1e-12, atol=1e-12)
    assert math.isclose(float(whole["dx"].sub(whole["dresidual"]).abs().max()), 0.0)


def test_git_sha_falls_back_to_the_environment_variable(monkeypatch, tmp_path):
    # A copied tree without .git (a benchmark machine that receives files only) records the SHA
    # the caller passes in TRINIX_GIT_SHA instead of "unknown".
    from trinix_bench.bench import environment

    monkeypatch.setenv(environment.GIT_SHA_ENV_VAR, "0123abc")
    monkeypatch.setattr(environment.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(OSError("no git")))
    assert environment.git_sha() == "0123abc"
    monkeypatch.delenv(environment.GIT_SHA_ENV_VAR)
    assert environment.git_sha() == "unknown"


def test_git_sha_variable_wins_over_stale_git_metadata(monkeypatch):
    # A copied tree may carry .git of another commit (the H200 copies did, run 35): the SHA the
    # caller passes is what ran. Without it, HEAD is read.
    from types import SimpleNamespace

    from trinix_bench.bench import environment

    head = SimpleNamespace(returncode=0, stdout="d9246ade5e8487f70b9c1ee6ad0096e666136736\n")
    monkeypatch.setattr(environment.subprocess, "run", lambda *a, **k: head)
    monkeypatch.setenv(environment.GIT_SHA_ENV_VAR, "0123abc")
    assert environment.git_sha() == "0123abc"
    monkeypatch.delenv(environment.GIT_SHA_ENV_VAR)
    assert environment.git_sha() == "d9246ade5e8487f70b9c1ee6ad0096e666136736"
