"""CLI behaviour: bad input exits 2 with one line, --list, --quick defaults, report/compare wiring."""

import subprocess
import sys
import types
from pathlib import Path

import pytest

from trinix_bench.bench import cli, configs, providers, schema

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv,needle,choices",
    [
        (["--configs", "Small,Huge"], "--configs", "Decode-1, Decode-32, Small"),
        (["--providers", "pytorch,nope"], "--providers", "torch_native, torch_compile, triton, trinix"),
        (["--layers", "batchnorm"], "--layers", "rmsnorm, layernorm"),
        (["--dtype", "bf16", "fp8"], "--dtype", "fp16, bf16, fp32"),
        (["--modes", "fwd,sideways"], "--modes", "fwd, bwd, full"),
        (["--hidden-size", "0"], "--hidden-size", ">= 1"),
        (["--batch-size", "-3"], "--batch-size", ">= 1"),
        (["--seq-len", "x"], "--seq-len", ">= 1"),
        (["--iters", "0"], "--iters", ">= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, needle, choices, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and choices in lines[0]
    assert captured.out == ""


def test_unwritable_save_path_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main(["--save-path", str(blocker / "sub"), "--device", "cpu"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--save-path" in err[0]


def test_save_path_holding_results_is_refused(tmp_path, capsys):
    (tmp_path / schema.RESULTS_JSONL).write_text("")
    assert cli.main(["--save-path", str(tmp_path), "--device", "cpu"]) == cli.EXIT_USAGE
    assert "already holds" in capsys.readouterr().err


def test_list_prints_the_registry(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in configs.CONFIGS:
        assert name in out


def test_quick_defaults_and_explicit_overrides():
    args = cli._run_parser().parse_args(["--quick"])
    plan = cli._plan(args)
    assert [c.name for c in plan.configs] == list(configs.QUICK_CONFIGS)
    assert plan.providers == providers.QUICK_PROVIDERS and plan.dtypes == ("bf16",)
    assert plan.modes == ("fwd", "bwd", "full") and plan.residual is False
    custom = cli._plan(cli._run_parser().parse_args(
        ["--quick", "--configs", "small,Decode-1", "--hidden-size", "128", "--dtype", "fp16,bf16", "fp16"]))
    assert [c.name for c in custom.configs] == ["Small", "Decode-1", "Custom"]
    assert custom.configs[-1].hidden == 128 and custom.dtypes == ("fp16", "bf16")
    assert cli._plan(cli._run_parser().parse_args([])).providers == tuple(providers.PROVIDERS)


@pytest.mark.parametrize("text,value", [("5%", 5.0), ("5", 5.0), ("2.5 %", 2.5), ("0", 0.0)])
def test_threshold_parsing(text, value):
    assert cli._threshold(text) == value


def _results_dir(path: Path) -> Path:
    path.mkdir()
    (path / schema.RESULTS_JSONL).write_text("")
    return path


def _fake_module(monkeypatch, name, **attrs):
    monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))


@pytest.mark.parametrize("regressed,code", [(True, 1), (False, 0)])
def test_compare_subcommand(tmp_path, monkeypatch, capsys, regressed, code):
    calls = []

    def compare_runs(old, new, threshold_pct=5.0):
        calls.append((old, new, threshold_pct))
        return "| table |", regressed

    _fake_module(monkeypatch, "trinix_bench.report.compare", compare_runs=compare_runs)
    old, new = _results_dir(tmp_path / "old"), _results_dir(tmp_path / "new")
    out_file = tmp_path / "cmp.md"
    assert cli.main(["compare", str(old), str(new), "--threshold", "7%", "--output", str(out_file)]) == code
    assert calls == [(old, new, 7.0)] and out_file.read_text() == "| table |"
    assert cli.main(["compare", str(old), str(new)]) == code
    assert "| table |" in capsys.readouterr().out


def test_report_subcommand_and_bad_dirs(tmp_path, monkeypatch, capsys):
    def render_report(results_dir, output_dir=None, template_dir=None):
        return Path(output_dir or results_dir) / "NORMALIZATION.md"

    _fake_module(monkeypatch, "trinix_bench.report.render", render_report=render_report)
    run = _results_dir(tmp_path / "run")
    assert cli.main(["report", str(run), "--output", str(tmp_path / "out")]) == 0
    assert str(tmp_path / "out" / "NORMALIZATION.md") in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path / "missing")]) == cli.EXIT_USAGE
    assert cli.main(["compare", str(run), str(tmp_path / "missing")]) == cli.EXIT_USAGE
    assert cli.main(["compare", str(run), str(run), "--threshold", "lots"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "results directory" in err[0] and "--threshold" in err[2]


def test_script_entry_point_runs_as_a_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "benchmark_normalization.py", "--configs", "Nope"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "valid choices" in proc.stderr
