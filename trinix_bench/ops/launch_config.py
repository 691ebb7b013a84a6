"""Launch heuristics for the normalization kernels, as data.

Every number sits in a table with a comment naming the measurement or fact behind it; the
selection functions only look rows up. docs/kernels.md holds the measurements.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

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
    row_stages: int  # software-pipelining depth of the row loop (looped kernel: of its inner loops)


# Widest row kept whole in registers, forward: 64K fp32 values over 32 warps is 64 registers a
# thread, which ptxas keeps without spilling (the same single-pass limit Liger-Kernel uses).
MAX_SINGLE_PASS_FWD = 65536
# Widest row the backward keeps whole in registers, by op. It holds x, dy, w and the dw sum per
# column, LayerNorm also the db sum. scripts/tune_kernels.py backward, H200 2026-11-20 (fwd+bwd,
# % of copy, docs/kernels.md): RMSNorm single-pass at 16 warps beat the looped kernel at 12288
# (66% vs 62%) and 16384 (76% vs 67%); LayerNorm single-pass spilled there (7% and 9%) while the
# looped kernel reached 60% and 65%. At 8192 only the single-pass kernel was measured (78% RMSNorm,
# 70% LayerNorm), so LayerNorm's limit rests on the 12288/16384 points.
MAX_SINGLE_PASS_BWD_RMS = 16384
MAX_SINGLE_PASS_BWD_LN = 8192
# Chunk width of the looped forward beyond MAX_SINGLE_PASS_FWD: 8K columns x 16 warps is 16 values
# a thread per tensor. scripts/tune_kernels.py forward_looped, H200 2026-11-20: 8192 beat 4096 and
# 2048 at 65537 and 131072 columns for both ops (e.g. LayerNorm 64x65537: 37.7 vs 72.2 us).
LOOPED_BLOCK_N = 8192
# A row that fills little of its power-of-two register tile leaves those registers idle and fewer
# rows in flight per SM; the looped kernel then wins. Same sweep, % of copy, single-pass vs looped:
# RMSNorm 12288 (75% fill): 85 vs 93 (8192 chunks); 18432 (56%): 64 vs 87; 14336 and 28672 (88%):
# single-pass as good or better (92 vs 92, 80 vs 73). LayerNorm: 18432: 51 vs 73 (4096 chunks);
# 12288: 81 vs 79, so it stays single-pass.
# op (is_rms) -> (loop when hidden / next_pow2(hidden) is at most this, chunk width)
LOW_FILL_LOOPED_FWD = {True: (0.75, 8192), False: (0.6, 4096)}
# Below this width a row's tile is small enough that idle lanes cost little (5120 and 7168 were
# within 1 point of each other single-pass vs looped for RMSNorm).
LOW_FILL_MIN_HIDDEN = 8192
# Chunk width of the looped backward: same sweep, 4096-column chunks at 8 warps beat 8192 at 16
# warps for every wide shape (LayerNorm 16384: 65% vs 63%; RMSNorm 16384: 67% vs 64%).
LOOPED_BLOCK_N_BWD = 4096

# (largest block_n, num_warps): warps grow with the row width so that each thread keeps a small,
# fixed number of elements in flight (Liger-Kernel's calculate_settings steps, a public fact).
WARPS_BY_BLOCK_N = (
    (1024, 4),
    (4096, 8),
    (16384, 16),
    (65536, 32),
)

# Backward warps by row width. Same sweep: 32 warps at 16384 lost to 16 (RMSNorm 72% vs 76%;
# a 1024-thread program caps ptxas at 64 registers a thread). The 4 and 8 warp steps are Liger-
# Kernel's public calculate_settings steps, not yet swept here.
BACKWARD_WARPS_BY_BLOCK_N = (
    (1024, 4),
    (4096, 8),
    (16384, 16),
    (65536, 32),
)

# Rows per program for narrow rows: a program should cover about this many elements so that tiny
# hidden sizes do not launch one 4-warp program per few hundred bytes.
TARGET_ELEMENTS_PER_PROGRAM = 4096
MAX_ROWS_PER_PROGRAM = 64

# Backward grid: programs per SM. Each program writes one fp32 partial row of dw (and db), so the
# partial buffer is programs x hidden x 4 bytes. scripts/tune_kernels.py backward_stages, H200
# 2026-11-20 (fwd+bwd % of copy, 1 / 2 / 4 per SM): the single-pass kernel does best with one
# resident program per SM (RMSNorm 16384x8192: 80 / 78 / 76; LayerNorm: 73 / 70 / 67), the looped
# kernel, whose passes leave gaps, with two (LayerNorm 32768x12288: 48 / 60 / 59).
BACKWARD_PROGRAMS_PER_SM = {False: 1, True: 2}  # looped -> programs per SM

# Software-pipelining depth of the backward's row loop (tl.range num_stages: the next rows' x and
# dy are staged through shared memory while a row is reduced). scripts/tune_kernels.py
# backward_pipeline, H200 2026-11-21 (runs 19-20, fwd+bwd % of copy, 1 program/SM):
# - single-pass up to 8192 columns: 3 stages lift 16384x8192 from 78 to 89% (RMSNorm) and from
#   65 to 75% (LayerNorm, run 20; 51 -> 85% in run 19); 2 stages lose (76%, 68%), 4 match 3.
# - single-pass at a 16384-column tile: 3 stages lose (RMSNorm 32768x12288: 68 vs 69%,
#   131072x16384: 73 vs 77%): x, dy, w and the dw sum already fill the registers there.
# - looped: 2-3 stages lose or tie (LayerNorm 32768x12288: 60 / 56 / 52% at 1 / 2 / 3).
PIPELINED_BWD_MAX_BLOCK_N = 8192  # widest single-pass tile whose row loop is pipelined
PIPELINED_BWD_ROW_STAGES = 3  # stages of that loop
UNPIPELINED_ROW_STAGES = 1  # wider single-pass tiles and the looped kernel
# Programs per "SM" when the device is the CPU interpreter: it runs programs one after another, so
# fewer, larger programs are faster and still exercise the multi-program reduction.
INTERPRETER_PROGRAMS = 2


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _warps_for(block_n: int, table=WARPS_BY_BLOCK_N) -> int:
    for limit, warps in table:
        if block_n <= limit:
            return warps
    return table[-1][1]


def _rows_per_program(block_n: int) -> int:
    return max(1, min(MAX_ROWS_PER_PROGRAM, TARGET_ELEMENTS_PER_PROGRAM // block_n))


@functools.lru_cache(maxsize=None)
def forward_launch(hidden: int, is_rms: bool = True, max_single_pass: Optional[int] = None) -> ForwardLaunch:
    """Launch shape for the forward kernel; cached since a model uses a handful of hidden sizes."""
    max_single_pass = MAX_SINGLE_PASS_FWD if max_single_pass is None else max_single_pass
    if hidden > max_single_pass:
        block_n = min(LOOPED_BLOCK_N, max_single_pass)
        return ForwardLaunch(block_n=block_n, block_m=1, num_warps=_warps_for(block_n), looped=True)
    block_n = _next_power_of_2(hidden)
    fill_limit, chunk = LOW_FILL_LOOPED_FWD[is_rms]
    if hidden > LOW_FILL_MIN_HIDDEN and hidden <= fill_limit * block_n:
        return ForwardLaunch(block_n=chunk, block_m=1, num_warps=_warps_for(chunk), looped=True)
    return ForwardLaunch(block_n=block_n, block_m=_rows_per_program(block_n), num_warps=_warps_for(block_n), looped=False)


@functools.lru_cache(maxsize=None)
def _backward_shape(hidden: int, is_rms: bool) -> tuple[int, int, int, bool, int]:
    max_single_pass = MAX_SINGLE_PASS_BWD_RMS if is_rms else MAX_SINGLE_PASS_BWD_LN
    if hidden > max_single_pass:
        return (LOOPED_BLOCK_N_BWD, 1, _warps_for(LOOPED_BLOCK_N_BWD, BACKWARD_WARPS_BY_BLOCK_N), True,
                UNPIPELINED_ROW_STAGES)
    block_n = _next_power_of_2(hidden)
    row_stages = PIPELINED_BWD_ROW_STAGES if block_n <= PIPELINED_BWD_MAX_BLOCK_N else UNPIPELINED_ROW_STAGES
    return block_n, _rows_per_program(block_n), _warps_for(block_n, BACKWARD_WARPS_BY_BLOCK_N), False, row_stages


def backward_launch(rows: int, hidden: int, device: torch.device, is_rms: bool) -> BackwardLaunch:
    """Launch shape for the backward kernel: a grid of row strips, a few per SM."""
    block_n, block_m, num_warps, looped, row_stages = _backward_shape(hidden, is_rms)
    max_programs = multiprocessor_count(device) * BACKWARD_PROGRAMS_PER_SM[looped]
    row_blocks = -(-rows // block_m)
    programs = max(1, min(max_programs, row_blocks))
    # Strips are whole multiples of block_m so that no program has a ragged block in its middle.
    rows_per_program = -(-row_blocks // programs) * block_m
    programs = max(1, -(-rows // rows_per_program))
    return BackwardLaunch(block_n, block_m, num_warps, looped, programs, rows_per_program, row_stages)


@functools.lru_cache(maxsize=None)
def multiprocessor_count(device: torch.device) -> int:
    """SM count of a CUDA device; for the CPU interpreter, a small stand-in that still spreads rows
    over several programs."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return INTERPRETER_PROGRAMS
