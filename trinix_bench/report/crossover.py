"""Where the measurements say the auto-dispatch thresholds should be.

trinix picks Triton when rows * hidden >= a per-op threshold (one for inference, one for training;
see trinix_bench.dispatch). The two paths it chooses between are measured directly: the ``triton``
provider is the Triton path forced, and the torch backend is the provider ``Cell.torch_path_provider``
names (F.rms_norm = ``torch_native`` for RMSNorm on CUDA, else ``pytorch``). For one op and regime
(fwd = inference; bwd and full = training):

* a size S = rows * hidden is a *Triton win* when triton's median beats pytorch's in every cell of
  that size (several configs or dtypes can share a size; a threshold cannot tell them apart, so all
  must agree);
* the *measured crossover* C is the smallest measured size from which Triton wins at every larger
  measured size too. If Triton loses at the largest size there is no crossover: torch stays best
  everywhere measured. The true crossover lies between the largest losing size below C and C;
* a threshold T *mis-dispatches* a cell when size >= T but Triton is slower there, or size < T but
  Triton is faster. The suggested threshold is C, or 0 when Triton wins at every measured size; a
  threshold that routes every measured cell as C does is kept (``routes_as_suggested``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..dispatch import threshold_field
from .cells import FORCED_PROVIDER, Cell, dispatch_op, regime

TRITON_PATH = FORCED_PROVIDER


def threshold_name(op: str, regime_name: str) -> str:
    """The DispatchThresholds field for an op and regime, e.g. rms_norm_train_min_elements."""
    return threshold_field(op, regime_name == "training")


@dataclass(frozen=True)
class Point:
    """One cell where both paths were measured."""

    cell: Cell
    triton_ms: float
    torch_ms: float

    @property
    def size(self) -> int:
        return self.cell.elements

    @property
    def triton_faster(self) -> bool:
        return self.triton_ms < self.torch_ms

    @property
    def triton_speedup(self) -> float:
        """torch_ms / triton_ms: how much faster the Triton path is (< 1: slower)."""
        return self.torch_ms / self.triton_ms


@dataclass(frozen=True)
class Crossover:
    op: str  # dispatch op name, e.g. "fused_add_rms_norm"
    regime: str  # "inference" | "training"
    points: tuple[Point, ...]
    sizes: tuple[int, ...]  # distinct measured sizes, ascending
    winning_sizes: tuple[int, ...]  # sizes where Triton won in every cell
    crossover: Optional[int]  # None: Triton loses at the largest measured size

    @property
    def name(self) -> str:
        return threshold_name(self.op, self.regime)

    @property
    def suggested_threshold(self) -> Optional[int]:
        """C, or 0 when Triton already wins at the smallest measured size; None when there is no C."""
        if self.crossover is None:
            return None
        return 0 if self.crossover == self.sizes[0] else self.crossover

    @property
    def min_speedup_above(self) -> Optional[float]:
        """The smallest Triton speedup over torch among cells at or above the crossover."""
        if self.crossover is None:
            return None
        return min(p.triton_speedup for p in self.points if p.size >= self.crossover)

    @property
    def largest_losing_size(self) -> Optional[int]:
        losing = [s for s in self.sizes if s not in self.winning_sizes]
        return max(losing) if losing else None

    def misdispatched(self, threshold: int) -> list[Point]:
        """Cells where ``size >= threshold`` disagrees with which path was measured faster."""
        return [p for p in self.points if (p.size >= threshold) != p.triton_faster]

    def routes_as_suggested(self, threshold: int) -> bool:
        """Whether ``threshold`` sends every measured cell down the same path as the suggested one.

        Every threshold between the largest measured size below C and C routes the measured cells
        alike, so the measurements give no reason to move one there; the cells it still mis-
        dispatches are Triton wins below C, which a lower threshold could only take by also sending
        the cells Triton lost at the largest losing size to Triton."""
        suggested = self.suggested_threshold
        if suggested is None:
            return False
        return all((p.size >= threshold) == (p.size >= suggested) for p in self.points)


def points_for(cells: list[Cell]) -> list[Point]:
    points = []
    for cell in cells:
        triton_ms, torch_ms = cell.median(TRITON_PATH), cell.median(cell.torch_path_provider)
        if triton_ms is not None and torch_ms is not None:
            points.append(Point(cell, triton_ms, torch_ms))
    return points


def find_crossover(op: str, regime_name: str, points: list[Point]) -> Optional[Crossover]:
    """The crossover of one op and regime from its points; None when nothing was measured."""
    if not points:
        return None
    sizes = sorted({p.size for p in points})
    winning = [s for s in sizes if all(p.triton_faster for p in points if p.size == s)]
    crossover = None
    # Walk down from the largest size while Triton keeps winning; the last size reached is C.
    for size in reversed(sizes):
        if size not in winning:
            break
        crossover = size
    return Crossover(op, regime_name, tuple(points), tuple(sizes), tuple(winning), crossover)


def crossovers(cells: list[Cell]) -> dict[tuple[str, str], Crossover]:
    """(dispatch op, regime) -> Crossover, for every op and regime with at least one point."""
    grouped: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        grouped.setdefault((dispatch_op(cell.layer, cell.residual), regime(cell.mode)), []).append(cell)
    found = {key: find_crossover(key[0], key[1], points_for(group)) for key, group in grouped.items()}
    return {key: value for key, value in found.items() if value is not None}
