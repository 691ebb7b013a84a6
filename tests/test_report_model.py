"""The report's numbers on synthetic results whose answers are known by construction.

The committed fixture (a real CPU run) has no Triton timings, so crossovers, dispatch verdicts and
"best other" are checked here on a results directory written to the schema with chosen medians.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trinix_bench.bench.schema import ENV_COLUMNS, ENVIRONMENT_JSON, RESULTS_JSONL, ROW_COLUMNS
from trinix_bench.report.cells import build_cells
from trinix_bench.report.crossover import crossovers
from trinix_bench.report.load import load_run
from trinix_bench.report.model import build_report_model

# config -> (batch, seq_len, hidden); sizes rows*hidden: 4,096 / 131,072 / 8,388,608 / 134,217,728
CONFIGS = {"Decode-1": (1, 1, 4096), "Decode-32": (32, 1, 4096), "Small": (4, 512, 4096), "Large": (8, 2048, 8192)}
LIGER_LEAD = {"fwd": 1.10, "full": 1.05}
THRESHOLDS = {"rms_norm_min_elements": 0, "rms_norm_train_min_elements": 100_000}
ENVIRONMENT = {
    "run_id": "synthetic", "git_sha": "abc1234", "package_version": "0.1.0", "command": "python benchmark_normalization.py --synthetic",
    "device": "cuda", "gpu_name": "Synthetic GPU", "driver_version": "1.0", "cuda_version": "12.8",
    "torch_version": "2.13.0", "triton_version": "3.5.0", "python_version": "3.12.0",
    "copy_bandwidth_gbps": 4000.0, "spec_bandwidth_gbps": 4800.0,
}


def torch_ms(elements: int) -> float:
    return 0.010 + elements * 2e-9


def triton_ms(elements: int) -> float:
    """Launch cost 0.02 ms but half the per-element cost: Triton wins from 1e7 elements."""
    return 0.020 + elements * 1e-9


def liger_ms(config: str, mode: str, elements: int) -> float:
    if config == "Decode-1":
        return min(torch_ms(elements), triton_ms(elements)) / LIGER_LEAD[mode]
    return 2 * torch_ms(elements)


def _row(config, provider, median, *, mode="fwd", status="ok", reason="", backend=None):
    batch, seq_len, hidden = CONFIGS[config]
    row = dict.fromkeys(ROW_COLUMNS, "")
    row.update({k: ENVIRONMENT[k] for k in ENV_COLUMNS})
    row.update({
        "config": config, "batch": batch, "seq_len": seq_len, "hidden": hidden, "rows": batch * seq_len,
        "layer": "rmsnorm", "residual": False, "mode": mode, "dtype": "bf16", "provider": provider,
        "backend": backend or provider, "status": status, "reason": reason, "warmup": 5, "iters": 20,
        "flush_l2": True, "cuda_graph": False,
    })
    if status == "ok":
        row.update({"median_ms": median, "p20_ms": median * 0.95, "p80_ms": median * 1.05, "min_ms": median * 0.9,
                    "max_ms": median * 1.2, "peak_memory_mb": 1.0, "gbps": 100.0, "pct_of_copy": 2.5,
                    "max_rel_error": 1e-3, "tolerance": 1e-2})
    else:
        row.update({k: None for k in ("median_ms", "p20_ms", "p80_ms", "gbps", "pct_of_copy", "max_rel_error")})
    return row


def synthetic_rows() -> list[dict]:
    rows = []
    for mode in ("fwd", "full"):
        for config, (batch, seq_len, hidden) in CONFIGS.items():
            elements = batch * seq_len * hidden
            picked = "triton" if elements >= THRESHOLDS["rms_norm_min_elements" if mode == "fwd" else "rms_norm_train_min_elements"] else "torch"
            ours = triton_ms(elements) if picked == "triton" else torch_ms(elements)
            rows += [
                _row(config, "pytorch", torch_ms(elements), mode=mode),
                _row(config, "triton", triton_ms(elements), mode=mode),
                _row(config, "trinix", ours, mode=mode, backend=picked),
                # liger: the fastest provider at Decode-1 only (10% fwd, 5% full), else 2x slower than pytorch.
                _row(config, "liger", liger_ms(config, mode, elements), mode=mode),
                _row(config, "apex", None, mode=mode, status="unavailable", reason="No module named 'apex'"),
            ]
    return rows


def write_run(directory: Path, rows: list[dict], environment: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RESULTS_JSONL).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / ENVIRONMENT_JSON).write_text(json.dumps(environment))
    return directory


@pytest.fixture
def synthetic_run(tmp_path):
    environment = dict(ENVIRONMENT, dispatch_thresholds=THRESHOLDS, dispatch_thresholds_source="synthetic profile",
                       warmup=5, iters=20, dtypes=["bf16"])
    return load_run(write_run(tmp_path / "run", synthetic_rows(), environment))


def test_speedup_and_best_other_follow_the_definitions(synthetic_run):
    cells = {(c.config, c.mode): c for c in build_cells(synthetic_run.rows)}
    decode = cells[("Decode-1", "fwd")]
    # Decode-1 fwd: threshold 0 sends trinix to Triton; liger is 10% faster than pytorch there.
    assert decode.speedup("trinix", "pytorch") == pytest.approx(torch_ms(4096) / triton_ms(4096))
    assert decode.best_other() == "liger"
    assert decode.speedup("trinix", "best other") == pytest.approx(liger_ms("Decode-1", "fwd", 4096) / triton_ms(4096))
    large = cells[("Large", "fwd")]
    assert large.best_other() == "pytorch"  # liger is 2x slower there; the baseline is a candidate
    assert decode.median("apex") is None  # unavailable rows never have a median


def test_crossover_is_where_triton_starts_winning_for_good(synthetic_run):
    found = crossovers(build_cells(synthetic_run.rows))
    inference = found[("rms_norm", "inference")]
    # triton_ms < torch_ms  <=>  elements > 1e7: only Large (134,217,728) wins.
    assert inference.crossover == 134_217_728
    assert inference.largest_losing_size == 8_388_608
    assert inference.suggested_threshold == 134_217_728
    assert inference.min_speedup_above == pytest.approx(torch_ms(134_217_728) / triton_ms(134_217_728))
    # Threshold 0 sends all four sizes to Triton; three of them are slower there.
    assert len(inference.misdispatched(0)) == 3
    assert len(found[("rms_norm", "training")].misdispatched(100_000)) == 2  # Decode-32 is below it, fine


def test_summary_speedups_are_geometric_means(synthetic_run):
    model = build_report_model(synthetic_run)
    rows = {r[0]: r for r in model["summary"]["speedups"]["rows"]}
    cells = build_cells(synthetic_run.rows)
    speedups = [c.speedup("trinix", "pytorch") for c in cells]
    geomean = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
    assert rows["trinix vs pytorch"][1] == str(len(cells))
    assert rows["trinix vs pytorch"][2] == f"{geomean:.2f}x"
    assert rows["trinix vs pytorch"][3].startswith(f"{max(speedups):.2f}x")
    assert rows["trinix vs pytorch"][4].startswith(f"{min(speedups):.2f}x")
    assert model["summary"]["triton_available"] == "7/8"  # fwd 4/4 + full 3/4 (Decode-1 < 100,000)


def test_thresholds_table_and_recommendations_carry_the_numbers(synthetic_run):
    model = build_report_model(synthetic_run)
    rows = {r[2]: r for r in model["thresholds"]["table"]["rows"]}
    inference = rows["`rms_norm_min_elements`"]
    assert inference[3] == "0"
    assert inference[4] == "8,388,608 < C ≤ 134,217,728"
    assert inference[6] == "134,217,728"
    text = " ".join(model["recommendations"])
    assert "rms_norm inference: for rows·hidden ≥ 134,217,728 the Triton path beats PyTorch" in text
    assert "the current threshold `rms_norm_min_elements` is 0; it mis-dispatches 3/4" in text
    lead = triton_ms(4096) / liger_ms("Decode-1", "fwd", 4096)
    assert f"liger beats trinix in 2/8 shared cells, by up to {lead:.2f}x in Decode-1 rmsnorm fwd bf16" in text
    assert model["thresholds"]["caveat"] == ""  # a CUDA run's crossovers are evidence for the thresholds
    # Thresholds recorded but not measured (layer_norm) show a footnoted dash, never a blank.
    assert all(cell for row in model["thresholds"]["table"]["rows"] for cell in row)


def test_insights_are_computed_sentences(synthetic_run):
    insights = build_report_model(synthetic_run)["insights"]
    text = " ".join(insights)
    relative = liger_ms("Decode-1", "fwd", 4096) / triton_ms(4096)
    assert f"Slowest relative cell: Decode-1 rmsnorm fwd bf16 at {relative:.2f}x vs liger" in text
    assert "Auto dispatch picked Triton in 7/8 ok trinix cells" in text
    # Wrong picks: fwd Decode-1, Decode-32, Small (Triton below its crossover); full Decode-32, Small.
    assert "it picked the slower path in 5/8 cells" in text
    assert "1 of 5 providers produced no ok row: apex (unavailable 8)" in text


def test_missing_environment_fields_become_footnoted_dashes(tmp_path):
    rows = synthetic_rows()
    for row in rows:
        row["triton_version"] = ""
    environment = {k: v for k, v in ENVIRONMENT.items() if k != "triton_version"}
    model = build_report_model(load_run(write_run(tmp_path / "run", rows, environment)))
    values = {item["name"]: item["value"] for item in model["environment"]}
    assert values["Triton"].startswith("-[^")
    note = int(values["Triton"][3:-1])
    texts = {n["id"]: n["text"] for n in model["footnotes"]}
    assert "`triton_version` is recorded neither" in texts[note]
    # No dispatch thresholds in environment.json: the "in effect" column says why, per row.
    in_effect = [r[3] for r in model["thresholds"]["table"]["rows"]]
    assert in_effect and all(v.startswith("-[^") for v in in_effect)


def test_results_without_trinix_say_so(tmp_path):
    rows = [r for r in synthetic_rows() if r["provider"] not in ("trinix", "triton")]
    model = build_report_model(load_run(write_run(tmp_path / "run", rows, ENVIRONMENT)))
    assert model["insights"] == ["No cell has an ok trinix row (no rows), so there is nothing to say about our kernels."]
    assert model["recommendations"][0].startswith("No recommendation:")


def test_rmsnorm_crossover_compares_with_the_torch_path_auto_dispatch_takes(tmp_path):
    # On CUDA auto dispatch's torch path for RMSNorm is F.rms_norm (provider torch_native), not the
    # HuggingFace-style eager chain: a cell where triton beats pytorch but loses to torch_native is a
    # Triton loss.
    from trinix_bench.report.cells import BASELINE_PROVIDER, TORCH_NATIVE_PROVIDER, Cell

    cell = Cell(config="Small", batch=4, seq_len=512, hidden=4096, layer="rmsnorm", residual=False, mode="fwd",
                dtype="bf16", rows=2048)
    for provider, ms in (("triton", 0.020), (BASELINE_PROVIDER, 0.130), (TORCH_NATIVE_PROVIDER, 0.015)):
        cell.records[provider] = {"status": "ok", "median_ms": ms, "device": "cuda"}
    assert cell.torch_path_provider == TORCH_NATIVE_PROVIDER
    cell.records[TORCH_NATIVE_PROVIDER]["status"] = "FAILED"
    assert cell.torch_path_provider == BASELINE_PROVIDER
    for record in cell.records.values():
        record["device"] = "cpu"
    cell.records[TORCH_NATIVE_PROVIDER]["status"] = "ok"
    assert cell.torch_path_provider == BASELINE_PROVIDER


@pytest.mark.parametrize("train_threshold, kept", [(134_217_728, True), (10_000_000, True), (100_000, False)])
def test_a_threshold_that_routes_as_the_crossover_does_is_kept(tmp_path, train_threshold, kept):
    # Small (8,388,608 elements): Triton wins the bwd cell but loses the full one, so C is Large's
    # size and no threshold takes the bwd win without the full loss. A threshold anywhere in
    # (8,388,608, C] routes every measured cell as C does; 100,000 also sends Decode-32 and Small.
    rows = [r for r in synthetic_rows() if r["mode"] == "full"]
    rows += [_row("Small", "pytorch", 0.040, mode="bwd"), _row("Small", "triton", 0.020, mode="bwd")]
    environment = dict(ENVIRONMENT, dispatch_thresholds={"rms_norm_min_elements": 0,
                                                         "rms_norm_train_min_elements": train_threshold})
    model = build_report_model(load_run(write_run(tmp_path / "run", rows, environment)))
    row = {r[2]: r for r in model["thresholds"]["table"]["rows"]}["`rms_norm_train_min_elements`"]
    text = " ".join(model["recommendations"])
    assert row[4] == "8,388,608 < C ≤ 134,217,728"
    if kept:
        assert row[6] == f"keep {train_threshold:,}"
        assert ("it routes every measured cell as a threshold at the crossover would, so keep it: the 1/5 cells "
                "it mis-dispatches are Triton wins below the crossover (Small rmsnorm bwd bf16)") in text
        assert "so set it to" not in text
    else:
        assert row[6] == "134,217,728"
        # Decode-32 and Small full, both slower on Triton
        assert "is 100,000; it mis-dispatches 2/5 measured cells, so set it to 134,217,728" in text
