"""Run-to-run comparison on copies of the committed fixture, with regressions injected."""

from __future__ import annotations

import pytest
from test_report_support import FIXTURE, copy_fixture, first_ok, fixture_rows

from trinix_bench.report.compare import compare_runs

def ok_count() -> int:
    return sum(row["status"] == "ok" for row in fixture_rows())


def test_an_unchanged_run_passes(tmp_path):
    markdown, regressed = compare_runs(FIXTURE, copy_fixture(tmp_path, lambda rows: None))
    assert not regressed
    assert "**Verdict: OK**" in markdown
    assert f"Rows ok in both runs: {ok_count()};" in markdown
    assert "REGRESSED |" not in markdown


def test_a_slower_row_beyond_the_threshold_regresses(tmp_path):
    def slow_down(rows):
        first_ok(rows, "trinix")["median_ms"] *= 1.5

    markdown, regressed = compare_runs(FIXTURE, copy_fixture(tmp_path, slow_down), threshold_pct=5.0)
    assert regressed
    assert "**Verdict: REGRESSED**" in markdown
    flagged = [line for line in markdown.splitlines() if line.endswith("| REGRESSED |")]
    assert len(flagged) == 1 and "| trinix |" in flagged[0] and "| +50.0% |" in flagged[0]


def test_the_threshold_decides(tmp_path):
    def slow_down(rows):
        first_ok(rows, "trinix")["median_ms"] *= 1.04

    new = copy_fixture(tmp_path, slow_down)
    assert compare_runs(FIXTURE, new, threshold_pct=5.0)[1] is False
    assert compare_runs(FIXTURE, new, threshold_pct=3.0)[1] is True
    # Faster is never a regression, however large.
    def speed_up(rows):
        first_ok(rows, "trinix")["median_ms"] /= 3

    markdown, regressed = compare_runs(FIXTURE, copy_fixture(tmp_path, speed_up, name="faster"))
    assert not regressed and "| -66.7% | improved |" in markdown


def test_a_row_that_broke_regresses_and_is_listed(tmp_path):
    def break_row(rows):
        first_ok(rows, "pytorch").update(status="FAILED", reason="max_rel_error 0.3 > tolerance 0.01", median_ms=None)

    markdown, regressed = compare_runs(FIXTURE, copy_fixture(tmp_path, break_row))
    assert regressed
    broke = markdown.split("## Rows that broke")[1].split("## ")[0]
    assert "| pytorch | ok | FAILED | max_rel_error 0.3 > tolerance 0.01 |" in broke


def test_status_changes_that_are_not_failures_and_one_sided_rows_are_listed_only(tmp_path):
    def change(rows):
        first_ok(rows, "pytorch").update(status="unavailable", reason="not installed", median_ms=None)
        rows.remove(first_ok(rows, "trinix"))

    markdown, regressed = compare_runs(FIXTURE, copy_fixture(tmp_path, change))
    assert not regressed
    other = markdown.split("## Other status changes")[1].split("## ")[0]
    assert "| pytorch | ok | unavailable | not installed |" in other
    only_old = markdown.split("## Rows only in the old run")[1].split("## ")[0]
    assert "| trinix | ok |" in only_old
    assert "## Rows only in the new run\n\nNone." in markdown


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="old_dir"):
        compare_runs(tmp_path / "missing", FIXTURE)
    with pytest.raises(ValueError, match="new_dir"):
        compare_runs(FIXTURE, tmp_path)
    with pytest.raises(ValueError, match="threshold_pct"):
        compare_runs(FIXTURE, FIXTURE, threshold_pct=-1)
