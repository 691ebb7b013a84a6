"""Group result rows into cells and compute the ratios the report is made of.

A *cell* is one benchmark situation: (config, batch, seq_len, hidden, layer, residual, mode, dtype).
Inside a cell every provider has at most one row. All comparisons happen inside a cell:

* speedup of provider P over reference R = median_ms(R) / median_ms(P); > 1 means P is faster.
  Only rows with status "ok" have a median that counts; any other status gives no speedup.
* the *best other* provider of a cell is the fastest ok provider that is not one of ours
  (``trinix``, ``triton``). The ``pytorch`` baseline is a candidate too: a user who does not take
  our module can always stay on eager PyTorch, so "best other" is the strongest alternative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import pandas as pd

from ..bench.schema import STATUS_OK
from .load import CELL_COLUMNS

AUTO_PROVIDER = "trinix"  # our module with auto dispatch: what users get
FORCED_PROVIDER = "triton"  # our kernels, forced
OUR_PROVIDERS = (AUTO_PROVIDER, FORCED_PROVIDER)
BASELINE_PROVIDER = "pytorch"  # the eager baseline every speedup is measured against
TORCH_NATIVE_PROVIDER = "torch_native"  # torch.nn.functional.rms_norm
BEST_OTHER = "best other"  # a reference that is resolved per cell

# Display order; providers the report does not know yet sort after these, alphabetically.
PROVIDER_ORDER = (
    "trinix", "triton", "pytorch", "torch_native", "torch_compile", "apex", "liger", "quack", "flashinfer", "vllm",
)
MODE_ORDER = ("fwd", "bwd", "full")
DTYPE_ORDER = ("fp16", "bf16", "fp32")
TRAINING_MODES = ("bwd", "full")  # modes that run a backward pass, so dispatch uses the *_train_* threshold


def provider_sort_key(name: str) -> tuple:
    return (PROVIDER_ORDER.index(name), "") if name in PROVIDER_ORDER else (len(PROVIDER_ORDER), name)


def _order(value: str, order: tuple) -> tuple:
    return (order.index(value), "") if value in order else (len(order), value)


def op_label(layer: str, residual: bool) -> str:
    """Human name of an op: "rmsnorm" or "rmsnorm + residual"."""
    return f"{layer} + residual" if residual else layer


def dispatch_op(layer: str, residual: bool) -> str:
    """The op name trinix_bench.dispatch uses for (layer, residual), e.g. fused_add_rms_norm."""
    base = {"rmsnorm": "rms_norm", "layernorm": "layer_norm"}.get(layer, layer)
    return f"fused_add_{base}" if residual else base


def regime(mode: str) -> str:
    return "training" if mode in TRAINING_MODES else "inference"


@dataclass
class Cell:
    config: str
    batch: int
    seq_len: int
    hidden: int
    layer: str
    residual: bool
    mode: str
    dtype: str
    rows: int
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # provider -> its row

    @property
    def elements(self) -> int:
        """rows * hidden: the size the dispatch thresholds are written in."""
        return self.rows * self.hidden

    @property
    def shape_key(self) -> tuple:
        return (self.config, self.batch, self.seq_len, self.hidden)

    @property
    def op(self) -> str:
        return op_label(self.layer, self.residual)

    @property
    def label(self) -> str:
        return f"{self.config} {self.op} {self.mode} {self.dtype}"

    def sort_key(self) -> tuple:
        return (self.layer, self.residual, _order(self.mode, MODE_ORDER), _order(self.dtype, DTYPE_ORDER),
                self.elements, self.config)

    @property
    def torch_path_provider(self) -> str:
        """The provider that measures auto dispatch's PyTorch path for this cell.

        On CUDA that path is F.rms_norm for RMSNorm (provider ``torch_native``) and F.layer_norm for
        LayerNorm (``pytorch``); on the CPU it is the fp32 eager reference, which ``pytorch`` matches.
        A run without an ok ``torch_native`` row in the cell falls back to ``pytorch``.
        """
        record = next(iter(self.records.values()), {})
        if self.layer == "rmsnorm" and record.get("device") == "cuda" and self.median(TORCH_NATIVE_PROVIDER) is not None:
            return TORCH_NATIVE_PROVIDER
        return BASELINE_PROVIDER

    def providers(self) -> list[str]:
        return sorted(self.records, key=provider_sort_key)

    def ok_providers(self) -> list[str]:
        return [p for p in self.providers() if self.median(p) is not None]

    def median(self, provider: str) -> Optional[float]:
        """The provider's median ms, or None when it has no ok row here."""
        record = self.records.get(provider)
        if record is None or record.get("status") != STATUS_OK:
            return None
        value = record.get("median_ms")
        return float(value) if value is not None and math.isfinite(value) and value > 0 else None

    def best_other(self) -> Optional[str]:
        """Fastest ok provider that is not ours (pytorch included), None when there is none."""
        return self._fastest([p for p in self.ok_providers() if p not in OUR_PROVIDERS])

    def fastest(self) -> Optional[str]:
        return self._fastest(self.ok_providers())

    def _fastest(self, candidates: list[str]) -> Optional[str]:
        # Ties go to the earlier provider in display order, so the result does not depend on row order.
        return min(candidates, key=lambda p: (self.median(p), provider_sort_key(p)), default=None)

    def resolve(self, reference: str) -> Optional[str]:
        return self.best_other() if reference == BEST_OTHER else reference

    def speedup(self, provider: str, reference: str) -> Optional[float]:
        """median(reference) / median(provider); None unless both are ok rows."""
        ours, theirs = self.median(provider), self.median(self.resolve(reference) or "")
        if ours is None or theirs is None:
            return None
        return theirs / ours


def build_cells(rows: pd.DataFrame) -> list[Cell]:
    """One Cell per distinct CELL_COLUMNS value, in report order (op, mode, dtype, size)."""
    cells = []
    for key, group in rows.groupby(list(CELL_COLUMNS), sort=False):
        values = dict(zip(CELL_COLUMNS, key))
        records = {r["provider"]: _plain(r) for r in group.to_dict("records")}
        first = next(iter(records.values()))
        cells.append(Cell(rows=int(first["rows"]), records=records, **{k: _plain_value(v) for k, v in values.items()}))
    return sorted(cells, key=Cell.sort_key)


def _plain_value(value: Any) -> Any:
    """numpy scalars -> Python scalars, NaN -> None, so the view model holds plain values only."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _plain(record: dict) -> dict:
    return {k: _plain_value(v) for k, v in record.items()}


@dataclass(frozen=True)
class RatioStats:
    """Speedups of one provider over one reference across cells: count, geometric mean, extremes."""

    count: int
    geomean: float
    best: float
    best_cell: Cell
    worst: float
    worst_cell: Cell


def speedup_stats(cells: Iterable[Cell], provider: str, reference: str) -> Optional[RatioStats]:
    """Stats of cell.speedup(provider, reference) over the cells where it exists; None if none do."""
    pairs = [(c.speedup(provider, reference), c) for c in cells]
    pairs = [(s, c) for s, c in pairs if s is not None]
    if not pairs:
        return None
    best = max(pairs, key=lambda sc: sc[0])
    worst = min(pairs, key=lambda sc: sc[0])
    return RatioStats(len(pairs), geometric_mean([s for s, _ in pairs]), best[0], best[1], worst[0], worst[1])


def geometric_mean(values: list[float]) -> float:
    """exp(mean(ln v)): the average for ratios, under which 2x and 0.5x cancel out to 1x."""
    if not values:
        raise ValueError("geometric_mean: expected at least one value")
    return math.exp(sum(math.log(v) for v in values) / len(values))
