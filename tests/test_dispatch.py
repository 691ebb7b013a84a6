"""The dispatch decision: a pure function, its thresholds, profiles and explain()."""

import json
from dataclasses import fields as dataclasses_fields, replace as dataclasses_replace

import pytest
import torch

import trinix_bench as tb
from trinix_bench import dispatch
from trinix_bench.dispatch import DispatchThresholds, decide_backend


def _decide(**overrides):
    facts = dict(op="rms_norm", device_type="cuda", dtype=torch.bfloat16, numel=1 << 20, needs_grad=False,
                 triton_ready=True, triton_unready_reason="", thresholds=DispatchThresholds(), force="auto")
    facts.update(overrides)
    op = facts.pop("op")
    return decide_backend(op, **facts)


def test_thresholds_split_inference_and_training():
    t = DispatchThresholds(rms_norm_min_elements=1000, rms_norm_train_min_elements=5000)
    assert _decide(numel=999, thresholds=t).backend == "torch"
    assert _decide(numel=1000, thresholds=t).backend == "triton"
    assert _decide(numel=4999, needs_grad=True, thresholds=t).backend == "torch"
    assert _decide(numel=5000, needs_grad=True, thresholds=t).backend == "triton"
    assert "5000" in _decide(numel=4999, needs_grad=True, thresholds=t).reason


@pytest.mark.parametrize("op", dispatch.OPS)
def test_every_op_has_its_own_thresholds(op):
    t = DispatchThresholds(**{f"{op}_min_elements": 77})
    assert _decide(op=op, numel=76, thresholds=t).backend == "torch"
    assert _decide(op=op, numel=77, thresholds=t).backend == "triton"


def test_cpu_float64_and_missing_triton_fall_back():
    assert _decide(device_type="cpu").backend == "torch"
    assert _decide(dtype=torch.float64).backend == "torch"
    decision = _decide(triton_ready=False, triton_unready_reason="triton is not importable")
    assert decision.backend == "torch" and "not importable" in decision.reason


def test_force_switches():
    assert _decide(force="torch").backend == "torch"
    assert _decide(force="triton", numel=1, thresholds=DispatchThresholds(rms_norm_min_elements=10)).backend == "triton"
    with pytest.raises(ValueError, match="backend='triton' cannot run: no GPU"):
        _decide(force="triton", triton_ready=False, triton_unready_reason="no GPU")
    with pytest.raises(ValueError, match="float64"):
        _decide(force="triton", dtype=torch.float64)
    with pytest.raises(ValueError, match="backend: expected one of"):
        _decide(force="cuda")


def test_profile_from_json_file_and_env(tmp_path, monkeypatch):
    profile = tmp_path / "h200.json"
    profile.write_text(json.dumps({"layer_norm_min_elements": 12345}))
    loaded = tb.load_dispatch_profile(profile)
    assert loaded.layer_norm_min_elements == 12345 and loaded.rms_norm_min_elements == DispatchThresholds().rms_norm_min_elements
    monkeypatch.setattr(dispatch, "_active_thresholds", None)
    monkeypatch.setenv(dispatch.PROFILE_ENV_VAR, str(profile))
    assert dispatch.current_thresholds().layer_norm_min_elements == 12345
    assert str(profile) in dispatch.thresholds_source()
    tb.set_dispatch_profile({"layer_norm_min_elements": 9})
    assert dispatch.current_thresholds().layer_norm_min_elements == 9
    tb.set_dispatch_profile(None)
    assert dispatch.current_thresholds() == DispatchThresholds()


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"rms_norm_minimum": 3}', "unknown threshold"),
    ('{"rms_norm_min_elements": -1}', "non-negative integer"),
    ('{"rms_norm_min_elements": 1.5}', "non-negative integer"),
    ("[1, 2]", "JSON object"),
])
def test_bad_profiles_are_named(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        tb.load_dispatch_profile(path)


def test_missing_profile_path():
    with pytest.raises(ValueError, match="dispatch profile path"):
        tb.load_dispatch_profile("/nonexistent/profile.json")


def test_explain_on_real_tensors(monkeypatch):
    x = torch.randn(4, 8)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    decision = tb.explain(x, op="layer_norm")
    assert decision.backend == "torch" and "cpu" in decision.reason
    with pytest.raises(ValueError, match="op: expected one of"):
        tb.explain(x, op="batch_norm")
    with pytest.raises(ValueError, match="backend='triton' cannot run"):
        tb.rms_norm(x, backend="triton")


def test_defaults_are_the_stored_h200_profile():
    # The defaults are data from a measurement; the measured profile is kept beside the docs, and
    # the two must not drift apart.
    from pathlib import Path

    profile = Path(__file__).resolve().parent.parent / "docs" / "results" / "h200" / "dispatch_profile.json"
    assert tb.load_dispatch_profile(profile) == DispatchThresholds()


def test_min_elements_reads_each_field():
    # Distinct values per field, so a lookup that mixes up op or training mode fails.
    names = [f.name for f in dataclasses_fields(DispatchThresholds)]
    t = DispatchThresholds(**{name: 1000 + 17 * i for i, name in enumerate(names)})
    for op in dispatch.OPS:
        assert t.min_elements(op, False) == getattr(t, f"{op}_min_elements")
        assert t.min_elements(op, True) == getattr(t, f"{op}_train_min_elements")
    replaced = dataclasses_replace(t, layer_norm_train_min_elements=5)
    assert replaced.min_elements("layer_norm", True) == 5 and replaced == DispatchThresholds.from_dict(
        {**t.to_dict(), "layer_norm_train_min_elements": 5})


@pytest.mark.parametrize("interpret", ["0", "1"])
@pytest.mark.parametrize("backend", ["auto", "torch", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_uses_triton_agrees_with_resolve_backend_on_cpu(monkeypatch, interpret, backend, dtype):
    # The per-call shortcut must give the decision explain() reports; on CPU it defers to it.
    monkeypatch.setenv("TRITON_INTERPRET", interpret)
    monkeypatch.setattr(dispatch, "_active_thresholds", DispatchThresholds(rms_norm_min_elements=24,
                                                                          rms_norm_train_min_elements=48))
    for rows in (2, 3, 6, 7):
        for needs_grad in (False, True):
            x = torch.randn(rows, 8, dtype=dtype)
            try:
                expected = dispatch.resolve_backend("rms_norm", x, needs_grad, backend).backend == "triton"
            except ValueError as exc:
                with pytest.raises(ValueError, match=str(exc).split(":")[0]):
                    dispatch.uses_triton("rms_norm", x, needs_grad, backend)
                continue
            assert dispatch.uses_triton("rms_norm", x, needs_grad, backend) == expected
