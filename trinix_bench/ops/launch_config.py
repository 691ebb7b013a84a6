"""Launch heuristics for the normalization kernels, as data.

Every number sits in a table with a comment naming the measurement or fact behind it; the
selection functions only look rows up. docs/kernels.md holds the measurements.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ForwardLaunch:
    """How the forward kernel covers a (rows, hidden) problem."""

    block_n: int  # columns held per program; >= hidden unless looped
    block_m: int  # rows per program (several rows when hidden is small)
    num_warps: int
    looped: bool  # hidden > block_n: two passes over each row in block_n chunks


@dataclass(frozen=True)
class BackwardLaunch:
    """How the backward kernel covers a (rows, hidden) problem."""

    block_n: int
    block_m: int
    num_warps: int
    looped: bool
    programs: int  # grid size; each program owns a contiguous strip of rows and one dw partial row
    rows_per_program: int


# Widest row kept whole in registers, forward: 64K fp32 values over 32 warps is 64 registers a
# thread, which ptxas keeps without spilling (the same single-pass limit Liger-Kernel uses).
MAX_SINGLE_PASS_FWD = 65536
# Backward holds x, dy, w and the dw accumulator per column: 4x the forward's live values, so
# its single-pass limit is a quarter of the forward's to stay under 255 registers a thread.
MAX_SINGLE_PASS_BWD = 16384
# Chunk width of the looped (two-pass) kernels: 8K columns x 16 warps is 16 values a thread per
# tensor, enough loads in flight per SM while leaving room for the accumulators.
LOOPED_BLOCK_N = 8192

# (largest block_n, num_warps): warps grow with the row width so that each thread keeps a small,
# fixed number of elements in flight (Liger-Kernel's calculate_settings steps, a public fact).
WARPS_BY_BLOCK_N = (
    (1024, 4),
    (4096, 8),
    (16384, 16),
    (65536, 32),
)

# Rows per program for narrow rows: a program should cover about this many elements so that tiny
# hidden sizes do not launch one 4-warp program per few hundred bytes.
TARGET_ELEMENTS_PER_PROGRAM = 4096
MAX_ROWS_PER_PROGRAM = 64

# Backward grid: programs per SM. Each program writes one fp32 partial row of dw (and db), so
# the partial buffer is programs x hidden x 4 bytes; 2 per SM keeps every SM busy with two
# resident programs while the partial sum stays small next to the activations.
BACKWARD_PROGRAMS_PER_SM = 2
# Programs used when the "device" is the CPU interpreter: it runs programs one after another, so
# fewer, larger programs are faster and still exercise the multi-program reduction.
INTERPRETER_PROGRAMS = 4


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _warps_for(block_n: int) -> int:
    for limit, warps in WARPS_BY_BLOCK_N:
        if block_n <= limit:
            return warps
    return WARPS_BY_BLOCK_N[-1][1]


def _rows_per_program(block_n: int) -> int:
    return max(1, min(MAX_ROWS_PER_PROGRAM, TARGET_ELEMENTS_PER_PROGRAM // block_n))


@functools.lru_cache(maxsize=None)
def forward_launch(hidden: int, max_single_pass: int = MAX_SINGLE_PASS_FWD) -> ForwardLaunch:
    """Launch shape for the forward kernel; cached since a model uses a handful of hidden sizes."""
    if hidden > max_single_pass:
        block_n = min(LOOPED_BLOCK_N, max_single_pass)
        return ForwardLaunch(block_n=block_n, block_m=1, num_warps=_warps_for(block_n), looped=True)
    block_n = _next_power_of_2(hidden)
    return ForwardLaunch(block_n=block_n, block_m=_rows_per_program(block_n), num_warps=_warps_for(block_n), looped=False)


@functools.lru_cache(maxsize=None)
def _backward_shape(hidden: int, max_single_pass: int) -> tuple[int, int, int, bool]:
    if hidden > max_single_pass:
        block_n = min(LOOPED_BLOCK_N, max_single_pass)
        return block_n, 1, _warps_for(block_n), True
    block_n = _next_power_of_2(hidden)
    return block_n, _rows_per_program(block_n), _warps_for(block_n), False


def backward_launch(rows: int, hidden: int, max_programs: int, max_single_pass: int = MAX_SINGLE_PASS_BWD) -> BackwardLaunch:
    """Launch shape for the backward kernel: a grid of at most ``max_programs`` row strips."""
    block_n, block_m, num_warps, looped = _backward_shape(hidden, max_single_pass)
    row_blocks = -(-rows // block_m)
    programs = max(1, min(max_programs, row_blocks))
    # Strips are whole multiples of block_m so that no program has a ragged block in its middle.
    rows_per_program = -(-row_blocks // programs) * block_m
    programs = max(1, -(-rows // rows_per_program))
    return BackwardLaunch(block_n, block_m, num_warps, looped, programs, rows_per_program)


@functools.lru_cache(maxsize=None)
def max_backward_programs(device: torch.device) -> int:
    """Upper bound on the backward grid for a device (SM count x programs per SM)."""
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        return sms * BACKWARD_PROGRAMS_PER_SM
    return INTERPRETER_PROGRAMS
