"""scripts/merge_runs.py: a completion run merged into an earlier (itself merged) sweep."""

import json

from helpers import load_script

from trinix_bench.bench.results import load_environment, load_rows


def _cell(config, provider, sha, run_id, median_ms):
    return {"config": config, "batch": 1, "seq_len": 1, "hidden": 4096, "layer": "rmsnorm", "residual": False,
            "mode": "fwd", "dtype": "bf16", "provider": provider, "git_sha": sha, "run_id": run_id,
            "median_ms": median_ms}


def _write_run(directory, rows, environment):
    directory.mkdir()
    (directory / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "environment.json").write_text(json.dumps(environment))


def test_a_later_run_replaces_its_cells_and_the_environment_lists_every_commit(tmp_path):
    merge_runs = load_script("merge_runs")
    sweep, decode = tmp_path / "sweep", tmp_path / "decode"
    _write_run(sweep, [_cell("Decode-1", "trinix", "aaa", "bf16", 0.0051), _cell("XL", "trinix", "aaa", "bf16_res", 0.13)],
               {"run_id": "bf16", "git_sha": "aaa", "merged_from": ["bf16", "bf16_res"], "command": "sweep"})
    _write_run(decode, [_cell("Decode-1", "trinix", "bbb", "decode", 0.0046)],
               {"run_id": "decode", "git_sha": "bbb", "command": "decode"})
    assert merge_runs.merge(tmp_path / "merged", [sweep, decode]) == 2
    rows = {r["config"]: r for r in load_rows(tmp_path / "merged")}
    assert rows["Decode-1"]["median_ms"] == 0.0046 and rows["Decode-1"]["git_sha"] == "bbb"
    assert rows["XL"]["git_sha"] == "aaa"
    environment = load_environment(tmp_path / "merged")
    assert environment["merged_from"] == ["bf16", "bf16_res", "decode"]
    assert environment["git_sha"] == "aaa, bbb" and environment["run_id"] == "bf16_res, decode"
    assert environment["command"] == "sweep\ndecode"


def test_runs_at_one_commit_keep_the_first_runs_facts(tmp_path):
    merge_runs = load_script("merge_runs")
    first, second = tmp_path / "first", tmp_path / "second"
    _write_run(first, [_cell("Small", "trinix", "aaa", "r1", 0.014)], {"run_id": "r1", "git_sha": "aaa"})
    _write_run(second, [_cell("Small", "liger", "aaa", "r1", 0.013)], {"run_id": "r1", "git_sha": "aaa"})
    merge_runs.merge(tmp_path / "merged", [first, second])
    environment = load_environment(tmp_path / "merged")
    assert environment["git_sha"] == "aaa" and environment["run_id"] == "r1"
    assert environment["merged_from"] == ["r1", "r1"]
