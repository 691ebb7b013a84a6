"""Shape a loaded run into the report's view model: plain dicts, lists and display strings.

Nothing here renders or plots; ``render.py`` feeds the model to Jinja and ``plots.py`` draws the
``plots`` part of it. Every number is computed from the rows (see cells.py for speedup and "best
other", crossover.py for the dispatch crossovers), and every sentence in the insights and
recommendations carries the quantity it was computed from.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Optional

from ..bench.schema import STATUS_ERROR, STATUS_FAILED, STATUS_OK, STATUSES
from . import format as fmt
from .cells import (
    AUTO_PROVIDER, BASELINE_PROVIDER, BEST_OTHER, FORCED_PROVIDER, MODE_ORDER, OUR_PROVIDERS, Cell, RatioStats,
    build_cells, op_label, provider_sort_key, speedup_stats,
)
from .crossover import Crossover, crossovers
from .load import LoadedRun, environment_value

def _yes_no(value: Any) -> str:
    return "yes" if value in (True, "True", "true") else "no"


# (label, environment field, rows column to fall back on, formatter)
_ENVIRONMENT_FIELDS: tuple[tuple[str, str, Optional[str], Callable[[Any], str]], ...] = (
    ("GPU", "gpu_name", "gpu_name", str),
    ("Device", "device", "device", str),
    ("Driver", "driver_version", "driver_version", str),
    ("CUDA", "cuda_version", "cuda_version", str),
    ("PyTorch", "torch_version", "torch_version", str),
    ("Triton", "triton_version", "triton_version", str),
    ("Python", "python_version", "python_version", str),
    ("Precision", "dtypes", "dtype", lambda v: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)),
    ("Warmup iterations", "warmup", "warmup", str),
    ("Measured iterations", "iters", "iters", str),
    ("L2 flushed between iterations", "flush_l2", "flush_l2", _yes_no),
    ("CUDA graphs", "cuda_graph", "cuda_graph", _yes_no),
    ("Measured copy bandwidth (100% of peak)", "copy_bandwidth_gbps", "copy_bandwidth_gbps",
     lambda v: f"{fmt.fmt_gbps(float(v))} GB/s"),
    ("Datasheet bandwidth", "spec_bandwidth_gbps", "spec_bandwidth_gbps", lambda v: f"{fmt.fmt_gbps(float(v))} GB/s"),
    ("Dispatch thresholds from", "dispatch_thresholds_source", None, str),
    ("Run id", "run_id", "run_id", str),
    ("Git commit", "git_sha", "git_sha", str),
    ("trinix_bench version", "package_version", "package_version", str),
)
_CPU_ONLY_BLANKS = ("driver_version", "cuda_version", "spec_bandwidth_gbps")

DETAIL_COLUMNS = ("Provider", "Median ms (p20–p80)", "Speedup vs pytorch", "GB/s", "% of peak", "Peak MB", "Correctness")
SUMMARY_COLUMNS = ("Comparison", "Cells", "Average (geo-mean)", "Max", "Min")
MEMORY_COLUMNS = ("Provider", "Cells", "Median extra MB", "Max extra MB", "vs pytorch: less / same / more")
THRESHOLD_COLUMNS = ("Op", "Regime", "Threshold", "In effect", "Measured crossover", "Evidence", "Suggested")

# Two peak-memory figures count as the same when within 1% (allocator rounding).
_MEMORY_SAME_RELATIVE = 0.01

PLOT_METRICS = (
    # (file name, title, y-axis label, what to plot per provider, reference line)
    ("latency.png", "Median latency per config and provider", "median latency (ms)", "median", None),
    ("bandwidth.png", "Achieved bandwidth as % of peak (measured copy bandwidth)", "% of peak bandwidth", "pct", 100.0),
    ("speedup.png", "Speedup over the PyTorch baseline (pytorch median / provider median)", "speedup over pytorch (x)",
     "speedup", 1.0),
)


def build_report_model(run: LoadedRun) -> dict[str, Any]:
    """The complete view model of NORMALIZATION.md for one run."""
    return _ReportBuilder(run).build()


def median_of(values: list[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _labels(points: list, shown: int = 4) -> str:
    """The cell labels of crossover points, the first ``shown`` of them and a count of the rest."""
    text = "; ".join(p.cell.label for p in points[:shown])
    return text + (f"; {len(points) - shown} more" if len(points) > shown else "")


def _shape_text(cell: Cell) -> str:
    return f"{cell.batch}×{cell.seq_len}×{cell.hidden}"


class _ReportBuilder:
    def __init__(self, run: LoadedRun) -> None:
        self.run = run
        self.cells = build_cells(run.rows)
        self.notes = fmt.Footnotes()
        self.crossovers = crossovers(self.cells)

    def build(self) -> dict[str, Any]:
        model = {
            "title": "Normalization benchmark",
            "results_file": self.run.source_file,
            "loader_notes": list(self.run.notes),
            "environment": self.environment(),
            "summary": self.summary(),
            "details": self.details(),
            "scaling": self.scaling(),
            "thresholds": self.thresholds(),
            "insights": self.insights(),
            "recommendations": self.recommendations(),
            "memory": self.memory(),
            "plots": self.plots(),
            "reproduce": self.reproduce(),
        }
        # Last: every section above has registered its footnotes by now.
        model["footnotes"] = self.notes.items()
        return model

    # ------------------------------------------------------------------ environment and reproduce

    def env_text(self, name: str, row_column: Optional[str], formatter: Callable[[Any], str]) -> str:
        value = environment_value(self.run, name, row_column)
        if value is not None:
            return formatter(value)
        if name in _CPU_ONLY_BLANKS and environment_value(self.run, "device", "device") == "cpu":
            return self.notes.missing(f"`{name}`: not applicable to a CPU run")
        return self.notes.missing(f"`{name}` is recorded neither in environment.json nor on the result rows")

    def environment(self) -> list[dict[str, str]]:
        return [{"name": label, "value": self.env_text(name, column, formatter)}
                for label, name, column, formatter in _ENVIRONMENT_FIELDS]

    def reproduce(self) -> dict[str, Any]:
        command = environment_value(self.run, "command", "command")
        if command is None:
            return {"command": None, "missing": self.env_text("command", "command", str)}
        return {"command": str(command), "missing": ""}

    # ------------------------------------------------------------------ summary

    def summary(self) -> dict[str, Any]:
        rows = self.run.rows
        counts = Counter(rows["status"])
        breakdown = ", ".join(f"{status} {counts[status]}" for status in STATUSES if counts[status])
        trinix = rows[rows["provider"] == AUTO_PROVIDER]
        decided = trinix[trinix["backend"] != ""] if "backend" in trinix.columns else trinix.iloc[0:0]
        picked_triton = int((decided["backend"] == "triton").sum()) if len(decided) else 0
        if len(decided):
            triton_available = f"{picked_triton}/{len(decided)}"
        else:
            triton_available = self.notes.missing("no trinix row recorded which backend auto dispatch picked")
        comparisons = [(p, ref) for p in OUR_PROVIDERS for ref in (BASELINE_PROVIDER, BEST_OTHER)]
        return {
            "total_rows": len(rows),
            "total_cells": len(self.cells),
            "status_breakdown": breakdown,
            "triton_available": triton_available,
            "speedups": fmt.table(SUMMARY_COLUMNS, [self.summary_row(p, ref) for p, ref in comparisons]),
        }

    def summary_row(self, provider: str, reference: str) -> list[str]:
        label = f"{provider} vs {reference}"
        stats = speedup_stats(self.cells, provider, reference)
        if stats is None:
            dash = self.notes.missing(f"{label}: no cell has ok rows for both")
            return [label, "0", dash, dash, dash]
        return [label, str(stats.count), fmt.fmt_speedup(stats.geomean),
                f"{fmt.fmt_speedup(stats.best)} ({stats.best_cell.label})",
                f"{fmt.fmt_speedup(stats.worst)} ({stats.worst_cell.label})"]

    # ------------------------------------------------------------------ detailed results

    def status_note(self, record: dict) -> str:
        return f"{record['provider']} {record['status']}: {record.get('reason') or 'no reason recorded'}"

    def details(self) -> list[dict[str, Any]]:
        groups: dict[tuple, list[Cell]] = {}
        for cell in sorted(self.cells, key=lambda c: (c.elements, c.shape_key, c.sort_key())):
            groups.setdefault(cell.shape_key, []).append(cell)
        return [{
            "config": config, "batch": batch, "seq_len": seq_len, "hidden": hidden,
            "tables": [self.detail_table(cell) for cell in sorted(group, key=Cell.sort_key)],
        } for (config, batch, seq_len, hidden), group in groups.items()]

    def detail_table(self, cell: Cell) -> dict[str, Any]:
        fastest = cell.fastest()
        rows = [self.detail_row(cell, provider, provider == fastest) for provider in cell.providers()]
        return fmt.table(DETAIL_COLUMNS, rows, title=f"{cell.op} · {cell.mode} · {cell.dtype}")

    def detail_row(self, cell: Cell, provider: str, is_fastest: bool) -> list[str]:
        record = cell.records[provider]
        name = provider
        if provider == AUTO_PROVIDER and record.get("backend"):
            name = f"{provider} (auto: {record['backend']})"
        if record["status"] != STATUS_OK:
            dash = self.notes.missing(self.status_note(record))
            verdict = f"{STATUS_FAILED}{self.notes.ref(self.status_note(record))}" if record["status"] == STATUS_FAILED else dash
            return [name, dash, dash, dash, dash, dash, verdict]

        def field(column: str, formatter: Callable[[float], str]) -> str:
            return fmt.value_or_missing(record.get(column), formatter, self.notes,
                                        f"`{column}` not recorded on the ok {provider} rows")

        median = fmt.fmt_ms(record["median_ms"])
        median = f"**{median}**" if is_fastest else median
        if fmt.is_number(record.get("p20_ms")) and fmt.is_number(record.get("p80_ms")):
            spread = f"{fmt.fmt_ms(record['p20_ms'])}–{fmt.fmt_ms(record['p80_ms'])}"
        else:
            spread = self.notes.missing(f"`p20_ms`/`p80_ms` not recorded on the ok {provider} rows")
        return [name, f"{median} ({spread})", self.speedup_text(cell, provider), field("gbps", fmt.fmt_gbps),
                field("pct_of_copy", fmt.fmt_pct), field("peak_memory_mb", fmt.fmt_mb), self.correctness(record)]

    def speedup_text(self, cell: Cell, provider: str) -> str:
        speedup = cell.speedup(provider, BASELINE_PROVIDER)
        if speedup is not None:
            return fmt.fmt_speedup(speedup)
        baseline = cell.records.get(BASELINE_PROVIDER)
        if baseline is None:
            return self.notes.missing("no pytorch baseline row in this cell, so no speedup")
        return self.notes.missing(f"no speedup: the baseline is not ok ({self.status_note(baseline)})")

    def correctness(self, record: dict) -> str:
        error, tolerance = record.get("max_rel_error"), record.get("tolerance")
        if fmt.is_number(error) and fmt.is_number(tolerance):
            return f"pass ({fmt.fmt_error(error)} ≤ {fmt.fmt_error(tolerance)})"
        return "pass " + self.notes.missing(f"`max_rel_error`/`tolerance` not recorded on the ok {record['provider']} rows")

    # ------------------------------------------------------------------ scaling

    def scaling(self) -> dict[str, Any]:
        return {"by_seq_len": self.scaling_tables("seq_len", "seq_len"),
                "by_hidden": self.scaling_tables("hidden", "hidden")}

    def scaling_tables(self, attribute: str, heading: str) -> list[dict[str, Any]]:
        """Per op: geo-mean trinix speedup over pytorch for each value of ``attribute`` and mode."""
        tables = []
        for (layer, residual), op_cells in self._group(self.cells, lambda c: (c.layer, c.residual)).items():
            modes = sorted({c.mode for c in op_cells}, key=lambda m: MODE_ORDER.index(m) if m in MODE_ORDER else 99)
            rows = []
            for value in sorted({getattr(c, attribute) for c in op_cells}):
                row = [fmt.fmt_count(value)]
                for mode in modes:
                    subset = [c for c in op_cells if c.mode == mode and getattr(c, attribute) == value]
                    row.append(self.scaling_cell(speedup_stats(subset, AUTO_PROVIDER, BASELINE_PROVIDER),
                                                 f"{op_label(layer, residual)} {mode} at {heading}={value}"))
                rows.append(row)
            tables.append(fmt.table([heading] + [f"{m}: trinix vs pytorch" for m in modes], rows,
                                 title=op_label(layer, residual)))
        return tables

    def scaling_cell(self, stats: Optional[RatioStats], where: str) -> str:
        if stats is None:
            return self.notes.missing(f"{where}: no cell with ok trinix and pytorch rows")
        if stats.count == 1:
            return fmt.fmt_speedup(stats.geomean)
        return f"{fmt.fmt_speedup(stats.geomean)} ({fmt.fmt_speedup(stats.worst)}–{fmt.fmt_speedup(stats.best)}, n={stats.count})"

    @staticmethod
    def _group(cells: list[Cell], key: Callable[[Cell], Any]) -> dict[Any, list[Cell]]:
        groups: dict[Any, list[Cell]] = {}
        for cell in cells:
            groups.setdefault(key(cell), []).append(cell)
        return groups

    # ------------------------------------------------------------------ thresholds

    def thresholds_in_effect(self) -> Optional[dict[str, int]]:
        value = self.run.environment.get("dispatch_thresholds")
        return value if isinstance(value, dict) else None

    def thresholds(self) -> dict[str, Any]:
        in_effect = self.thresholds_in_effect()
        measured = {c.name: c for c in self.crossovers.values()}
        names = list(in_effect or {}) + sorted(n for n in measured if n not in (in_effect or {}))
        rows = [self.threshold_row(name, in_effect, measured.get(name)) for name in names]
        source = environment_value(self.run, "dispatch_thresholds_source", None)
        return {
            "table": fmt.table(THRESHOLD_COLUMNS, rows),
            "source": str(source) if source is not None else self.notes.missing("`dispatch_thresholds_source` not recorded in environment.json"),
            "caveat": self.threshold_caveat(),
            "empty": "" if rows else "No dispatch thresholds are recorded in environment.json and no cell has ok triton and pytorch rows, so there is nothing to compare.",
        }

    def threshold_row(self, name: str, in_effect: Optional[dict], crossover: Optional[Crossover]) -> list[str]:
        training = "_train_" in name
        op = name.replace("_train_min_elements", "").replace("_min_elements", "")
        current = (in_effect or {}).get(name)
        current_text = fmt.value_or_missing(current, fmt.fmt_count, self.notes,
                                            "environment.json has no `dispatch_thresholds` entry for this threshold")
        row = [op, "training" if training else "inference", f"`{name}`", current_text]
        if crossover is None:
            dash = self.notes.missing("not measured in this run: no cell has ok rows for both triton and pytorch")
            return row + [dash, dash, dash]
        return row + [self.crossover_text(crossover), self.evidence_text(crossover, current),
                      self.suggestion_text(crossover, current)]

    def crossover_text(self, crossover: Crossover) -> str:
        if crossover.crossover is None:
            return f"none (Triton slower at the largest size, {fmt.fmt_count(crossover.sizes[-1])})"
        if crossover.largest_losing_size is None:
            return f"≤ {fmt.fmt_count(crossover.crossover)} (Triton faster at every size)"
        return f"{fmt.fmt_count(crossover.largest_losing_size)} < C ≤ {fmt.fmt_count(crossover.crossover)}"

    def evidence_text(self, crossover: Crossover, current: Optional[int]) -> str:
        text = (f"Triton faster at {len(crossover.winning_sizes)}/{len(crossover.sizes)} sizes "
                f"({fmt.fmt_count(crossover.sizes[0])}–{fmt.fmt_count(crossover.sizes[-1])} elements, "
                f"{len(crossover.points)} cells)")
        if fmt.is_number(current):
            text += f"; current threshold mis-dispatches {len(crossover.misdispatched(int(current)))} cells"
        return text

    def suggestion_text(self, crossover: Crossover, current: Optional[int]) -> str:
        suggested = crossover.suggested_threshold
        if suggested is None:
            return f"> {fmt.fmt_count(crossover.sizes[-1])}"
        if fmt.is_number(current) and (not crossover.misdispatched(int(current))
                                       or crossover.routes_as_suggested(int(current))):
            return f"keep {fmt.fmt_count(int(current))}"
        return fmt.fmt_count(suggested)

    # ------------------------------------------------------------------ insights

    def insights(self) -> list[str]:
        ours = [c for c in self.cells if c.median(AUTO_PROVIDER) is not None]
        if not ours:
            return [f"No cell has an ok {AUTO_PROVIDER} row ({self.status_counts_text(AUTO_PROVIDER)}), "
                    "so there is nothing to say about our kernels."]
        sentences = [self.fastest_sentence(), self.relative_extremes_sentence(), self.op_mode_sentence(),
                     self.bandwidth_sentence(ours), self.dispatch_sentence(), self.correctness_sentence(),
                     self.coverage_sentence()]
        return [s for s in sentences if s]

    def status_counts_text(self, provider: str) -> str:
        counts = Counter(c.records[provider]["status"] for c in self.cells if provider in c.records)
        return ", ".join(f"{status} {n}" for status, n in sorted(counts.items())) or "no rows"

    def fastest_sentence(self) -> str:
        contested = [c for c in self.cells if len(c.ok_providers()) >= 2]
        if not contested:
            return "No cell has two or more ok providers, so no provider can be called fastest."
        winners = Counter(c.fastest() for c in contested)
        ours = sum(winners[p] for p in OUR_PROVIDERS)
        others = ", ".join(f"{p} in {n}" for p, n in sorted(winners.items(), key=lambda pn: (-pn[1], pn[0]))
                           if p not in OUR_PROVIDERS)
        sentence = (f"Our kernels ({AUTO_PROVIDER} or forced {FORCED_PROVIDER}) are the fastest provider in "
                    f"{ours}/{len(contested)} cells with two or more ok providers")
        return sentence + (f"; elsewhere the fastest is {others}." if others else ".")

    def relative_extremes_sentence(self) -> str:
        stats = speedup_stats(self.cells, AUTO_PROVIDER, BEST_OTHER)
        if stats is None:
            return f"No cell has both an ok {AUTO_PROVIDER} row and an ok row of another provider to compare against."
        worst, best = stats.worst_cell, stats.best_cell
        return (f"Slowest relative cell: {worst.label} at {fmt.fmt_speedup(stats.worst)} vs {worst.best_other()} "
                f"({fmt.fmt_ms(worst.median(AUTO_PROVIDER))} ms vs {fmt.fmt_ms(worst.median(worst.best_other()))} ms); "
                f"largest lead: {best.label} at {fmt.fmt_speedup(stats.best)} vs {best.best_other()}.")

    def op_mode_sentence(self) -> str:
        groups = self._group(self.cells, lambda c: f"{c.op} {c.mode}")
        means = {name: speedup_stats(cells, AUTO_PROVIDER, BASELINE_PROVIDER) for name, cells in groups.items()}
        means = {name: s for name, s in means.items() if s is not None}
        if not means:
            return f"No cell has ok rows for both {AUTO_PROVIDER} and {BASELINE_PROVIDER}, so there is no speedup to average."
        low = min(means, key=lambda n: means[n].geomean)
        high = max(means, key=lambda n: means[n].geomean)
        if low == high:
            return (f"{AUTO_PROVIDER}'s geo-mean speedup over {BASELINE_PROVIDER} is "
                    f"{fmt.fmt_speedup(means[low].geomean)} over {means[low].count} cells of {low}.")
        return (f"By op and mode, {AUTO_PROVIDER}'s geo-mean speedup over {BASELINE_PROVIDER} ranges from "
                f"{fmt.fmt_speedup(means[low].geomean)} ({low}, {means[low].count} cells) to "
                f"{fmt.fmt_speedup(means[high].geomean)} ({high}, {means[high].count} cells).")

    def bandwidth_sentence(self, ours: list[Cell]) -> str:
        measured = [(c.records[AUTO_PROVIDER].get("gbps"), c.records[AUTO_PROVIDER].get("pct_of_copy"), c) for c in ours]
        measured = [(g, p, c) for g, p, c in measured if fmt.is_number(g) and fmt.is_number(p)]
        if not measured:
            return f"The ok {AUTO_PROVIDER} rows record no bandwidth (`gbps`, `pct_of_copy`), so there is no bandwidth insight."
        gbps, pct, cell = max(measured, key=lambda gpc: gpc[0])
        median_pct = median_of([p for _, p, _ in measured])
        return (f"{AUTO_PROVIDER} peaks at {fmt.fmt_gbps(gbps)} GB/s ({fmt.fmt_pct(pct)} of the measured copy "
                f"bandwidth) in {cell.label}; its median across {len(measured)} cells is {fmt.fmt_pct(median_pct)} of peak.")

    def dispatch_sentence(self) -> str:
        picks = [(c, c.records[AUTO_PROVIDER].get("backend")) for c in self.cells
                 if c.median(AUTO_PROVIDER) is not None and c.records[AUTO_PROVIDER].get("backend") in ("triton", "torch")]
        if not picks:
            return f"No ok {AUTO_PROVIDER} row records its dispatch pick, so auto dispatch cannot be judged."
        on_triton = sum(1 for _, b in picks if b == "triton")
        sentence = f"Auto dispatch picked Triton in {on_triton}/{len(picks)} ok {AUTO_PROVIDER} cells"
        judged = [(c, b) for c, b in picks
                  if c.median(FORCED_PROVIDER) is not None and c.median(c.torch_path_provider) is not None]
        if not judged:
            return sentence + f"; no such cell has ok rows of {FORCED_PROVIDER} and of the torch path to judge the pick."
        # The cost of a pick = how much faster the path not taken was (1.0 when the pick was right).
        costs = []
        for cell, backend in judged:
            triton_ms, torch_ms = cell.median(FORCED_PROVIDER), cell.median(cell.torch_path_provider)
            taken, other = (triton_ms, torch_ms) if backend == "triton" else (torch_ms, triton_ms)
            costs.append((taken / other, cell))
        wrong = [(cost, cell) for cost, cell in costs if cost > 1.0]
        if not wrong:
            return sentence + f"; it picked the faster path in all {len(judged)} cells where both paths were measured."
        cost, cell = max(wrong, key=lambda cc: cc[0])
        return (sentence + f"; it picked the slower path in {len(wrong)}/{len(judged)} cells where both paths were "
                f"measured (worst: {cell.label}, where the other path was {fmt.fmt_speedup(cost)} faster).")

    def broken_rows(self) -> list[tuple[Cell, dict]]:
        """(cell, row) for every FAILED or error row: results that must not be published as they are."""
        return [(c, r) for c in self.cells for r in c.records.values() if r["status"] in (STATUS_FAILED, STATUS_ERROR)]

    def correctness_sentence(self) -> str:
        parts = []
        broken = self.broken_rows()
        if broken:
            shown = "; ".join(f"{r['provider']} {r['status']} in {c.label}" for c, r in broken[:3])
            more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
            parts.append(f"FAILED or errored rows: {len(broken)} ({shown}{more}).")
        # error / tolerance: 1.0 is the edge of failing; the largest ratio is the closest call.
        margins = [(r["max_rel_error"] / r["tolerance"], c, r) for c in self.cells for r in c.records.values()
                   if r["status"] == STATUS_OK and fmt.is_number(r.get("max_rel_error"))
                   and fmt.is_number(r.get("tolerance")) and r["tolerance"] > 0]
        if margins:
            within = sum(1 for ratio, _, _ in margins if ratio <= 1.0)
            ratio, cell, record = max(margins, key=lambda m: m[0])
            parts.append(f"{within}/{len(margins)} ok rows with a recorded error are within their tolerance; the closest "
                         f"is {record['provider']} in {cell.label} at {fmt.fmt_pct(100 * ratio)} of its tolerance.")
        return " ".join(parts) or "No row records a relative error and tolerance, so correctness margins are unknown."

    def coverage_sentence(self) -> str:
        providers = sorted({p for c in self.cells for p in c.records}, key=provider_sort_key)
        absent = [p for p in providers if not any(c.median(p) is not None for c in self.cells)]
        if not absent:
            return f"All {len(providers)} providers produced at least one ok row."
        described = "; ".join(f"{p} ({self.status_counts_text(p)})" for p in absent)
        return f"{len(absent)} of {len(providers)} providers produced no ok row: {described}."

    # ------------------------------------------------------------------ recommendations

    def recommendations(self) -> list[str]:
        sentences = [self.threshold_recommendation(c) for c in self.crossovers.values()]
        if sentences and self.threshold_caveat():
            sentences.append(self.threshold_caveat())
        sentences += self.peer_recommendations()
        broken = self.broken_rows()
        if broken:
            sentences.append(f"Fix the FAILED/error rows before publishing ({len(broken)}, from "
                             f"{', '.join(sorted({r['provider'] for _, r in broken}))}): they missed the reference or raised.")
        if not sentences:
            stats = speedup_stats(self.cells, AUTO_PROVIDER, BEST_OTHER)
            if stats is None:
                return [f"No recommendation: no cell has an ok {AUTO_PROVIDER} row next to another ok provider, "
                        f"and no cell has ok {FORCED_PROVIDER} and {BASELINE_PROVIDER} rows to place a dispatch threshold."]
            sentences.append(f"No change suggested: {AUTO_PROVIDER} is at least as fast as every other provider in all "
                             f"{stats.count} compared cells (weakest: {fmt.fmt_speedup(stats.worst)} in {stats.worst_cell.label}).")
        return sentences

    def threshold_caveat(self) -> str:
        """Said when the run is not on CUDA: auto dispatch only uses Triton there, whatever the threshold."""
        device = environment_value(self.run, "device", "device")
        if device == "cuda":
            return ""
        return (f"This run is on {device or 'an unrecorded device'}: auto dispatch picks Triton on CUDA only, so "
                "crossovers measured here are no evidence for the CUDA thresholds; re-measure on the GPU before changing them.")

    def threshold_recommendation(self, crossover: Crossover) -> str:
        current = (self.thresholds_in_effect() or {}).get(crossover.name)
        current_text = f"`{crossover.name}` is {fmt.fmt_count(current)}" if fmt.is_number(current) else \
            f"`{crossover.name}` is not recorded in environment.json"
        where = f"{crossover.op} {crossover.regime}"
        if crossover.crossover is None:
            # The losing cell at the largest size (another cell of that size may have won).
            largest = min((p for p in crossover.points if p.size == crossover.sizes[-1]), key=lambda p: p.triton_speedup)
            return (f"{where}: Triton is slower than PyTorch at the largest measured size ({fmt.fmt_count(largest.size)} "
                    f"elements, {fmt.fmt_speedup(largest.triton_speedup)}), so the dispatch should pick torch at every "
                    f"measured size — the current threshold {current_text}.")
        verdict = ""
        if fmt.is_number(current):
            wrong = crossover.misdispatched(int(current))
            if not wrong:
                verdict = f"; it dispatches all {len(crossover.points)} measured cells to the faster path, so keep it"
            elif crossover.routes_as_suggested(int(current)):
                verdict = (f"; it routes every measured cell as a threshold at the crossover would, so keep it: the "
                           f"{len(wrong)}/{len(crossover.points)} cells it mis-dispatches are Triton wins below the "
                           f"crossover ({_labels(wrong)}), and a threshold low enough to take them would also "
                           f"send the cells Triton lost at {fmt.fmt_count(crossover.largest_losing_size)} elements "
                           f"to Triton")
            else:
                verdict = (f"; it mis-dispatches {len(wrong)}/{len(crossover.points)} measured cells, so set it to "
                           f"{fmt.fmt_count(crossover.suggested_threshold)}")
        if crossover.largest_losing_size is None:
            return (f"{where}: the Triton path beats PyTorch at every measured size (≥ {fmt.fmt_count(crossover.sizes[0])} "
                    f"elements) by ≥ {fmt.fmt_speedup(crossover.min_speedup_above)} — the current threshold {current_text}{verdict}.")
        return (f"{where}: for rows·hidden ≥ {fmt.fmt_count(crossover.crossover)} the Triton path beats PyTorch by "
                f"≥ {fmt.fmt_speedup(crossover.min_speedup_above)}; below the crossover (Triton loses at "
                f"{fmt.fmt_count(crossover.largest_losing_size)}) the dispatch should pick torch — the current "
                f"threshold {current_text}{verdict}.")

    def peer_recommendations(self) -> list[str]:
        """One sentence per provider that beats trinix somewhere: where, how often, by how much."""
        beaten: dict[str, list[tuple[float, Cell]]] = {}
        for cell in self.cells:
            ours = cell.median(AUTO_PROVIDER)
            if ours is None:
                continue
            for provider in cell.ok_providers():
                if provider not in OUR_PROVIDERS and cell.median(provider) < ours:
                    beaten.setdefault(provider, []).append((ours / cell.median(provider), cell))
        sentences = []
        for provider in sorted(beaten, key=provider_sort_key):
            factor, cell = max(beaten[provider], key=lambda fc: fc[0])
            compared = sum(1 for c in self.cells if c.median(AUTO_PROVIDER) is not None and c.median(provider) is not None)
            sentences.append(f"{provider} beats {AUTO_PROVIDER} in {len(beaten[provider])}/{compared} shared cells, by up "
                             f"to {fmt.fmt_speedup(factor)} in {cell.label}: study those shapes before claiming a lead there.")
        return sentences

    # ------------------------------------------------------------------ memory

    def memory(self) -> dict[str, Any]:
        providers = sorted({p for c in self.cells for p in c.records}, key=provider_sort_key)
        rows = [row for row in (self.memory_row(p) for p in providers) if row]
        return {"table": fmt.table(MEMORY_COLUMNS, rows),
                "empty": "" if rows else "No ok row records `peak_memory_mb`, so there is no memory comparison."}

    def memory_row(self, provider: str) -> Optional[list[str]]:
        measured = [(c.records[provider]["peak_memory_mb"], c) for c in self.cells
                    if c.median(provider) is not None and fmt.is_number(c.records[provider].get("peak_memory_mb"))]
        if not measured:
            return None
        median = median_of([v for v, _ in measured])
        largest, largest_cell = max(measured, key=lambda vc: vc[0])
        versus = Counter()
        for value, cell in measured:
            baseline = cell.records.get(BASELINE_PROVIDER, {})
            if cell.median(BASELINE_PROVIDER) is None or not fmt.is_number(baseline.get("peak_memory_mb")):
                continue
            other = baseline["peak_memory_mb"]
            same = abs(value - other) <= _MEMORY_SAME_RELATIVE * max(abs(value), abs(other))
            versus["same" if same else ("less" if value < other else "more")] += 1
        compared = (f"{versus['less']} / {versus['same']} / {versus['more']}" if sum(versus.values()) else
                    self.notes.missing(f"no cell has ok {provider} and pytorch rows that both record `peak_memory_mb`"))
        return [provider, str(len(measured)), fmt.fmt_mb(median), f"{fmt.fmt_mb(largest)} ({largest_cell.label})", compared]

    # ------------------------------------------------------------------ plots

    def plots(self) -> list[dict[str, Any]]:
        """One figure per metric; a panel per (op, dtype) row and mode column; configs on x by size."""
        panel_keys = sorted({(c.layer, c.residual, c.dtype, c.mode) for c in self.cells},
                            key=lambda k: (k[0], k[1], k[2], MODE_ORDER.index(k[3]) if k[3] in MODE_ORDER else 99))
        row_keys = list(dict.fromkeys(k[:3] for k in panel_keys))
        modes = list(dict.fromkeys(k[3] for k in sorted(panel_keys, key=lambda k: MODE_ORDER.index(k[3]) if k[3] in MODE_ORDER else 99)))
        figures = []
        for filename, title, ylabel, metric, reference in PLOT_METRICS:
            panels = []
            for layer, residual, dtype, mode in panel_keys:
                cells = sorted((c for c in self.cells if (c.layer, c.residual, c.dtype, c.mode) == (layer, residual, dtype, mode)),
                               key=lambda c: (c.elements, c.config))
                providers = sorted({p for c in cells for p in c.records}, key=provider_sort_key)
                if metric == "speedup":  # the baseline is the dashed 1.0 line, not a series
                    providers = [p for p in providers if p != BASELINE_PROVIDER]
                series = [{"provider": p, "values": [self.plot_value(c, p, metric) for c in cells]} for p in providers]
                series = [s for s in series if any(v is not None for v in s["values"])]
                panels.append({
                    "title": f"{op_label(layer, residual)} · {mode} · {dtype}",
                    "row": row_keys.index((layer, residual, dtype)), "col": modes.index(mode),
                    "x_labels": [f"{c.config}\n{_shape_text(c)}" for c in cells],
                    "series": series,
                })
            legend_order = sorted({s["provider"] for p in panels for s in p["series"]}, key=provider_sort_key)
            figures.append({"filename": filename, "title": title, "ylabel": ylabel, "reference_line": reference,
                            "rows": len(row_keys), "cols": len(modes), "panels": panels, "providers": legend_order})
        return figures

    @staticmethod
    def plot_value(cell: Cell, provider: str, metric: str) -> Optional[float]:
        if metric == "median":
            return cell.median(provider)
        if metric == "speedup":
            return cell.speedup(provider, BASELINE_PROVIDER)
        if cell.median(provider) is None:  # no ok row, or no row at all (an interrupted sweep)
            return None
        value = cell.records[provider].get("pct_of_copy")
        return float(value) if fmt.is_number(value) else None

