"""End-to-end CPU sweeps through the CLI entry point, with test-only providers injected."""

import json

import pandas as pd
import pytest
import torch

from trinix_bench.bench import cli, providers, runner, schema
from trinix_bench.bench.results import load_environment, load_rows
from trinix_bench.bench.spec import Built, Provider

TINY = ["--batch-size", "2", "--seq-len", "8", "--hidden-size", "64", "--device", "cpu",
        "--warmup", "1", "--iters", "3", "--no-progress"]


def _sweep(tmp_path, *args):
    out = tmp_path / "run"
    code = cli.main([*TINY, "--save-path", str(out), *args])
    return code, out


def _eager(spec, inp, wrap=lambda fn: fn):
    return Built(wrap(providers.eager_norm(spec, inp)), inp.params(), "test")


def _register(monkeypatch, name, build):
    monkeypatch.setitem(providers.PROVIDERS, name, Provider(name, build))


def test_sweep_writes_every_row_and_round_trips(tmp_path):
    code, out = _sweep(tmp_path, "--providers", "pytorch,torch_native,trinix,liger", "--dtype", "bf16", "fp32")
    assert code == 0
    rows = load_rows(out)
    # 1 config x 2 dtypes x 2 layers x 3 modes x 4 providers
    assert len(rows) == 48
    csv = pd.read_csv(out / schema.RESULTS_CSV)
    assert tuple(csv.columns) == schema.ROW_COLUMNS and len(csv) == len(rows)
    assert list(csv["status"]) == [r["status"] for r in rows]
    ok = [r for r in rows if r["status"] == schema.STATUS_OK]
    assert {r["provider"] for r in ok} == {"pytorch", "torch_native", "trinix"}
    assert len(ok) == 2 * (6 + 3 + 6)  # torch_native has no LayerNorm of its own
    for r in ok:
        assert 0 < r["min_ms"] <= r["p20_ms"] <= r["median_ms"] <= r["p80_ms"] <= r["max_ms"]
        assert 0 < r["max_rel_error"] <= r["tolerance"]
        assert r["peak_memory_mb"] > 0 and r["gbps"] > 0
        assert r["pct_of_copy"] == pytest.approx(r["gbps"] / r["copy_bandwidth_gbps"] * 100)
        assert r["gbps"] == pytest.approx(r["ideal_bytes"] / (r["median_ms"] * 1e-3) / 1e9)
    bf16_fwd = next(r for r in ok if (r["layer"], r["mode"], r["dtype"]) == ("rmsnorm", "fwd", "bf16"))
    assert bf16_fwd["ideal_bytes"] == 2 * 16 * 64 * 2 + 64 * 2 and bf16_fwd["rows"] == 16
    trinix = [r for r in ok if r["provider"] == "trinix"]
    assert all(r["backend"] == "torch" and r["dispatch_reason"].startswith("auto") for r in trinix)
    liger = [r for r in rows if r["provider"] == "liger"]
    assert all(r["status"] == schema.STATUS_UNAVAILABLE and r["reason"] for r in liger)
    # the CSV carries the same numbers as the JSON Lines file
    assert csv.loc[csv.status == "ok", "median_ms"].tolist() == pytest.approx([r["median_ms"] for r in ok])
    env = load_environment(out)
    assert env["run_id"] == "run" and env["device"] == "cpu" and env["git_sha"]
    assert env["dispatch_thresholds"] and env["dispatch_thresholds_source"] == "defaults"
    assert all(r[k] == env[k] for r in rows for k in schema.ENV_COLUMNS)


def test_wrong_provider_is_failed_and_the_rest_go_on(tmp_path, monkeypatch):
    def wrong(spec, inp):
        def scaled(fn):
            return lambda x, r: tuple(t * 1.05 for t in fn(x, r)) if spec.residual else fn(x, r) * 1.05
        return _eager(spec, inp, scaled)

    _register(monkeypatch, "wrong", wrong)
    code, out = _sweep(tmp_path, "--providers", "wrong,pytorch", "--layers", "rmsnorm", "--use-residual",
                       "--dtype", "fp32")  # fp32: every output and gradient is off by exactly 5%
    assert code == 0
    rows = load_rows(out)
    by = {(r["provider"], r["mode"]): r for r in rows}
    for mode in ("fwd", "bwd", "full"):
        bad, good = by[("wrong", mode)], by[("pytorch", mode)]
        assert bad["status"] == schema.STATUS_FAILED and bad["median_ms"] is None
        assert "y=0.05" in bad["reason"] and bad["max_rel_error"] == pytest.approx(0.05, rel=1e-4)
        assert good["status"] == schema.STATUS_OK


def test_oom_and_errors_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    def oom(spec, inp):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def broken(spec, inp):
        def fn(x, r):
            raise ValueError("kernel exploded")
        return Built(fn, inp.params(), "test")

    _register(monkeypatch, "oom", oom)
    _register(monkeypatch, "broken", broken)
    code, out = _sweep(tmp_path, "--providers", "oom,broken,pytorch", "--layers", "layernorm", "--modes", "fwd,full")
    assert code == 0
    rows = load_rows(out)
    assert [r["provider"] for r in rows] == ["oom", "broken", "pytorch"] * 2
    for r in rows:
        expected = {"oom": schema.STATUS_OOM, "broken": schema.STATUS_ERROR, "pytorch": schema.STATUS_OK}
        assert r["status"] == expected[r["provider"]]
    assert "Tried to allocate 20.00 GiB" in rows[0]["reason"]
    assert rows[1]["reason"] == "ValueError: kernel exploded" and rows[1]["backend"] == "test"


def test_interrupt_keeps_rows_and_exits_130(tmp_path, monkeypatch, capsys):
    def interrupt_in_bwd(spec, inp):
        if spec.mode == "bwd":
            raise KeyboardInterrupt
        return _eager(spec, inp)

    _register(monkeypatch, "ctrl_c", interrupt_in_bwd)
    code, out = _sweep(tmp_path, "--providers", "pytorch,ctrl_c,torch_native", "--layers", "rmsnorm")
    assert code == cli.EXIT_INTERRUPTED
    rows = load_rows(out)
    assert [(r["mode"], r["provider"]) for r in rows] == [
        ("fwd", "pytorch"), ("fwd", "ctrl_c"), ("fwd", "torch_native"), ("bwd", "pytorch")]
    assert all(r["status"] == schema.STATUS_OK for r in rows)
    assert len(pd.read_csv(out / schema.RESULTS_CSV)) == 4
    captured = capsys.readouterr()
    assert "interrupted: 4 rows kept" in captured.err and "pytorch" in captured.out


def test_config_that_does_not_fit_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "free_bytes", lambda device: 1024)
    code, out = _sweep(tmp_path, "--providers", "pytorch,liger", "--modes", "fwd")
    assert code == 0
    rows = load_rows(out)
    assert [r["status"] for r in rows] == [schema.STATUS_SKIPPED, schema.STATUS_UNAVAILABLE] * 2
    assert "does not fit" in rows[0]["reason"] and "GiB free" in rows[0]["reason"]


def test_torch_compile_provider_runs_on_cpu(tmp_path):
    code, out = _sweep(tmp_path, "--providers", "torch_compile", "--layers", "rmsnorm", "--modes", "fwd,full")
    assert code == 0
    rows = load_rows(out)
    assert [(r["status"], r["backend"]) for r in rows] == [(schema.STATUS_OK, "inductor")] * 2


def test_jsonl_survives_a_torn_last_line(tmp_path):
    code, out = _sweep(tmp_path, "--providers", "pytorch", "--layers", "rmsnorm", "--modes", "fwd")
    assert code == 0
    with open(out / schema.RESULTS_JSONL, "a") as f:
        f.write('{"run_id": "cut sho')  # a process killed mid-write
    rows = load_rows(out)
    assert len(rows) == 1 and rows[0]["status"] == schema.STATUS_OK
    assert json.loads((out / schema.ENVIRONMENT_JSON).read_text())["settings"]["iters"] == 3
