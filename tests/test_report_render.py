"""NORMALIZATION.md rendered from the committed fixture (a real CPU run of the harness).

Expected numbers are recomputed here from the fixture's results.jsonl with plain json, not through
the report's loader, so a shaping bug in the report cannot hide behind the same code in the test.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jinja2
import pytest
from test_report_support import FIXTURE, copy_fixture, first_ok, fixture_rows

from trinix_bench.report.load import load_run
from trinix_bench.report.render import REPORT_FILENAME, render_report

SECTIONS = ("## Test Environment", "## Summary", "## Plots", "## Detailed Results", "## Performance Scaling",
            "### By sequence length", "### By hidden size", "## Optimization Thresholds", "## Key Insights",
            "## Recommendations", "## Memory Efficiency", "## Reproduce")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CELL_KEY = ("config", "batch", "seq_len", "hidden", "layer", "residual", "mode", "dtype")


def fixture_cells(directory: Path = FIXTURE) -> dict[tuple, dict[str, dict]]:
    cells: dict[tuple, dict[str, dict]] = {}
    for row in fixture_rows(directory):
        cells.setdefault(tuple(row[k] for k in CELL_KEY), {})[row["provider"]] = row
    return cells


def parse_tables(markdown: str) -> list[tuple[list[str], list[str], list[list[str]]]]:
    """(headings in force, header, rows) for every table; headings are the latest ### and ####."""
    tables, headings, current = [], {3: "", 4: ""}, None
    for line in markdown.splitlines():
        match = re.match(r"^(#{2,4}) (.*)$", line)
        if match:
            level = len(match.group(1))
            headings.update({level: match.group(2)} if level > 2 else {3: "", 4: ""})
            if level == 3:
                headings[4] = ""
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if current is None:
                current = ([headings[3], headings[4]], cells, [])
                tables.append(current)
            elif not set("".join(cells)) <= set("- "):
                current[2].append(cells)
        else:
            current = None
    return tables


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report")
    path = render_report(FIXTURE, out)
    assert path == out / REPORT_FILENAME
    return out, path.read_text()


def test_every_section_is_present(rendered):
    _, markdown = rendered
    for section in SECTIONS:
        assert f"\n{section}\n" in markdown, section
    environment = json.loads((FIXTURE / "environment.json").read_text())
    assert f"```bash\n{environment['command']}\n```" in markdown
    if environment["device"] != "cuda":  # CPU crossovers must not be read as CUDA threshold advice
        assert f"> This run is on {environment['device']}: auto dispatch picks Triton on CUDA only" in markdown


def _number(text: str) -> float:
    return float(re.match(r"\**([0-9.]+)", text).group(1))


def _detail_tables(markdown: str):
    for (config_heading, table_heading), header, rows in parse_tables(markdown):
        match = re.match(r"(\S+) \(batch (\d+), seq (\d+), hidden (\d+)\)", config_heading)
        if match and header[0] == "Provider":
            op, mode, dtype = table_heading.split(" · ")
            layer, residual = op.split(" + ")[0], op.endswith("+ residual")
            key = (match.group(1), *map(int, match.groups()[1:]), layer, residual, mode, dtype)
            yield key, header, rows


def test_detail_tables_match_the_results(rendered):
    _, markdown = rendered
    cells = fixture_cells()
    seen = set()
    for key, header, rows in _detail_tables(markdown):
        providers = cells[key]
        assert [r[0].split(" ")[0] for r in rows] == [p for p in rows_order(providers)]
        for row in rows:
            record = providers[row[0].split(" ")[0]]
            seen.add(key + (record["provider"],))
            if record["status"] != "ok":
                assert row[1].startswith("-[^") and row[2].startswith("-[^"), row
                continue
            assert _number(row[1]) == pytest.approx(record["median_ms"], rel=6e-4)
            p20, p80 = re.search(r"\(([0-9.]+)–([0-9.]+)\)", row[1]).groups()
            assert float(p20) == pytest.approx(record["p20_ms"], rel=6e-4)
            assert float(p80) == pytest.approx(record["p80_ms"], rel=6e-4)
            baseline = providers.get("pytorch")
            if baseline and baseline["status"] == "ok":
                assert _number(row[2]) == pytest.approx(baseline["median_ms"] / record["median_ms"], abs=0.0051)
            else:
                assert row[2].startswith("-[^")
            if isinstance(record.get("gbps"), (int, float)):
                assert float(row[3]) == pytest.approx(record["gbps"], abs=0.051)
    assert seen == {k + (p,) for k, providers in cells.items() for p in providers}, "every result row is shown once"


def rows_order(providers: dict) -> list[str]:
    known = ["trinix", "triton", "pytorch", "torch_native", "torch_compile", "apex", "liger", "quack", "flashinfer", "vllm"]
    return sorted(providers, key=lambda p: (known.index(p) if p in known else len(known), p))


def test_fastest_provider_is_bold(rendered):
    _, markdown = rendered
    cells = fixture_cells()
    for key, _, rows in _detail_tables(markdown):
        ok = {p: r["median_ms"] for p, r in cells[key].items() if r["status"] == "ok"}
        bold = [r[0].split(" ")[0] for r in rows if r[1].startswith("**")]
        if ok:
            assert len(bold) == 1 and ok[bold[0]] == min(ok.values())


def test_summary_speedups_are_recomputed_geometric_means(rendered):
    _, markdown = rendered
    speedups = []
    for providers in fixture_cells().values():
        ours, base = providers.get("trinix"), providers.get("pytorch")
        if ours and base and ours["status"] == base["status"] == "ok":
            speedups.append(base["median_ms"] / ours["median_ms"])
    summary = next(rows for _, header, rows in parse_tables(markdown) if header[0] == "Comparison")
    row = next(r for r in summary if r[0] == "trinix vs pytorch")
    assert speedups, "the fixture must have cells with ok trinix and pytorch rows"
    assert int(row[1]) == len(speedups)
    assert _number(row[2]) == pytest.approx(math.exp(sum(map(math.log, speedups)) / len(speedups)), abs=0.0051)
    assert _number(row[3]) == pytest.approx(max(speedups), abs=0.0051)
    assert _number(row[4]) == pytest.approx(min(speedups), abs=0.0051)
    rows = fixture_rows()
    assert f"- Total tests: {len(rows)} result rows in {len(fixture_cells())} cells" in markdown
    trinix = [r for r in rows if r["provider"] == "trinix" and r.get("backend")]
    picked = sum(r["backend"] == "triton" for r in trinix)
    assert f"- Triton available: {picked}/{len(trinix)} " in markdown


def test_missing_values_are_footnoted_dashes_never_blanks(rendered):
    _, markdown = rendered
    defined = dict(re.findall(r"^\[\^(\d+)\]: (.+)$", markdown, flags=re.M))
    used = set(re.findall(r"\[\^(\d+)\](?!:)", markdown))
    assert used == set(defined), "every footnote used is defined and vice versa"
    for _, header, rows in parse_tables(markdown):
        for row in rows:
            assert len(row) == len(header) and all(cell.strip() for cell in row), row
            for cell in row:
                assert not re.search(r"(^|\s)-(\s|$)", cell), f"a dash without its footnote: {cell!r}"
    not_ok = [r for r in fixture_rows() if r["status"] != "ok"]
    assert not_ok, "the fixture must hold a row that is not ok"
    for row in not_ok:
        text = f"{row['provider']} {row['status']}: "
        assert any(note.startswith(text) for note in defined.values()), text


def test_plots_are_linked_and_valid_pngs(rendered):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    out, markdown = rendered
    links = re.findall(r"!\[[^\]]+\]\((plots/[^)]+\.png)\)", markdown)
    assert len(links) == 3
    for link in links:
        data = (out / link).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        pixels = matplotlib_image.imread(out / link)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200


def test_plot_title_sits_above_every_panel():
    # tight_layout alone packed the top row's panel titles under the figure title (the H200 sweep's
    # bandwidth.png); the title band must keep them apart.
    pytest.importorskip("matplotlib")
    from trinix_bench.report.model import build_report_model
    from trinix_bench.report.plots import build_figure

    for spec in build_report_model(load_run(FIXTURE))["plots"]:
        # As tall as the sweep's figures (8 rows of panels): the fixture's 2 rows did not overlap.
        tall = dict(spec, rows=4 * spec["rows"],
                    panels=[dict(p, row=p["row"] + k * spec["rows"]) for k in range(4) for p in spec["panels"]])
        figure = build_figure(tall)
        renderer = figure.canvas.get_renderer()
        title_bottom = figure._suptitle.get_window_extent(renderer).y0
        panels = [ax for ax in figure.axes if ax.get_visible()]
        assert panels
        assert max(ax.get_tightbbox(renderer).y1 for ax in panels) <= title_bottom, spec["filename"]


def test_a_template_asking_for_a_missing_field_fails(tmp_path):
    broken = tmp_path / "templates"
    broken.mkdir()
    (broken / "normalization.md.j2").write_text("# {{ title }}\n{{ summary.no_such_field }}\n")
    with pytest.raises(jinja2.UndefinedError, match="no_such_field"):
        render_report(FIXTURE, tmp_path / "out", template_dir=broken)
    assert not (tmp_path / "out" / REPORT_FILENAME).exists()
    (broken / "normalization.md.j2").write_text("{% for x in %}\n")
    with pytest.raises(jinja2.TemplateSyntaxError):
        render_report(FIXTURE, tmp_path / "out", template_dir=broken)


def test_template_dir_overrides_the_shipped_template(tmp_path):
    custom = tmp_path / "templates"
    custom.mkdir()
    (custom / "normalization.md.j2").write_text("rows={{ summary.total_rows }}\n")
    path = render_report(FIXTURE, tmp_path / "out", template_dir=custom)
    assert path.read_text() == f"rows={len(fixture_rows())}\n"
    with pytest.raises(ValueError, match="template_dir"):
        render_report(FIXTURE, tmp_path / "out", template_dir=tmp_path / "nowhere")


def test_bad_results_dir_is_a_value_error_naming_the_argument(tmp_path):
    with pytest.raises(ValueError, match="results_dir: expected an existing results directory"):
        render_report(tmp_path / "missing")
    with pytest.raises(ValueError, match="results_dir: expected results.jsonl or results.csv"):
        render_report(tmp_path)
    (tmp_path / "results.jsonl").write_text("")
    with pytest.raises(ValueError, match="results_dir: expected at least one result row"):
        render_report(tmp_path)


def test_csv_and_jsonl_load_to_the_same_rows(tmp_path):
    if not (FIXTURE / "results.csv").is_file():
        pytest.skip("fixture has no results.csv")
    (tmp_path / "results.csv").write_bytes((FIXTURE / "results.csv").read_bytes())
    from_csv, from_jsonl = load_run(tmp_path).rows, load_run(FIXTURE).rows
    columns = list(CELL_KEY) + ["provider", "status", "median_ms", "backend"]
    assert from_csv[columns].fillna(-1).equals(from_jsonl[columns].fillna(-1))


def test_a_torn_last_line_is_skipped_and_noted(tmp_path):
    copy = copy_fixture(tmp_path)
    with open(copy / "results.jsonl", "a") as handle:
        handle.write('{"config": "Decode-1", "bat')  # a run killed mid-write
    markdown = render_report(copy).read_text()
    assert "ignored an incomplete last line" in markdown
    assert f"- Total tests: {len(fixture_rows())} result rows" in markdown


def test_failed_and_oom_rows_show_their_reasons_and_leave_the_speedups(tmp_path):
    def break_rows(rows):
        first_ok(rows, "triton").update(status="FAILED", reason="max_rel_error 0.2 > tolerance 0.016")
        first_ok(rows, "pytorch").update(status="OOM", reason="CPU out of memory", median_ms=None)

    copy = copy_fixture(tmp_path, break_rows)
    markdown = render_report(copy).read_text()
    notes = {text: number for number, text in re.findall(r"^\[\^(\d+)\]: (.+)$", markdown, flags=re.M)}
    failed = notes["triton FAILED: max_rel_error 0.2 > tolerance 0.016"]
    oom = notes["pytorch OOM: CPU out of memory"]
    assert f"| triton | -[^{failed}] | -[^{failed}] |" in markdown
    assert f"| FAILED[^{failed}] |" in markdown
    assert f"| pytorch | -[^{oom}] |" in markdown
    # The cell that lost its baseline shows why each speedup is missing, and the summary counts one cell less.
    assert "no speedup: the baseline is not ok (pytorch OOM: CPU out of memory)" in notes
    summary = next(rows for _, header, rows in parse_tables(markdown) if header[0] == "Comparison")
    both_ok = sum(1 for p in fixture_cells(copy).values()
                  if p.get("trinix", {}).get("status") == "ok" and p.get("pytorch", {}).get("status") == "ok")
    assert next(r for r in summary if r[0] == "trinix vs pytorch")[1] == str(both_ok)
    assert both_ok == sum(1 for p in fixture_cells().values() if p.get("pytorch", {}).get("status") == "ok") - 1


def test_without_any_templates_the_error_says_where_it_looked(tmp_path, monkeypatch):
    import trinix_bench.report.render as render

    # As if installed without the templates package: no checkout folder, no trinix_bench.templates.
    monkeypatch.setattr(render, "_checkout_templates", lambda: None)
    monkeypatch.setattr(render.resources, "files", lambda name: (_ for _ in ()).throw(ModuleNotFoundError(name)))
    with pytest.raises(ValueError, match="no report templates found"):
        render_report(FIXTURE, tmp_path)


def test_provider_missing_from_a_cell_renders(tmp_path):
    # An interrupted sweep can leave a cell without some providers' rows at all; the report and its
    # plots must still render, and the other providers' numbers stay.
    def drop_one_trinix_row(rows):
        victim = next(i for i, r in enumerate(rows) if r["provider"] == "trinix" and r["status"] == "ok")
        del rows[victim]

    directory = copy_fixture(tmp_path, drop_one_trinix_row, name="interrupted")
    report = render_report(directory, tmp_path / "out")
    text = report.read_text()
    assert "Summary" in text
    assert (tmp_path / "out" / "plots").is_dir()
