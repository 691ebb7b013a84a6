"""The sweep: every (config, dtype, layer, mode) cell times every provider, one row each.

Per measurement: build the case (cases.make_case), check it against the float64 reference, time it,
measure its peak memory, and append the row. What cannot be measured still gets a row: an
unavailable provider or unsupported cell (``unavailable``), a cell that does not fit free memory
(``skipped``), an out-of-memory (``OOM``; the sweep goes on), any other exception (``error``).
Ctrl-C stops the sweep; rows already written stay on disk.
"""

from __future__ import annotations

import gc
import itertools
from dataclasses import dataclass, field
from typing import Optional

import torch
from tqdm import tqdm

from ..reference import tolerance_for
from . import schema
from .cases import check_case, check_rows, input_seed, make_case
from .configs import Config
from .memory import estimate_bytes, free_bytes, peak_bytes
from .metrics import gbps, ideal_bytes, percent_of, summarize_ms
from .providers import PROVIDERS
from .results import ResultWriter
from .spec import Spec
from .timing import capture_graph, make_flush_buffer, time_loop


@dataclass(frozen=True)
class Plan:
    configs: tuple[Config, ...]
    layers: tuple[str, ...]
    residual: bool
    modes: tuple[str, ...]
    dtypes: tuple[str, ...]
    providers: tuple[str, ...]

    def specs(self) -> list[Spec]:
        """Cells in sweep order: config, dtype, layer, mode (providers vary fastest, in run_sweep)."""
        return [
            Spec(c, layer, self.residual, mode, dtype)
            for c, dtype, layer, mode in itertools.product(self.configs, self.dtypes, self.layers, self.modes)
        ]


@dataclass(frozen=True)
class Settings:
    device: torch.device
    warmup: int
    iters: int
    flush_l2: bool  # requested; applied on CUDA only
    cuda_graph: bool  # requested; applied to fwd on CUDA only
    seed: int = 0


@dataclass
class SweepResult:
    rows: list = field(default_factory=list)
    interrupted: bool = False


def probe_providers(names) -> dict:
    """{name: None if importable, else the reason}."""
    return {name: PROVIDERS[name].probe() for name in names}


def _one_line(exc: BaseException, limit: int = 500) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit]


def _is_oom(exc: BaseException) -> bool:
    # CUDA OOM is torch.OutOfMemoryError; the CPU allocator raises a plain RuntimeError.
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    )


class _Sweep:
    def __init__(self, settings: Settings, copy_gbps, spec_gbps):
        self.settings = settings
        self.copy_gbps, self.spec_gbps = copy_gbps, spec_gbps
        self.device_type = settings.device.type
        self.flush = make_flush_buffer(settings.device) if settings.flush_l2 and self.device_type == "cuda" else None

    def base_row(self, spec: Spec, provider: str) -> dict:
        c, s = spec.config, self.settings
        elem = torch.empty((), dtype=spec.torch_dtype).element_size()
        return {
            "config": c.name, "batch": c.batch, "seq_len": c.seq_len, "hidden": c.hidden, "rows": c.rows,
            "layer": spec.layer, "residual": spec.residual, "mode": spec.mode, "dtype": spec.dtype,
            "provider": provider, "backend": "", "dispatch_reason": "", "reason": "",
            "warmup": s.warmup, "iters": s.iters, "flush_l2": self.flush is not None, "cuda_graph": False,
            "ideal_bytes": ideal_bytes(spec.layer, spec.residual, spec.mode, c.rows, c.hidden, elem),
            "tolerance": tolerance_for(spec.torch_dtype),
        }

    def measure(self, spec: Spec, name: str, row: dict) -> None:
        """Fill ``row`` with a full measurement; raises on OOM/errors (``attempt`` records them)."""
        s = self.settings
        case = make_case(spec, PROVIDERS[name], s.device, input_seed(s.seed, spec))
        row.update(backend=case.built.backend, dispatch_reason=case.built.dispatch_reason)
        worst, bad = check_case(case, check_rows(spec.config.rows, s.device))
        row["max_rel_error"] = worst
        if bad:
            row.update(status=schema.STATUS_FAILED, reason="exceeds tolerance: " + ", ".join(bad))
            return
        step = case.run
        if s.cuda_graph and self.device_type == "cuda" and spec.mode == "fwd":
            try:
                step = capture_graph(case.run, case.prepare)
                row["cuda_graph"] = True
            except RuntimeError:
                # Not capturable (e.g. a host sync inside the provider): time eager launches; the
                # row's cuda_graph=False says so.
                torch.cuda.synchronize()
        times = time_loop(step, device_type=self.device_type, warmup=s.warmup, iters=s.iters,
                          prepare=case.prepare, flush=self.flush)
        stats = summarize_ms(times)
        bandwidth = gbps(row["ideal_bytes"], stats["median_ms"])
        row.update(stats)
        row.update(
            status=schema.STATUS_OK,
            peak_memory_mb=peak_bytes(case.run, case.prepare, s.device) / 2**20,
            gbps=bandwidth,
            pct_of_copy=percent_of(bandwidth, self.copy_gbps),
            pct_of_spec=percent_of(bandwidth, self.spec_gbps),
        )

    def attempt(self, spec: Spec, name: str, probe: Optional[str]) -> dict:
        row = self.base_row(spec, name)
        try:
            reason = probe or PROVIDERS[name].unsupported(spec, self.device_type)
            if reason:
                row.update(status=schema.STATUS_UNAVAILABLE, reason=reason)
                return row
            need, free = estimate_bytes(spec), free_bytes(self.settings.device)
            if need > free:
                row.update(status=schema.STATUS_SKIPPED, reason=(
                    f"does not fit: needs ~{need / 2**30:.1f} GiB (estimate), "
                    f"{free / 2**30:.1f} GiB free on {self.device_type}"))
                return row
            self.measure(spec, name, row)
        except Exception as exc:  # OOM or any provider failure: record it on the row and go on
            status = schema.STATUS_OOM if _is_oom(exc) else schema.STATUS_ERROR
            text = _one_line(exc)
            row.update(status=status, reason=text if status == schema.STATUS_OOM else f"{type(exc).__name__}: {text}")
        finally:
            if row.get("status") not in (schema.STATUS_UNAVAILABLE, schema.STATUS_SKIPPED):
                self.release()  # only where tensors were made
        return row

    def release(self) -> None:
        # Drop the case's tensors (and any exception traceback's references) before the next one.
        gc.collect()
        if self.device_type == "cuda":
            torch.cuda.empty_cache()


def run_sweep(
    plan: Plan,
    settings: Settings,
    writer: ResultWriter,
    *,
    probes: dict,
    copy_gbps: Optional[float],
    spec_gbps: Optional[float],
    progress: bool = True,
) -> SweepResult:
    """Measure every cell x provider, writing each row as it completes."""
    sweep = _Sweep(settings, copy_gbps, spec_gbps)
    result = SweepResult()
    specs = plan.specs()
    bar = tqdm(total=len(specs) * len(plan.providers), unit="meas", disable=not progress, dynamic_ncols=True)
    try:
        for spec in specs:
            for name in plan.providers:
                bar.set_postfix_str(f"{spec.label()} {name}", refresh=False)
                result.rows.append(writer.write(sweep.attempt(spec, name, probes.get(name))))
                bar.update()
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        bar.close()
    return result
