"""Launch heuristics for the normalization kernels, as data.

Every number sits in a table with a comment naming the measurement or fact behind it; the
selection functions only look rows up. docs/kernels.md holds the measurements.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
from typing import Optional

import torch


class DxOperands(enum.IntEnum):
    """Where the single-pass backward takes x and dy from for dx, after the row reductions."""

    HELD_FP32 = 0  # kept in registers as fp32
    RELOADED = 1  # read again; the first read leaves the lines in L1/L2
    HELD_NARROW = 2  # kept in registers in the input dtype, widened again


class _Cover:
    """What the forward and backward launches share: whether a launch's lanes match the problem."""

    keep_masks = False  # a launch masked even when it covers the problem exactly (BackwardLaunch's field)

    def exact_cover(self, rows: int, hidden: int) -> bool:
        """Whether the launch covers a (rows, hidden) problem with no lane left over: the looped
        chunks divide the row, or the single-pass tiles add up to it and the row blocks divide the
        rows (a backward strip holds whole row blocks). The kernel then runs without masks (its
        MASKED flag off; run 48: LayerNorm 32768x12288 forward 438.8 -> 389.6 us)."""
        if self.looped:  # one row at a time
            return hidden % self.block_n == 0
        return hidden == self.block_n + self.tail_n[0] + self.tail_n[1] and rows % self.block_m == 0

    def masked(self, rows: int, hidden: int) -> bool:
        """The kernel's MASKED flag: masks unless the launch covers the problem exactly, or where
        a table keeps them because the unmasked code was measured slower (keep_masks)."""
        return self.keep_masks or not self.exact_cover(rows, hidden)


@dataclasses.dataclass(frozen=True)
class ForwardLaunch(_Cover):
    """How the forward kernel covers a (rows, hidden) problem."""

    block_n: int  # columns held per program; >= hidden unless looped
    block_m: int  # rows per program (several rows when hidden is small)
    num_warps: int
    looped: bool  # hidden > block_n: two passes over each row in block_n chunks
    # Single pass: widths of a second and a third register tile after the first block_n columns
    # (0: none), so a row of 12288 is held as 8192 + 4096 instead of a 16384-wide tile (split_tiles).
    tail_n: tuple[int, int] = (0, 0)
    # Single pass: read w and b with x, before the row's reductions, instead of after them.
    early_affine: bool = False
    # LayerNorm: the mean and variance from one joint reduction of the row shifted by its first
    # element, instead of two dependent ones (both kernels' SHIFTED_STATS).
    shifted_stats: bool = False
    # Looped: the second pass (y) walks the row in chunks of this width instead of block_n (0:
    # block_n), so it holds fewer x, w and b values at once (READ_TWICE_FWD).
    out_block_n: int = 0
    # Looped: the second pass walks the row from its last chunk to its first (REVERSE_OUT).
    reverse_out: bool = False
    # Registers a thread the compiler may use (ptxas's .maxnreg; 0: its own choice). An SM holds
    # 65536: at 16 warps, 40 registers a thread leave room for 3 programs and 32 for 4.
    max_registers: int = 0
    # y's store policy ("": default; ".cs": streamed; "evict_first": an L2 eviction policy), so
    # y's lines leave L2 before the rows a looped pass 2 reads again (Y_CACHE).
    y_cache: str = ""


# Backward grid: programs per SM. Each program writes one fp32 partial row of dw (and db), so the
# partial buffer is programs x hidden x 4 bytes. scripts/tune_kernels.py backward_stages, H200
# 2026-11-20 (fwd+bwd % of copy, 1 / 2 / 4 per SM): the single-pass kernel does best with one
# resident program per SM (RMSNorm 16384x8192: 80 / 78 / 76; LayerNorm: 73 / 70 / 67), the looped
# kernel, whose passes leave gaps, with two (LayerNorm 32768x12288: 48 / 60 / 59).
BACKWARD_PROGRAMS_PER_SM = {False: 1, True: 2}  # looped -> programs per SM


@dataclasses.dataclass(frozen=True)
class PartialSumLaunch:
    """How the backward's fp32 partial rows of dw and db are added up, both in one launch: a
    program per ``block_n`` columns, taking the partial rows ``block_rows`` at a time."""

    block_n: int
    block_rows: int
    num_warps: int


# scripts/tune_kernels.py partial_sum, run 119 (H200; GPU us for both gradients, bf16, by CUDA-graph
# replay): 64 columns a program, 64 rows at a time, 4 warps, against partial.sum(0).to(bf16) twice:
# 132x5120 3.0 vs 10.0, 132x16384 4.5 vs 10.6, 264x28672 16.7 vs 29.2, 132x65536 20.8 vs 25.8 (128
# columns and 32 rows: 4.4, 5.1, 18.5, 19.8; 16 rows or fewer at a time: 8-40). Host time a call
# 12-14 us against 25-27 for the ATen calls (a sum and a cast a 16-bit gradient).
PARTIAL_SUM = PartialSumLaunch(block_n=64, block_rows=64, num_warps=4)


@dataclasses.dataclass(frozen=True)
class BackwardLaunch(_Cover):
    """How the backward kernel covers a (rows, hidden) problem."""

    block_n: int
    block_m: int
    num_warps: int
    looped: bool
    programs: int  # grid size; each program owns a contiguous strip of rows and one dw partial row
    rows_per_program: int
    row_stages: int  # software-pipelining depth of the row loop (looped kernel: of its inner loops)
    dx_operands: DxOperands  # single pass: where dx takes x and dy from
    tail_n: tuple[int, int] = (0, 0)  # single pass: as ForwardLaunch.tail_n
    programs_per_sm: int = 1  # the grid's limit: at most this many programs per SM
    keep_masks: bool = False  # masked even when the launch covers the problem exactly
    reload_weight: bool = False  # single pass: each row reads w again instead of holding it in registers
    joint_sums: bool = True  # single pass, LayerNorm: a row's two sums reduced in one tl.reduce (RowLoop)
    # single pass, 16-bit rows: dx as two fused multiply-adds an element, from x (or held xhat) and
    # per-row coefficients, and LayerNorm's xhat as one (the kernel's AFFINE_DX; RowLoop)
    affine_dx: bool = False


@dataclasses.dataclass(frozen=True)
class RowLoop:
    """How the single-pass backward walks its strip of rows: a row of BACKWARD_SINGLE_PASS or
    SPLIT_TILE_BWD."""

    stages: int  # software-pipelining depth: the next rows' x and dy are staged in shared memory
    dx_operands: DxOperands  # where dx takes x and dy from after the row reductions
    reload_weight: bool = False  # read w' again for every row instead of holding it: frees registers
    keep_masks: bool = False  # masked even where the launch covers the problem exactly
    equal_tiles: int = 1  # a power-of-two row held as this many equal register tiles (1 or 2)
    # LayerNorm: reduce a row's sums of g * xhat and g in one tl.reduce, so they share one exchange
    # between warps, instead of one tl.sum each (more values live at once: may spill where the
    # registers are already full)
    joint_sums: bool = True
    # 16-bit rows: dx = rstd * g - (A * x + B) from per-row A = c1 * rstd^2, B = c2 * rstd -
    # A * mean (no xhat rebuilt where x is read again or held narrow; two fused multiply-adds
    # from held xhat), and LayerNorm's xhat = x * rstd - mean * rstd: fewer instructions, which
    # bound LayerNorm's backward. The cancellation in A * x + B errs by about eps_fp32 * |mean| /
    # std of dx, the order the saved mean's own rounding already puts into x - mean; 32-bit rows
    # keep the exact form all the same (the launch passes AFFINE_DX for 16-bit rows only), as
    # their statistics do (SHIFTED_STATS_FWD).
    affine_dx: bool = False
    # programs an SM (0: BACKWARD_PROGRAMS_PER_SM's single-pass entry, read when the launch is
    # built): more than one hides the row loop's latency with another program's rows where a narrow
    # launch leaves registers and shared memory for two
    programs_per_sm: int = 0

    def __post_init__(self):
        if self.equal_tiles not in (1, 2):  # the kernel holds at most three tiles; tables use one or two
            raise ValueError(f"RowLoop.equal_tiles must be 1 or 2, got {self.equal_tiles!r}")
        if self.programs_per_sm < 0:
            raise ValueError(f"RowLoop.programs_per_sm must be 0 (the table's) or positive, got {self.programs_per_sm!r}")


# Widest row kept whole in registers, forward. Every wider row loops (WIDE_ROW_FWD): the single
# pass lost to the looped kernel at every width measured past 16384 columns, by up to 2.2x at 65536
# (forward_ab, run 75, us: RMSNorm 4096x28672 132.5 vs 127.0 (run 48), 4096x32768 146.7 vs 134.7,
# 2048x65536 312.4 vs 149.6; LayerNorm 4096x32768 172.5 vs 155.2, 2048x65536 384.7 vs 175.5).
MAX_SINGLE_PASS_FWD = 16384
# Widest row the backward keeps whole in registers, by op. It holds x, dy, w and the dw sum per
# column, LayerNorm also the db sum. At a 16384-column tile that only fits when x and dy are not
# held in fp32 across the row reductions (BACKWARD_SINGLE_PASS below). scripts/tune_kernels.py
# backward_operands, H200 2026-11-21 (runs 26-27, fwd+bwd % of copy): single-pass at 16384 beat the
# looped kernel for RMSNorm (32768x12288: 84 vs 69%, 131072x16384: 93 vs 76%) and for LayerNorm
# (66 vs 60%, 79 vs 65%). Beyond 16384 only the looped kernel has been measured.
# LayerNorm with 32-bit inputs stays at 8192: reading x and dy again at 2 stages stages four
# 64 KB fp32 tiles in shared memory, past the H200's 227 KB (OutOfResources, run 29).
# (is_rms, 16-bit inputs) -> widest single-pass tile
MAX_SINGLE_PASS_BWD = {(True, True): 16384, (True, False): 16384, (False, True): 16384, (False, False): 8192}
# Chunk width and warps of the looped forward past MAX_SINGLE_PASS_FWD: op (is_rms) -> ((largest
# hidden, chunk, warps), ...). Wide rows want large chunks at many warps: each program then keeps
# more of its row in flight, and fewer programs fit an SM, so fewer rows are read at once and pass 2
# finds its row in L2 (a 2048x131072 bf16 row is 256 KB; the H200's L2 is 50 MB).
# scripts/tune_kernels.py forward_ab, H200 (two alternating readings, us):
# - RMSNorm: 4096 chunks at 16 warps up to 28672 (run 48: 16384x18432 292.2, 4096x28672 127.0;
#   run 75: 127.0-127.5 vs 16384 at 16 warps 130.1-130.6); 16384 at 16 warps at 32768 (134.7 vs
#   32768 at 32: 154.1); 32768 at 32 warps past it: 2048x65536 149.6-150.1 (16384 at 16: 153.6;
#   8192 at 16: 192.9), 2048x98304 221.6 (8192 at 16: 299.1-299.7), 2048x131072 303.0 (397.3),
#   1024x262144 368.9 (402.9).
# - LayerNorm: 2048 chunks at 8 warps up to 18432 (run 48: 16384x18432 316.7); 4096 at 16 up to
#   32768 (4096x28672 130.4; run 75: 4096x32768 155.2 vs 8192 at 32: 222.6, 2048 at 16: 189.8);
#   8192 at 16 at 65536 (175.5 vs 16384 at 32: 187.2, 4096 at 16: 206.8); 16384 at 32 past it:
#   2048x98304 264.4 vs 292.4 (8192 at 16), 2048x131072 359.1 vs 400.6, 1024x262144 399.5 vs 411.3.
WIDE_ROW_FWD = {
    True: ((28672, 4096, 16), (32768, 16384, 16), (sys.maxsize, 32768, 32)),
    False: ((18432, 2048, 8), (32768, 4096, 16), (65536, 8192, 16), (sys.maxsize, 16384, 32)),
}
# A row that fills little of its power-of-two register tile leaves those registers idle and fewer
# rows in flight per SM; the looped kernel then wins. forward_looped (2026-11-20), % of copy,
# single-pass vs looped: RMSNorm 12288 (75% fill): 85 vs 93 (8192 chunks); 18432 (56%): 64 vs 87.
# Chunks and warps from forward_sweep run 32 (looped kernel with its cache hints, us), with
# smaller chunks at more warps as inductor's autotuner picks for these rows:
# - RMSNorm, 4096 chunks at 16 warps: 32768x12288 378.7 (8192 at 8: 398.8; single 413.7),
#   16384x18432 292.2 (303.0; single 408.5).
# - LayerNorm, 2048 chunks: 32768x12288 445.6 at 8 warps (single 464.5; 16 warps 501.1),
#   16384x18432 351.9 at 16 warps (8 warps 381.7; 4096 at 8: 367.6).
# - Run 48 (forward_sweep, the kernels unmasked where the chunks divide the row), us: the limit
#   rises to 88% fill (14336, 28672; 7168 is below LOW_FILL_MIN_HIDDEN). RMSNorm 32768x14336 8192
#   chunks at 8 warps 442.3 (single 16384: 458.0; 4096 at 16: 462.1), 4096x28672 4096 at 16 127.0
#   (single 32768: 132.5), 16384x18432 292.2 (unchanged). LayerNorm 2048 chunks at 8 warps now
#   also past 12288: 32768x14336 474.8 (single 507.1; split tiles 480.0), 16384x18432 316.7 (16
#   warps 346.9); 4096x28672 4096 at 16 warps 130.4 (single 162.9; 2048 at 8: 169.3). LayerNorm
#   at 12288 takes split tiles (SPLIT_TILE_FWD, checked first).
# op (is_rms) -> (loop when hidden / next_pow2(hidden) is at most this, ((largest hidden, chunk, warps), ...))
# Past MAX_SINGLE_PASS_FWD every row loops (WIDE_ROW_FWD), whatever its fill.
LOW_FILL_LOOPED_FWD = {
    True: (0.875, ((12288, 4096, 16), (MAX_SINGLE_PASS_FWD, 8192, 8))),
    False: (0.875, ((MAX_SINGLE_PASS_FWD, 2048, 8),)),
}
# Below this width a row's tile is small enough that idle lanes cost little (5120 and 7168 were
# within 1 point of each other single-pass vs looped for RMSNorm).
LOW_FILL_MIN_HIDDEN = 8192
# Fused add + RMSNorm loops from 8192 columns whatever the fill: pass 2 re-reads residual_out from
# L2, and the looped kernel beat the single pass at every width measured (run 30, us):
# 4096x8192 69.5 vs 70.6, 16384x8192 256.9 vs 264.8 (4096 chunks, 8 warps); 32768x12288 761.3 vs
# 782.4, 131072x16384 3993.1 vs 4138.1, 16384x18432 574.3 vs 595.4 (8192 chunks, 16 warps).
# Below 8192 columns it was not measured. Run 61 (forward_ab, two alternating readings): one
# 8192 chunk at 16 warps beat 4096 chunks at 8 at 8192 columns, 4096x8192 67.9-68.3 vs 69.8-70.2
# us, 16384x8192 251.6-252.1 vs 255.8-256.5 (98 -> 100% of copy). Runs 74-75, wide rows: 8192 at
# 16 warps up to 65536 (4096x32768 265.1-265.7 vs 16384 at 16: 296.4-297.3; 2048x65536 304.9 vs
# 310.5), 16384 at 32 past it (2048x131072 609.9-610.2 vs 651.7-652.4; 16384 at 16: 677.0).
# (largest hidden, chunk, warps)
FUSED_LOOPED_MIN_HIDDEN = 8192
FUSED_LOOPED_FWD = ((65536, 8192, 16), (sys.maxsize, 16384, 32))
# Rows read twice: the looped kernel on one chunk (statistics, then the row again from L2 for y,
# evict_last / evict_first) instead of holding it in registers through the reductions, with the
# second pass in out_chunk columns at a time so it holds fewer x, w and b values.
# - RMSNorm at 8192: torch.compile's kernel for these rows does the same (run 59: 129.1 vs our 133.8
#   us at XL). forward_sweep run 60 and forward_ab run 61, us: 16384x8192 128.4-129.0 (98%) vs
#   133.7-134.8 (94%) single pass at 16 warps, 8192x8192 67.9-68.2 vs 69.8-70.8, 4096x8192 a tie
#   (36.6-37.5 for both). Widths between 4096 and 8192 were not measured.
# - At 16384 (forward_ab runs 90-91, bf16, three alternating readings each, us): RMSNorm at 16
#   warps, second pass in 4096 columns: 131072x16384 1972.3-1974.7 vs 2004.4-2016.5 single pass
#   (100 -> 102% of copy; 8192 columns: 1977.3-1983.5; 8 warps 1983.5-2050.1; 32 warps 2997.5),
#   32768x16384 499.2-499.6 vs 509.9-512.8. LayerNorm, shifted statistics (SHIFTED_STATS_FWD),
#   second pass in 8192 columns: 131072x16384 1982.0-1992.0 vs 2059.1-2065.1 (98 -> 101%; one
#   reading each 2184.7 / 2299.8; 4096 columns 2036.4-2045.4; 8 warps 2094.0-2102.9, 32 warps
#   2109.7-2171.4), 32768x16384 503.6-560.1 vs 524.4-540.2. The one-chunk LayerNorm compiles no
#   chunk loop (the kernel's ONE_CHUNK): 57-60 -> 38 registers a thread at 8192 columns, 16 warps.
# - Lost: LayerNorm at 8192 (run 89: 4096x8192 39.9-43.1 vs 38.5-39.0; 16384x8192 133.0-148.7 vs
#   133.3-134.8; run 90, second pass in 2048-4096 columns at 8-16 warps, 32 registers: 38.5-42.2 vs
#   38.0-38.8, 135.5-143.9 vs 133.1-134.9), RMSNorm at 8192 with a narrower second pass (ties),
#   both ops at 12288 and 14336 on a 16384 chunk (e.g. RMSNorm 32768x12288 414.2-414.8 vs 376.8-
#   377.2), fused add at 16384 within 0.5% (3970.6-3972.8 vs 3989.3-3990.7), so it keeps its launch.
# op (is_rms) -> ((smallest hidden, largest hidden, chunk, warps, out_chunk), ...)
READ_TWICE_FWD = {
    True: ((8192, 8192, 8192, 16, 8192), (16384, 16384, 16384, 16, 4096)),
    False: ((16384, 16384, 16384, 16, 8192),),
}
# Few rows (decode): the grid is a fraction of one wave, so a call lasts about as long as one
# program's chain of memory latencies, and reading w and b beside x, before the reductions, takes
# one DRAM round trip out of it (ForwardLaunch.early_affine). RMSNorm at 8192 columns then holds
# its row instead of reading it twice. With many rows the early read costs occupancy instead.
# scripts/tune_kernels.py forward_ab, H200, five alternating readings each, medians, us (CUDA
# events tick in ~0.5 us steps at these lengths, so single readings jump by 0.5 us):
# - 1 and 32 rows, the launch before -> early (runs 78-80): RMSNorm 1x4096 4.8 -> 4.5 and 5.5 ->
#   5.2, 32x4096 5.4 -> 4.7 and 5.6 -> 5.3, 1x8192 5.0 -> 4.6 and 5.1 -> 4.9 (the looped read-twice
#   launch -> the single pass at 16 warps), 32x8192 5.6 -> 4.6 and 6.1 -> 5.7, 32x2048 5.3 -> 4.6,
#   1x16384 6.4 -> 5.9, 32x16384 6.9 -> 5.9, 1x5120 6.5 -> 5.5, 32x5120 7.1 -> 5.4, 1x7168 5.4 ->
#   4.8; LayerNorm 1x4096 5.1 -> 4.7 and 5.2 -> 5.3, 32x4096 5.7 -> 5.5 and 5.8 -> 5.7, 1x8192 6.8 ->
#   5.6 and 6.9 -> 5.7, 32x8192 6.8 -> 6.0 and 6.8 -> 6.0, 1x2048 5.0 -> 4.6 and 5.1 -> 4.7, 32x2048
#   5.6 -> 5.4, 1x16384 7.0 -> 6.5, 32x16384 6.9 -> 6.6, 1x5120 6.9 -> 5.2, 32x5120 7.6 -> 6.2,
#   1x7168 8.4 -> 5.8, 32x7168 8.4 -> 6.7, 1x12288 7.3 -> 5.9, 32x12288 8.1 -> 6.3. Ties or losses
#   within one event tick: RMSNorm 1x2048 4.6 -> 5.0 and 4.8 -> 5.1, 32x7168 6.0 -> 6.1.
# - 64-256 rows were mixed across runs: 256x4096 RMSNorm 6.5 -> 5.9 (run 79) but 6.1 -> 6.5 (run
#   80), LayerNorm 7.0 -> 6.4 but 6.5 -> 6.9; 200x2048 RMSNorm 5.8 -> 5.1, LayerNorm 5.6 -> 5.9;
#   LayerNorm 256x16384 lost clearly (10.2 -> 12.6). From 1024 rows the early read loses (RMSNorm
#   1024x4096 9.2 -> 9.5, 2048x4096 13.8 -> 14.2; LayerNorm 2048x4096 14.2 -> 14.5).
# - Fused add + RMSNorm was mixed at one row (1x4096 4.9 -> 5.2 in run 78, 5.4 -> 5.2 in run 79;
#   1x8192 5.2 -> 5.6), so the fused ops keep their launches.
# Narrower rows than 2048 were not measured; rows past MAX_SINGLE_PASS_FWD loop.
EARLY_AFFINE_MAX_ROWS = 32
EARLY_AFFINE_MIN_HIDDEN = 2048
# LayerNorm's statistics about the row's first element in one joint reduction (shifted_stats; the
# kernels' SHIFTED_STATS) instead of two dependent reductions, where it measured faster: unfused,
# 16-bit rows (launch_forward keeps 32-bit rows on two reductions for accuracy), widths
# (smallest, largest). scripts/tune_kernels.py forward_ab, H200, bf16, three alternating readings
# each, us (runs 86-87):
# - 131072x16384 (single 16384 at 8 warps): 2093.5-2095.7 -> 2058.5-2063.3 and 2108.9-2113.7 ->
#   2073.1-2074.3 (96 -> 98% of copy; same 127 registers a thread, offline ptxas).
# - 32768x14336 (looped 2048 at 8 warps): 474.7-477.5 -> 465.1-465.8 (one reading 533.2); run 88,
#   five alternating readings: 472.4-472.8 -> 463.7-464.2 (one reading each 481.6 / 499.1).
# - Lost where it costs occupancy or changes nothing: 4096x8192 single at 8 warps 38.8-39.4 ->
#   41.7-41.8 (63 -> 76 registers: 4 -> 3 programs an SM), 16384x8192 133.6-134.0 -> 140.3-140.4,
#   2048x4096 14.3 -> 14.8-15.4, 8192x7168 63.3-63.6 -> 70.7-71.2, 32768x12288 (8192 + 4096)
#   387.0-387.8 -> 389.5-389.9, 16384x18432 (looped) 317.9-318.2 -> 320.2-329.2; 8192x5120 and decode
#   rows within 0.5 us either way. Read twice with the shift (run 87: the looped kernel on one chunk,
#   before ONE_CHUNK) lost at every width, 4096x8192 49.4-50.9 (16 or 8 warps), 16384x8192
#   171.3-177.9; READ_TWICE_FWD has the later runs, which took it at 16384.
SHIFTED_STATS_FWD = (14336, 16384)
# Looped forward, pass 2 from the row's last chunk to its first (ForwardLaunch.reverse_out) from
# this width on, by (is_rms, fused add); sys.maxsize: never. Where the rows in flight outgrow L2
# the chunks pass 1 touched last are the likeliest still cached. scripts/tune_kernels.py
# forward_ab, H200, bf16, three alternating readings, us (table's launch vs reversed):
# - fused add, both ops, from 131072 (runs 108-109): RMSNorm 2048x131072 610.9-611.7 vs
#   592.7-593.2, 1024x196608 497.7-499.3 vs 471.7-471.9, 1024x262144 656.3-656.7 vs 630.2-630.6;
#   LayerNorm 643.2-643.4 vs 635.0-635.6, 514.1-515.4 vs 496.2-496.9, 667.1-667.4 vs 650.3-650.7.
#   Below it mixed: 2048x98304 lost (RMSNorm 433.4-434.4 vs 436.5-437.2, LayerNorm 471.7-472.3 vs
#   479.2-479.9), 2048x65536 won (305.6-305.9 vs 297.1-297.5; 308.5-309.0 vs 300.5-301.2),
#   28672-32768 lost by 0.5-2%, 8192-18432 tied (XL/XXL/XXXL: 252.0-252.4 vs 252.1-252.4,
#   760.7-762.3 vs 766.6-767.0, 3995.6-3998.5 vs 3997.1-3998.3).
# - RMSNorm from 196608 (runs 108 and 109, one process each): 1024x196608 267.2-268.2 vs
#   264.0-264.6 and 270.7-271.8 vs 266.8-267.4, 1024x262144 369.1-369.4 vs 364.1-364.6 and
#   373.0-373.6 vs 368.2-369.5; it lost at 2048x131072 (303.3-303.6 vs 318.2-318.8), 2048x98304
#   (222.0-223.0 vs 231.5-232.0), 4096x32768 and 4096x28672 (by 1-3%), tied at 65536.
# - LayerNorm: never; it lost at 65536-196608 by 2-6% (e.g. 2048x131072 357.7-359.4 vs 379.4-
#   379.8) and tied at 262144 (run 108).
REVERSE_OUT_FROM = {(True, True): 131072, (False, True): 131072, (True, False): 196608, (False, False): sys.maxsize}
# Looped forward, y stored streamed (ForwardLaunch.y_cache ".cs") from this width on, by (is_rms,
# fused add); sys.maxsize: never. Where pass 2's rows outgrow L2, y's lines are what push them out:
# Nsight Compute (run 118, RMSNorm) read 632 MB from DRAM for 1024x196608's 403 MB input (57% of
# pass 2 missed L2; 320 for 268 MB at 1024x131072, none at 2048x98304), 596 MB with y streamed
# (263.4 -> 250.6 us of kernel). scripts/tune_kernels.py forward_ab, H200, bf16, three alternating
# readings in one process, us (table's launch vs y streamed; run 118):
# - RMSNorm, from 65536: 2048x65536 148.3-149.7 vs 142.4-143.0, 2048x98304 219.8-220.9 vs
#   218.1-218.7, 1024x131072 157.0-157.6 vs 152.8-153.0, 1024x196608 264.2-265.1 vs 257.2-257.3
#   (evict-first instead of streamed: 257.1-257.4), 1024x262144 362.6-364.3 vs 355.9-356.8.
#   Narrower rows are left alone: 4096x28672 gained (126.7-127.5 vs 123.9-124.5) but 16384x18432,
#   on the same 4096-column chunks, lost (293.1-293.2 vs 311.7-312.7); 8192 columns lost (4096x8192
#   36.6-37.3 vs 37.5), 12288 and 16384 tied.
# - LayerNorm, from 196608: 1024x196608 288.4-290.0 vs 283.5-283.9. Narrower it was mixed:
#   16384x18432 317.5-318.4 vs 309.2-309.7 (one 328.2), 2048x65536 174.6-174.9 vs 172.6-173.5,
#   but 1024x131072 181.2-181.6 vs 182.2-182.8 and 4096x28672 a tie; the single pass (no row read
#   again) lost at 8192 and 12288 by 0.5-1%.
# - fused add: never. 1024x196608 471.8-472.6 vs 469.6-470.3, 4096x8192 67.8-68.3 vs 68.6,
#   16384x8192 251.6-251.9 vs 253.0-253.5.
STREAMED_Y_FROM = {(True, True): sys.maxsize, (False, True): sys.maxsize, (True, False): 65536, (False, False): 196608}
# Split tiles (split_tiles): a row held as up to three power-of-two register tiles side by side
# instead of one padded power-of-two tile, where the padded tile's idle lanes cost. Narrowest tile:
# 1024 columns (one value a thread at 32 warps).
SPLIT_MIN_TILE = 1024
# Forward: op (is_rms) -> ((padded tile, largest fill hidden / padded tile, warps), ...).
# scripts/tune_kernels.py split_rows, H200 2026-11-21 (run 41, us, bf16):
# - 8192x5120 (fill 0.625), 4096 + 1024 at 4 warps: RMSNorm 46.3 vs 49.6 (single 8192, 16 warps),
#   LayerNorm 47.2 vs 57.0 (8 warps); fused add ties (85.6 vs 85.8). 8 warps and more lose.
# - 32768x12288 (0.75), LayerNorm 8192 + 4096 at 8 warps: 438.9 vs 445.5 (looped 2048 chunks);
#   RMSNorm keeps its looped kernel (378.3 vs 392.0 split).
# - Where split tiles lost (run 41): 7168 (0.875; RMS 63.0 vs 62.7, LN 76.7 vs 66.7), 14336
#   (0.875; RMS 540.7 vs 458.0, LN 629.2 vs 498.9), 18432 and 28672 (the looped or the padded
#   single pass won, e.g. RMS 16384x18432 330.1 vs 292.2).
# - Run 48, with the kernels unmasked where the tiles add up to the row: LayerNorm 32768x12288
#   389.6 us (was 438.8 masked; looped 2048 at 8 warps: 403.4), LayerNorm 8192x7168 at 4 warps 63.0
#   vs 66.3 (single 8192 at 8; 8 warps: 95.4), hence its 0.875 limit at 8192. RMSNorm 7168 keeps
#   the padded tile (62.1 vs 63.0); 14336 and wider loop (LOW_FILL_LOOPED_FWD).
SPLIT_TILE_FWD = {
    True: ((8192, 0.625, 4),),
    False: ((8192, 0.875, 4), (16384, 0.75, 8)),
}
# Backward (16-bit inputs): op -> ((padded tile, largest fill, warps, RowLoop), ...).
# split_rows, fwd+bwd us (bf16), runs 41, 42 and 44:
# - 32768x12288, 8192 + 4096 at 16 warps, 3 stages, x and dy read again: RMSNorm 989.9 vs 1095.4
#   (86 -> 95% of copy; the padded tile's best was held narrow at 1 stage), LayerNorm 1311.0 vs
#   1398.4 (67 -> 72%). 4096 x 3 tiles: RMS 985.6, LN 1424.2. 4 stages: out of shared memory.
# - 32768x14336 (0.875), 8192 + 4096 + 2048: RMSNorm 1167.3 vs 1252.2; LayerNorm lost (1614.0
#   vs 1535.6), hence its lower fill limit.
# - 8192x5120 and 8192x7168 (8192 tile): lost for both ops at 8-16 warps, 2-4 stages (RMS 147.0 vs
#   145.8, 167.8 vs 170.4 tie; LN 180.4 vs 160.6, 219.9 vs 183.3).
# - 16384x18432 (past the padded tile's single-pass limit), 16384 + 2048 at 16 warps, 1 stage,
#   read again: RMSNorm 938.7 vs 1110.7 (the looped kernel; 64 -> 75%); LayerNorm lost (best
#   1366.2 vs 1221.5). 4096x28672 (16384 + 8192 + 4096): RMS 449.8 vs 460.8 (2%, not taken), LN
#   lost (1227.3 vs 518.8).
# - Run 49 (split_rows --parts backward with the kernels unmasked where the tiles add up to the
#   row), fwd+bwd us: RMSNorm 8192x5120, 4096 + 1024 at 8 warps, 4 stages, held in fp32: 126.3 vs
#   135.8 (72 -> 78%); RMSNorm 16384x18432 at 2 stages: 883.2 vs 932.1 at 1 (76 -> 80%); RMSNorm
#   4096x28672, 16384 + 8192 + 4096 at 16 warps, 1 stage: 422.7 vs 460.4 (looped; 60 -> 65%);
#   LayerNorm 32768x14336, 8192 + 4096 + 2048 at 16 warps, 3 stages: 1390.8 vs 1540.6 (padded
#   16384; 71 -> 79%), hence its 0.875 limit. Still lost: LayerNorm 18432 (1223.8 vs looped
#   1196.2) and 28672 (990.7 vs looped 517.2).
# - Run 51: LayerNorm 8192x5120, 4096 + 1024 at 4 warps, 4 stages, held in fp32: 142.1 (69%) vs
#   147.3-148.8 for the padded 8192 tile at 8-16 warps, 2-4 stages (8 warps lost in run 49: 162.6).
# - Runs 54-56 (reload_weight, backward_ab: w' read again per row, two alternating readings):
#   RMSNorm 16384x18432 at 3 stages held narrow: 753.1-759.4 vs 871.6-895.1 us (80 -> 94%; fp16
#   the same); RMSNorm 4096x28672 at 1 stage, read again: 399.5 vs 418.7-419.0 (fp16 376.0 vs
#   424.2); LayerNorm 16384x18432 at 2 stages, read again: 1059.2-1083.4 vs 1183.9-1226.8 for the
#   looped kernel (60 -> 66%; 4096x18432 301.2 vs 347.8; fp16 1105.0 vs 1171.3); LayerNorm
#   32768x12288 held in fp32 at 3 stages: 1032.0-1066.7 vs 1069.2-1117.2 (three runs, each
#   ahead). Reading w again lost or tied at 5120, 14336 and RMSNorm 12288 (e.g. LayerNorm 14336
#   1507.7 vs 1350.8; RMSNorm 12288 988.8 vs 987.9).
# - Runs 68-69: LayerNorm's rows here reduce their two row sums jointly (RowLoop.joint_sums;
#   numbers at BACKWARD_SINGLE_PASS): 12288 91 -> 94%, 14336 81 -> 85%, 18432 63 -> 64-65% of copy.
#   5120 (4 warps) keeps one tl.sum each, the code it had: joint sums moved it within its spread,
#   slower across packages (run 69: 143.0-161.0 us against 141.2-141.6 in 7 of 8 readings), faster
#   or tied alternating in one process (runs 70-71: 135.8-146.7 against 140.6-143.6).
# - Runs 103-104 (RowLoop.affine_dx, backward_ab, three alternating readings, us): LayerNorm
#   32768x14336 bf16 1276.2-1285.0 -> 1227.5-1241.9 (86 -> 89% of copy), fp16 1316.7-1323.7 ->
#   1277.6-1277.9 in two readings (1328.2 in the third); 16384x18432 bf16 1094.4-1096.6 ->
#   1023.0-1027.1 (65 -> 69%), fp16 1005.5-1010.2 -> 991.3-993.1 in two (1123.4 in the third).
#   Not taken: 12288 (1009.1-1012.9 -> 1007.5-1007.8, bf16 only), 5120 (run 104: 142.0-150.2 ->
#   147.3-154.9, each reading behind its pair), RMSNorm (ties: 4096x28672 398.6-399.0 vs 397.4-398.0).
# - Run 119 (RowLoop.programs_per_sm, backward_ab, bf16, five alternating readings, us): LayerNorm's
#   4-warp 5120 launch leaves an SM's registers (255 a thread) and shared memory (61 KB) for two
#   programs: 16384x5120 239.7-241.4 -> 233.6-235.2 (82 -> 84% of copy), 32768x5120 456.6-458.1 ->
#   440.1-441.4 (86 -> 89%), 8192x5120 within its spread (135.1-145.8 vs 132.5-143.2). RMSNorm's
#   8-warp launch lost at two (8192x5120 126.3-126.4 -> 131.3-131.7; 32768x5120 434.0-434.7 ->
#   442.5-442.9), as did RMSNorm 16384x8192 at 8 warps held narrow (339.6-340.0 -> 353.4-354.1).
#   fp16 and the fused LayerNorm (whose residual gradient is staged too) take the row unmeasured.
# 32-bit rows keep the padded tile: 3 stages of two 12288-column fp32 tiles pass the 227 KB of
# shared memory.
SPLIT_TILE_BWD = {
    True: ((8192, 0.625, 8, RowLoop(4, DxOperands.HELD_FP32)),
           (16384, 0.875, 16, RowLoop(3, DxOperands.RELOADED)),
           (32768, 0.5625, 16, RowLoop(3, DxOperands.HELD_NARROW, reload_weight=True)),
           (32768, 0.875, 16, RowLoop(1, DxOperands.RELOADED, reload_weight=True))),
    False: ((8192, 0.625, 4, RowLoop(4, DxOperands.HELD_FP32, joint_sums=False, programs_per_sm=2)),
            (16384, 0.75, 16, RowLoop(3, DxOperands.HELD_FP32, reload_weight=True)),
            (16384, 0.875, 16, RowLoop(3, DxOperands.RELOADED, affine_dx=True)),
            (32768, 0.5625, 16, RowLoop(2, DxOperands.RELOADED, reload_weight=True, affine_dx=True))),
}

# Chunk width of the looped backward: same sweep, 4096-column chunks at 8 warps beat 8192 at 16
# warps for every wide shape (LayerNorm 16384: 65% vs 63%; RMSNorm 16384: 67% vs 64%).
LOOPED_BLOCK_N_BWD = 4096

# Forward warps by op: (largest block_n, num_warps). scripts/tune_kernels.py forward_sweep, H200
# 2026-11-21 (run 28, us, every launch forced; fused add follows RMSNorm and was flat within 1%
# across 4-16 warps at every width):
# - 4096 columns (2048x4096): 8 warps best for both (RMS 13.9 vs 14.2-15.3, LN 14.8 vs 15.4-16.1).
# - 8192: RMSNorm 16 (16384x8192: 134.1 vs 135.6 at 8, 168.7 at 32); LayerNorm 8 (135.1 vs 147.7
#   at 16; 4096x8192 40.3 vs 42.8; 8192x7168 66.5 vs 75.0).
# - 16384: 8 for both (RMS 131072x16384: 2018.8 vs 2074.3 at 16, 32768x14336: 457.4 vs 477.3;
#   LN 2116.5 vs 2169.6, 499.8 vs 509.3).
# - 32768: RMSNorm 16 (4096x28672: 131.7 vs 137.7 at 32); LayerNorm 32 (163.6 vs 165.9 at 16).
# - up to 1024 and 65536: Liger-Kernel's public calculate_settings steps, not swept here.
FORWARD_WARPS_BY_BLOCK_N = {
    True: ((1024, 4), (4096, 8), (8192, 16), (16384, 8), (32768, 16), (65536, 32)),  # RMSNorm
    False: ((1024, 4), (4096, 8), (8192, 8), (16384, 8), (32768, 32), (65536, 32)),  # LayerNorm
}

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

# The looped backward by row width: ((largest hidden, chunk, warps, programs per SM), ...). Rows of
# 32768 columns and more take 8192-column chunks at 32 warps, one program per SM: fewer rows in
# flight, so pass B finds more of x and dy in L2. backward_ab, run 75, fwd+bwd us (two readings,
# against 4096 at 8 warps, two per SM): RMSNorm 4096x32768 499.0 vs 514.6-515.0, 2048x65536 567.8-
# 567.9 vs 603.8-604.0, 2048x131072 1088.4-1088.9 vs 1146.4-1148.5; LayerNorm 4096x32768 548.2 vs
# 571.3-572.0, 2048x65536 686.7-686.9 vs 729.9-730.0, 2048x131072 1139.8-1140.0 vs 1234.8-1236.0.
# 8192 at 16 warps one per SM came second (505.6, 576.0, 1108.8; 553.8, 697.0, 1168.3); one
# program per SM at 4096 chunks lost (e.g. 619.8). LayerNorm 4096x28672 kept the first row:
# 489.3-489.8 vs 501.5-501.7 (8192 at 16, one per SM).
LOOPED_BWD = (
    (28672, LOOPED_BLOCK_N_BWD, 8, BACKWARD_PROGRAMS_PER_SM[True]),
    (sys.maxsize, 8192, 32, 1),
)

# The single-pass backward's row loop by op and tile width: (largest block_n, row-loop stages,
# where dx takes x and dy from). Stages software-pipeline the loop (tl.range num_stages: the next
# rows' x and dy are staged through shared memory while a row is reduced).
# scripts/tune_kernels.py backward_pipeline / backward_operands, H200, fwd+bwd % of copy, one
# program per SM:
# - up to 8192 columns: 3 stages with x and dy held in fp32 lift 16384x8192 from 78 to 89-90%
#   (RMSNorm) and from 65-72 to 84% (LayerNorm) (runs 19-20, 26-27); 2 stages lose (76%, 68%),
#   4 match 3; reading x and dy again or holding them narrow tie or lose there (RMS 90 / 90%, LN
#   82 / 83%, run 26).
# - 16384 columns (runs 26-27): held in fp32, x, dy, w and the sums spill at any stage count (RMS
#   32768x12288 67-70%, 131072x16384 69-77%; LN 7-38%). RMSNorm: held narrow, 1 stage, 84 / 93%
#   (2-3 stages spill again: 64-71%); LayerNorm: read again, 2 stages, 66 / 79% (held narrow
#   spills: 46-68%; read again at 3 stages is out of shared memory). All measured in bf16; held
#   narrow only saves registers for 16-bit inputs, and its bit-level widening is bf16's (fp16 and
#   fp32 rows take plain conversions, where the compiler may keep fp32 copies as before).
# - keep_masks keeps the masks where the tile covers the row exactly. LayerNorm at 16384, read
#   again at 2 stages, spilled more without them (20 vs 2 values a thread) and lost: 131072x16384
#   7292.9 vs 6356.6 us (69 vs 79% of copy), 32768x16384 1865.4 vs 1616.1 (runs 48-49, `masks`);
#   no other launch of this table lost without masks (unmasked: 3 stages held narrow 6518.1 us,
#   1 stage read again 6997.7). RMSNorm at 16384 gained (131072x16384 5372.1 -> 5278.3). No row
#   keeps them since run 68 (fp16 LayerNorm's launch stopped spilling unmasked, below).
# - Runs 54-56 (reload_weight, backward_ab), 16-bit rows at 16384 with w' read again per row,
#   two alternating readings, us: RMSNorm held narrow at 3 stages 5173.9-5177.1 vs 5274.8-5281.6
#   (131072x16384, 95 -> 97%), 1316.3-1319.5 vs 1342.2-1343.9 (32768x16384); fp16 5178.7-5189.5
#   vs 5777.8-5780.0 (its narrow hold spilled). LayerNorm as two 8192 tiles, held narrow at 3
#   stages: 5967.3-6013.3 vs 6312.4 (80 -> 84%; one 16384 tile read again at 1-2 stages 6270.2-
#   6329.0; two tiles at 1-2 stages read again 6536.5-7664.4). Without w read again (runs 41-42)
#   two tiles had lost (6700.8). 32-bit rows keep their launches (three stages of fp32 tiles do
#   not fit shared memory).
# - Run 57: fp16 LayerNorm lost on the two tiles held narrow (6704.1-6712.6 vs 6267.6-6277.6 us;
#   24 values a thread spilled: fp16 widens by plain conversion, which the compiler merges with the
#   first and holds), so fp16 keeps the single tile read again; fp16 RMSNorm took the bf16 row
#   (5171.8-5173.3 vs 5791.0-5803.4).
# - Run 68 (RowLoop.joint_sums: LayerNorm's row sums of g * xhat and g in one tl.reduce, sharing
#   the exchange between warps; backward_ab, fwd+bwd us, the package before and after alternating
#   in three processes a side): joint sums gain wherever they add no spill: 16384x8192 361.3-363.2
#   -> 359.2-360.1; 32768x12288 1035.2-1039.4 -> 1003.9-1008.9 (91 -> 94% of copy); 32768x14336
#   1351.5-1355.4 -> 1286.9-1295.4 (81 -> 85%); 16384x18432 1109.4-1121.2 -> 1091.6-1096.6; fp16
#   131072x16384 (masked) 6234.4-6269.5 -> 6148.9-6175.1. fp16's tile no longer spills unmasked
#   (0 bytes a thread; 124 before, offline ptxas) and the masks went: 6108.1-6134.1. bf16 at
#   16384 (two 8192 tiles held narrow) spills 144 bytes a thread with joint sums against 32
#   without (offline ptxas), and keeps one tl.sum each: 5808.6-5830.7 us. Variants not kept, with
#   the two tiles' lanes added before the reduction: joint 7356.8-7372.1, separate 6021.0-6031.2;
#   two tiles read again at 1 stage, joint sums (no spill): 6090.4-6094.2.
# - Runs 99, 103-104 (RowLoop.affine_dx): LayerNorm's backward is bound by instructions, not
#   bytes: a row split between two programs so that nothing spilled (run 99, not kept: the
#   partner's half read again from L2) still read 83% of copy at 131072x16384 where RMSNorm read
#   94% on the same launch. The affine dx, fwd+bwd us (three alternating readings): bf16
#   131072x16384 5690.6-5799.5 -> 5514.6-5616.6 (88 -> 90%; run 104: 5703.0-5763.3 ->
#   5530.5-5537.9, 91%), 32768x16384 1473.9-1524.8 -> 1417.3-1463.2 (85 -> 88%). fp16's single
#   16384 tile lost (run 104: 6039.9-6048.6 -> 6625.2-6639.0; 84 bytes a thread spilled, offline
#   ptxas). The 8192 tile tied (16384x8192 357.7-358.6 vs 358.4-358.8), as did RMSNorm
#   (131072x16384 5133.5-5139.2 vs 5131.9-5137.9; 16384x8192 339.8-340.4 vs 339.3-339.7).
# (is_rms, the rows' dtype: bfloat16, float16, float32 for every other) -> ((largest block_n, RowLoop), ...)
_HELD_FP32_TO_8192 = (8192, RowLoop(3, DxOperands.HELD_FP32))
_RMS_16K_16_BIT = (16384, RowLoop(3, DxOperands.HELD_NARROW, reload_weight=True))
BACKWARD_SINGLE_PASS = {
    (True, torch.bfloat16): (_HELD_FP32_TO_8192, _RMS_16K_16_BIT),
    (True, torch.float16): (_HELD_FP32_TO_8192, _RMS_16K_16_BIT),
    (True, torch.float32): (_HELD_FP32_TO_8192, (16384, RowLoop(1, DxOperands.HELD_NARROW))),
    (False, torch.bfloat16): (_HELD_FP32_TO_8192,
                              (16384, RowLoop(3, DxOperands.HELD_NARROW, reload_weight=True, equal_tiles=2,
                                              joint_sums=False, affine_dx=True))),
    (False, torch.float16): (_HELD_FP32_TO_8192, (16384, RowLoop(2, DxOperands.RELOADED))),
    (False, torch.float32): (_HELD_FP32_TO_8192,),
}
# The looped backward's inner loops: 2-3 stages lose or tie (LayerNorm 32768x12288: 60 / 56 / 52%
# at 1 / 2 / 3, run 20).
LOOPED_BWD_ROW_STAGES = 1
# Programs per "SM" when the device is the CPU interpreter: it runs programs one after another, so
# fewer, larger programs are faster and still exercise the multi-program reduction.
INTERPRETER_PROGRAMS = 2


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def split_tiles(hidden: int, min_tile: int) -> tuple[int, int, int]:
    """Up to three power-of-two widths, widest first (0: unused), that cover ``hidden`` columns.

    Greedy binary decomposition: the two largest powers of two that fit, then the power of two
    that covers the rest; no tile is narrower than ``min_tile``, and two equal tiles merge into
    one of twice the width. 12288 -> (8192, 4096, 0), 7168 -> (4096, 2048, 1024), 28672 ->
    (16384, 8192, 4096); a power of two is one tile."""
    tiles = []
    rest = hidden
    while rest > 0 and len(tiles) < 2:
        tile = max(1 << (rest.bit_length() - 1), min_tile)
        tiles.append(tile)
        rest -= tile
    if rest > 0:
        tiles.append(max(_next_power_of_2(rest), min_tile))
    while len(tiles) > 1 and tiles[-1] >= tiles[-2]:  # only equal after the min_tile rounding
        tiles[-2:] = [_next_power_of_2(tiles[-2] + tiles[-1])]
    return tuple(tiles + [0] * (3 - len(tiles)))


def _split_row(hidden: int, table: tuple) -> Optional[tuple]:
    """The row of a split-tile table (padded tile, largest fill, ...) that takes ``hidden``, or None
    (keep one padded tile): a power of two, a padded tile the table does not name, or a row that
    fills more of its padded tile than the limit."""
    padded = _next_power_of_2(hidden)
    for row in table:
        if padded == row[0] and hidden < padded and hidden <= row[1] * padded:
            return row
    return None


def _row_for(block_n: int, table: tuple) -> tuple:
    """The first row of a (largest block_n, ...) table that covers block_n, else the last."""
    for row in table:
        if block_n <= row[0]:
            return row
    return table[-1]


def _warps_for(block_n: int, table) -> int:
    return _row_for(block_n, table)[1]


def _rows_per_program(block_n: int) -> int:
    return max(1, min(MAX_ROWS_PER_PROGRAM, TARGET_ELEMENTS_PER_PROGRAM // block_n))


def early_affine_rows(hidden: int) -> int:
    """The most rows a forward call of this width may have for forward_launch's ``few_rows``
    (EARLY_AFFINE_MAX_ROWS from EARLY_AFFINE_MIN_HIDDEN to MAX_SINGLE_PASS_FWD columns, else 0)."""
    return EARLY_AFFINE_MAX_ROWS if EARLY_AFFINE_MIN_HIDDEN <= hidden <= MAX_SINGLE_PASS_FWD else 0


@functools.lru_cache(maxsize=None)
def forward_launch(hidden: int, is_rms: bool = True, has_residual: bool = False,
                   max_single_pass: Optional[int] = None, few_rows: bool = False) -> ForwardLaunch:
    """Launch shape for the forward kernel; cached since a model uses a handful of hidden sizes.
    ``has_residual``: the fused add variant. ``max_single_pass``: the widest register tile any
    launch may hold (single-pass tile or looped chunk); default: the tables' own. ``few_rows``:
    the call has at most ``early_affine_rows(hidden)`` rows (EARLY_AFFINE_MAX_ROWS), so an unfused
    single pass reads w and b with x. Unfused LayerNorm shifts its statistics within
    SHIFTED_STATS_FWD; looped rows from REVERSE_OUT_FROM's width on write y back to front, and
    from STREAMED_Y_FROM's store y streamed."""
    launch = _forward_shape(hidden, is_rms, has_residual, max_single_pass, few_rows)
    if launch.looped and hidden >= REVERSE_OUT_FROM[(is_rms, has_residual)]:
        launch = dataclasses.replace(launch, reverse_out=True)
    if launch.looped and hidden >= STREAMED_Y_FROM[(is_rms, has_residual)]:
        launch = dataclasses.replace(launch, y_cache=".cs")
    smallest, largest = SHIFTED_STATS_FWD
    if not is_rms and not has_residual and smallest <= hidden <= largest:
        return dataclasses.replace(launch, shifted_stats=True)
    return launch


def _forward_shape(hidden: int, is_rms: bool, has_residual: bool, max_single_pass: Optional[int],
                   few_rows: bool) -> ForwardLaunch:
    """forward_launch's tiles, warps and loop, before its per-op rules (shifted statistics, pass 2 back
    to front)."""
    few_rows = few_rows and not has_residual
    widest_chunk = sys.maxsize if max_single_pass is None else max_single_pass
    max_single_pass = MAX_SINGLE_PASS_FWD if max_single_pass is None else max_single_pass
    if is_rms and has_residual and hidden >= FUSED_LOOPED_MIN_HIDDEN:
        _, chunk, warps = _row_for(hidden, FUSED_LOOPED_FWD)
        return ForwardLaunch(block_n=min(chunk, widest_chunk), block_m=1, num_warps=warps, looped=True)
    if hidden > max_single_pass:
        _, chunk, warps = _row_for(hidden, WIDE_ROW_FWD[is_rms])
        return ForwardLaunch(block_n=min(chunk, widest_chunk), block_m=1, num_warps=warps, looped=True)
    if not has_residual and not few_rows:
        for smallest, largest, chunk, warps, out_chunk in READ_TWICE_FWD[is_rms]:
            if smallest <= hidden <= largest:
                return ForwardLaunch(block_n=chunk, block_m=1, num_warps=warps, looped=True, out_block_n=out_chunk)
    split = _split_row(hidden, SPLIT_TILE_FWD[is_rms])
    if split is not None:
        block_n, *tail_n = split_tiles(hidden, SPLIT_MIN_TILE)
        return ForwardLaunch(block_n=block_n, block_m=_rows_per_program(block_n), num_warps=split[2], looped=False,
                             tail_n=tuple(tail_n), early_affine=few_rows)
    block_n = _next_power_of_2(hidden)
    fill_limit, looped_rows = LOW_FILL_LOOPED_FWD[is_rms]
    if hidden > LOW_FILL_MIN_HIDDEN and hidden <= fill_limit * block_n:
        _, chunk, warps = _row_for(hidden, looped_rows)
        return ForwardLaunch(block_n=chunk, block_m=1, num_warps=warps, looped=True)
    return ForwardLaunch(block_n=block_n, block_m=_rows_per_program(block_n),
                         num_warps=_warps_for(block_n, FORWARD_WARPS_BY_BLOCK_N[is_rms]), looped=False,
                         early_affine=few_rows)


@functools.lru_cache(maxsize=None)
def _backward_shape(hidden: int, is_rms: bool, dtype: torch.dtype, force_looped: bool) -> BackwardLaunch:
    """The launch without its grid (programs, rows_per_program are filled in per call)."""
    sixteen_bit = dtype.itemsize <= 2
    split = _split_row(hidden, SPLIT_TILE_BWD[is_rms]) if sixteen_bit and not force_looped else None
    if split is not None:  # may pass the padded tile's single-pass limit (18432 = 16384 + 2048)
        _, _, warps, loop = split
        return _single_pass(split_tiles(hidden, SPLIT_MIN_TILE), warps, loop)
    if hidden > MAX_SINGLE_PASS_BWD[is_rms, sixteen_bit] or force_looped:
        _, chunk, warps, per_sm = _row_for(hidden, LOOPED_BWD)
        return _looped(chunk, warps, per_sm, LOOPED_BWD_ROW_STAGES)
    block_n = _next_power_of_2(hidden)
    row_dtype = dtype if dtype in (torch.bfloat16, torch.float16) else torch.float32
    _, loop = _row_for(block_n, BACKWARD_SINGLE_PASS[is_rms, row_dtype])
    tile = block_n // loop.equal_tiles
    tiles = (tile, tile if loop.equal_tiles == 2 else 0, 0)
    return _single_pass(tiles, _warps_for(block_n, BACKWARD_WARPS_BY_BLOCK_N), loop)


def _looped(chunk: int, warps: int, programs_per_sm: int, stages: int) -> BackwardLaunch:
    """A looped BackwardLaunch over ``chunk``-column chunks, grid to be filled in."""
    return BackwardLaunch(chunk, 1, warps, True, 0, 0, stages, DxOperands.HELD_FP32, programs_per_sm=programs_per_sm)


def _single_pass(tiles: tuple[int, int, int], warps: int, loop: RowLoop) -> BackwardLaunch:
    """A single-pass BackwardLaunch on register tiles ``tiles`` (widest first, 0: none), grid to be
    filled in."""
    return BackwardLaunch(tiles[0], _rows_per_program(tiles[0]), warps, False, 0, 0, loop.stages, loop.dx_operands,
                          tiles[1:], programs_per_sm=loop.programs_per_sm or BACKWARD_PROGRAMS_PER_SM[False],
                          keep_masks=loop.keep_masks,
                          reload_weight=loop.reload_weight, joint_sums=loop.joint_sums, affine_dx=loop.affine_dx)


@functools.lru_cache(maxsize=1024)
def backward_launch(rows: int, hidden: int, device: torch.device, is_rms: bool, dtype: torch.dtype,
                    force_looped: bool = False) -> BackwardLaunch:
    """Launch shape for the backward kernel: a grid of row strips, a few per SM. ``dtype`` is x's
    (what the kernel reads); ``force_looped`` picks the looped kernel, whose shared memory
    needs are small, for a device that cannot fit the single-pass launch. Cached: a training run
    sees a handful of (rows, hidden) shapes, and building the launch cost ~3 us of host time a
    backward on the H200 (run 36, scripts/tune_kernels.py host_training)."""
    return with_row_strips(_backward_shape(hidden, is_rms, dtype, force_looped), rows, device)


def with_row_strips(shape: BackwardLaunch, rows: int, device: torch.device) -> BackwardLaunch:
    """``shape`` with its grid filled in for ``rows``: one strip of rows a program, at most
    ``shape.programs_per_sm`` programs an SM, each strip a whole number of ``block_m`` row blocks."""
    max_programs = multiprocessor_count(device) * shape.programs_per_sm
    row_blocks = -(-rows // shape.block_m)
    programs = max(1, min(max_programs, row_blocks))
    # Strips are whole multiples of block_m so that no program has a ragged block in its middle.
    rows_per_program = -(-row_blocks // programs) * shape.block_m
    programs = max(1, -(-rows // rows_per_program))
    return dataclasses.replace(shape, programs=programs, rows_per_program=rows_per_program)


# The probes' textual form of a backward launch (scripts/tune_kernels.py backward_ab reads it,
# scripts/offline_resources.py compiles it, docs/kernels.md quotes it). Options in this order:
_BACKWARD_OPTIONS = ("reload", "masked", "separate", "affine")
BACKWARD_NOTATION = ("TILES/wWARPS/sSTAGES/OPERANDS[/reload][/masked][/separate][/affine][/pPROGRAMS_PER_SM] "
                     "(TILES: e.g. 8192+4096; pN where not 1) "
                     "or looped/CHUNK/wWARPS/pPROGRAMS_PER_SM/sSTAGES")


def backward_notation(launch: BackwardLaunch, rows: int, hidden: int) -> str:
    """``launch`` in BACKWARD_NOTATION, e.g. ``8192+8192/w16/s3/HELD_NARROW/reload/separate/affine``
    or ``looped/4096/w8/p2/s1``; ``masked`` is named where the launch keeps masks on a
    (rows, hidden) problem. parse_backward_notation reads it back (its grid aside)."""
    if launch.looped:
        return f"looped/{launch.block_n}/w{launch.num_warps}/p{launch.programs_per_sm}/s{launch.row_stages}"
    tiles = "+".join(str(t) for t in (launch.block_n, *launch.tail_n) if t)
    flags = (launch.reload_weight, launch.masked(rows, hidden), not launch.joint_sums, launch.affine_dx)
    options = [name for name, on in zip(_BACKWARD_OPTIONS, flags) if on]
    if launch.programs_per_sm != BACKWARD_PROGRAMS_PER_SM[False]:
        options.append(f"p{launch.programs_per_sm}")
    return "/".join([tiles, f"w{launch.num_warps}", f"s{launch.row_stages}", launch.dx_operands.name, *options])


def _notation_number(part: str, prefix: str) -> int:
    """The positive integer after ``prefix`` in ``part`` ("w16" -> 16), or ValueError."""
    digits = part[len(prefix):]
    if not part.startswith(prefix) or not digits.isdigit() or int(digits) < 1:
        raise ValueError(part)
    return int(digits)


def parse_backward_notation(text: str) -> BackwardLaunch:
    """The launch ``text`` names in BACKWARD_NOTATION, its grid not filled in (programs and
    rows_per_program 0: with_row_strips fills them). A single pass gets the tables' rows per
    program for its first tile, and their programs an SM unless a last option ``pN`` names N (as
    _single_pass builds it); ``masked`` sets keep_masks, ``separate`` clears joint_sums. Raises
    ValueError naming the expected form."""
    parts = text.split("/")
    try:
        if parts[0] == "looped":
            if len(parts) != 5:
                raise ValueError(text)
            chunk = _notation_number(parts[1], "")
            warps, per_sm, stages = (_notation_number(p, prefix) for p, prefix in zip(parts[2:], "wps"))
            return _looped(chunk, warps, per_sm, stages)
        options = parts[4:]
        per_sm = 0  # the table's, as _single_pass reads it
        if options and options[-1].startswith("p"):
            per_sm = _notation_number(options.pop(), "p")
        if len(parts) < 4 or set(options) - set(_BACKWARD_OPTIONS) or parts[3] not in DxOperands.__members__:
            raise ValueError(text)
        widths = [_notation_number(t, "") for t in parts[0].split("+")]
        if len(widths) > 3:
            raise ValueError(text)
        warps, stages = _notation_number(parts[1], "w"), _notation_number(parts[2], "s")
    except ValueError:
        raise ValueError(f"backward launch {text!r}: expected {BACKWARD_NOTATION}") from None
    loop = RowLoop(stages, DxOperands[parts[3]], reload_weight="reload" in options, keep_masks="masked" in options,
                   joint_sums="separate" not in options, affine_dx="affine" in options, programs_per_sm=per_sm)
    return _single_pass(tuple(widths + [0] * (3 - len(widths))), warps, loop)


@functools.lru_cache(maxsize=None)
def multiprocessor_count(device: torch.device) -> int:
    """SM count of a CUDA device; for the CPU interpreter, a small stand-in that still spreads rows
    over several programs."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return INTERPRETER_PROGRAMS
