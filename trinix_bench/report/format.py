"""Number formatting and footnoted missing values, shared by the report and the comparison.

A value that cannot be shown renders as ``-[^n]``: a dash plus a markdown footnote whose text says
why (provider unavailable, OOM, FAILED and its error, a field the run did not record). Footnotes are
numbered in order of first use and shared by identical reasons, so a peer that is not installed
costs one footnote, not one per table.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "-"
_REASON_MAX_CHARS = 240


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Footnotes:
    """Numbers reasons in order of first use; ``missing(reason)`` gives the table text."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def ref(self, reason: str) -> str:
        text = clean_reason(reason)
        if text not in self._ids:
            self._ids[text] = len(self._ids) + 1
        return f"[^{self._ids[text]}]"

    def missing(self, reason: str) -> str:
        return MISSING + self.ref(reason)

    def items(self) -> list[dict]:
        return [{"id": number, "text": text} for text, number in self._ids.items()]


def clean_reason(reason: str) -> str:
    """One line, no table-breaking characters, bounded length (OOM messages can be paragraphs)."""
    text = " ".join(str(reason).split()) or "no reason recorded"
    text = text.replace("|", "/")
    if len(text) > _REASON_MAX_CHARS:
        text = text[: _REASON_MAX_CHARS - 1].rstrip() + "…"
    return text


def significant(value: float, digits: int = 4) -> str:
    """``digits`` significant digits in fixed notation (0.01234, 1.234, 1234), never scientific."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:.{decimals}f}"


def fmt_ms(value: float) -> str:
    return significant(value, 4)


def fixed(value: float, decimals: int, suffix: str = "") -> str:
    """``decimals`` places, or 2 significant digits below 10**(1-decimals) so small values never read as 0."""
    if value != 0 and abs(value) < 10 ** (1 - decimals):
        return significant(value, 2) + suffix
    return f"{value:.{decimals}f}{suffix}"


def fmt_speedup(value: float) -> str:
    return fixed(value, 2, "x")


def fmt_gbps(value: float) -> str:
    return fixed(value, 1)


def fmt_pct(value: float) -> str:
    return fixed(value, 1, "%")


def fmt_mb(value: float) -> str:
    return fixed(value, 2)


def fmt_error(value: float) -> str:
    return f"{value:.1e}"


def fmt_count(value: int) -> str:
    return f"{int(value):,}"  # thousands separators: 134,217,728 elements


def fmt_change_pct(value: float) -> str:
    return f"{value:+.1f}%"


def value_or_missing(value: Any, formatter, notes: Footnotes, reason: str) -> str:
    """``formatter(value)`` for a finite number, else a footnoted dash giving ``reason``."""
    if is_number(value):
        return formatter(value)
    return notes.missing(reason)



def table(columns, rows, title: str = "") -> dict[str, Any]:
    """The view-model shape every markdown table takes (rendered by templates/_macros.j2 ``table``)."""
    return {"title": title, "columns": list(columns), "rows": [list(r) for r in rows]}
