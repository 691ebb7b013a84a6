"""The dispatch decision: a pure function, its thresholds, profiles and explain()."""

import json

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
