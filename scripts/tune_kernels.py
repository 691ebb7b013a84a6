"""Tuning probes for docs/kernels.md: per-call CPU overhead and backward launch variants.

    PYTHONPATH=. python scripts/tune_kernels.py overhead
    PYTHONPATH=. python scripts/tune_kernels.py backward [--shapes 32768x12288,131072x16384]

``overhead`` times the pieces of one call at a decode shape with a host clock (GPU work is tiny
there, so the host cost is what bounds the call) and prints a cProfile of the fwd+bwd step.
``backward`` times fwd+bwd (do_bench, as in the peer table) under several backward launch tables,
swapped in by replacing the module-level tables the selection functions read.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import pstats
import sys
import time

import torch
import triton

import trinix_bench as tb
from trinix_bench.ops import launch_config as lc


def _host_us(fn, iters=2000):
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters * 1e6


def overhead():
    x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    dy = torch.randn_like(x)
    y_keep = tb.rms_norm(xg, wg)

    def full():
        xg.grad = wg.grad = None
        tb.rms_norm(xg, wg).backward(dy)

    def torch_full():
        xg.grad = wg.grad = None
        torch.nn.functional.rms_norm(xg, (4096,), wg, 1e-6).backward(dy)

    rows = {
        "empty torch op (x + 0)": lambda: x.add(0),
        "torch.empty(1, 4096)": lambda: torch.empty(1, 4096, device="cuda", dtype=torch.bfloat16),
        "rms_norm inference": lambda: tb.rms_norm(x, w),
        "rms_norm forward with grad": lambda: tb.rms_norm(xg, wg),
        "backward only (retain_graph)": lambda: y_keep.backward(dy, retain_graph=True),
        "rms_norm fwd+bwd": full,
        "F.rms_norm fwd+bwd": torch_full,
    }
    for name, fn in rows.items():
        print(f"{name:34s} {_host_us(fn):8.1f} us/call (host clock)")
    _print_profile(full, calls=500, top=18)


def _print_profile(fn, calls, top):
    """cProfile of ``calls`` calls of ``fn``, the ``top`` functions by their own time."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def _training_step(op, rows, hidden, dtype=torch.bfloat16):
    """(fwd+bwd call on fresh leaves, bf16 unless ``dtype`` says, through the Triton kernels, the
    leaves to reset). The fused ops' backward gets gradients for both outputs, y and residual_out,
    as in a residual stream."""
    x = torch.randn(rows, hidden, device="cuda", dtype=dtype, requires_grad=True)
    w = torch.randn(hidden, device="cuda", dtype=dtype, requires_grad=True)
    b = torch.randn(hidden, device="cuda", dtype=dtype, requires_grad=True)
    dy = torch.randn_like(x)
    if op.startswith("fused_add_"):
        residual = torch.randn_like(x, requires_grad=True)
        dres = torch.randn_like(x)
        is_rms = op == "fused_add_rms_norm"
        params = (w,) if is_rms else (w, b)

        def step():
            outputs = getattr(tb, op)(x, residual, *params, backend="triton")
            torch.autograd.backward(outputs, (dy, dres))

        return step, [x, residual, *params]
    if op == "rms_norm":
        return (lambda: tb.rms_norm(x, w, backend="triton").backward(dy)), [x, w]
    return (lambda: tb.layer_norm(x, w, b, backend="triton").backward(dy)), [x, w, b]


BACKWARD_VARIANTS = {
    # name: (RMS single-pass limit, LN single-pass limit, backward warps table, looped chunk, programs/SM)
    "single16k_w16": (16384, 16384, ((1024, 4), (4096, 8), (16384, 16), (65536, 32)), 8192, 2),
    "single16k_w32": (16384, 16384, ((1024, 4), (4096, 8), (8192, 16), (65536, 32)), 8192, 2),
    "single16k_w32_1sm": (16384, 16384, ((1024, 4), (4096, 8), (8192, 16), (65536, 32)), 8192, 1),
    "looped8k_w16": (8192, 8192, ((1024, 4), (4096, 8), (8192, 16), (65536, 32)), 8192, 2),
    "looped4k_w8": (8192, 8192, ((1024, 4), (4096, 8), (8192, 16), (65536, 32)), 4096, 2),
    # the tables in effect (looped chunk None: lc.LOOPED_BWD as it is)
    "chosen": (lc.MAX_SINGLE_PASS_BWD[True, True], lc.MAX_SINGLE_PASS_BWD[False, True], lc.BACKWARD_WARPS_BY_BLOCK_N,
               None, dict(lc.BACKWARD_PROGRAMS_PER_SM)),
}
_LOOPED_BWD_TABLE = lc.LOOPED_BWD


def _use_backward_grid(per_sm, looped_rows):
    """Set the single-pass programs per SM (``per_sm[False]``) and the looped backward's rows, and
    drop the cached launches built from the old ones."""
    lc.BACKWARD_PROGRAMS_PER_SM, lc.LOOPED_BWD = per_sm, looped_rows
    lc._backward_shape.cache_clear()
    lc.backward_launch.cache_clear()


def _set_programs_per_sm(per_sm, looped_chunk=None):
    """Programs per SM for both backward kernels; with ``looped_chunk``, every looped launch at that
    chunk (warps from lc.BACKWARD_WARPS_BY_BLOCK_N) instead of lc.LOOPED_BWD's rows."""
    per_sm = {False: per_sm, True: per_sm}
    if looped_chunk is None:
        looped_rows = tuple((*row[:3], per_sm[True]) for row in _LOOPED_BWD_TABLE)
    else:
        warps = lc._warps_for(looped_chunk, lc.BACKWARD_WARPS_BY_BLOCK_N)
        looped_rows = ((sys.maxsize, looped_chunk, warps, per_sm[True]),)
    _use_backward_grid(per_sm, looped_rows)


def _apply_variant(max_single_rms, max_single_ln, warps, chunk, per_sm):
    lc.MAX_SINGLE_PASS_BWD = {(True, True): max_single_rms, (True, False): max_single_rms,
                              (False, True): max_single_ln, (False, False): max_single_ln}
    lc.BACKWARD_WARPS_BY_BLOCK_N = warps
    if chunk is None:  # "chosen": the tables' own looped rows and programs per SM
        _use_backward_grid(per_sm, _LOOPED_BWD_TABLE)
    else:
        _set_programs_per_sm(per_sm, chunk)


def backward(shapes, variants):
    import peer_table

    copy_gbps = peer_table.copy_bandwidth_gbps()
    print(f"copy bandwidth {copy_gbps:.0f} GB/s")
    print("| variant | op | shape | full us | % of copy |")
    print("|---|---|---|---|---|")
    for name in variants:
        _apply_variant(*BACKWARD_VARIANTS[name])
        for op in ("rms_norm", "layer_norm"):
            for rows, hidden in shapes:
                step, leaves = _training_step(op, rows, hidden)
                ms = triton.testing.do_bench(step, warmup=25, rep=100, grad_to_none=leaves, return_mode="median")
                pct = 5 * rows * hidden * 2 / (ms * 1e-3) / (copy_gbps * 1e9) * 100
                print(f"| {name} | {op} | {rows}x{hidden} | {ms * 1e3:.1f} | {pct:.0f}% |", flush=True)
                del step, leaves
                torch.cuda.empty_cache()


def _graph_us(fn, calls=100):
    """Pure GPU time per call: ``calls`` back-to-back calls captured in one CUDA graph, replayed."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / (10 * calls)


def decode():
    """Where a decode call's time goes: GPU time (graph replay), host time, and do_bench."""
    from trinix_bench.ops import normalization as nz

    x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    r = torch.randn_like(x)
    compiled = torch.compile(lambda x, w: torch.nn.functional.rms_norm(x, (4096,), w, 1e-6))
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    dy = torch.randn_like(x)

    def full():
        xg.grad = wg.grad = None
        tb.rms_norm(xg, wg).backward(dy)

    rows = {
        "ours rms fwd": lambda: tb.rms_norm(x, w),
        "ours fused add fwd": lambda: tb.fused_add_rms_norm(x, r, w, backend="triton"),
        "F.rms_norm fwd": lambda: torch.nn.functional.rms_norm(x, (4096,), w, 1e-6),
        "torch.compile F.rms_norm fwd": lambda: compiled(x, w),
    }
    enabled_before = nz._LAUNCHES.enabled
    print("| call | fast launch | GPU us (graph) | host us | do_bench us |")
    print("|---|---|---|---|---|")
    for fast in (False, True):
        nz._LAUNCHES.enabled = fast
        for name, fn in rows.items():
            if not name.startswith("ours") and fast:
                continue
            gpu = _graph_us(fn)
            host = _host_us(fn, iters=1000)
            bench = 1e3 * triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
            print(f"| {name} | {fast} | {gpu:.1f} | {host:.1f} | {bench:.1f} |", flush=True)
        host_full = _host_us(full, iters=500)
        bench_full = 1e3 * triton.testing.do_bench(full, warmup=25, rep=100, return_mode="median")
        print(f"| ours rms fwd+bwd | {fast} | - | {host_full:.1f} | {bench_full:.1f} |", flush=True)
    nz._LAUNCHES.enabled = enabled_before


def _forward_call(op, rows, hidden):
    """A no-argument inference call of ``op`` on fresh bf16 inputs."""
    x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
    residual = (torch.randn_like(x),) if op.startswith("fused_add_") else ()
    params = (w,) if op.endswith("rms_norm") else (w, b)
    return lambda: getattr(tb, op)(x, *residual, *params, backend="triton")


FORWARD_LOOPED_CHUNKS = (2048, 4096, 8192)


# The widest single-pass forward tile the kernel compiles without spilling (64K fp32 values over
# 32 warps), for probes that pit the single pass against the looped kernel past the table's limit.
SINGLE_PASS_FWD_CEILING = 65536


@contextlib.contextmanager
def _forward_tables(max_single_pass, looped_chunk=None):
    """Within the block, the forward's single-pass limit is ``max_single_pass`` and, with
    ``looped_chunk``, every looped row of WIDE_ROW_FWD takes that chunk at 16 warps."""
    saved = (lc.MAX_SINGLE_PASS_FWD, lc.WIDE_ROW_FWD)
    lc.MAX_SINGLE_PASS_FWD = max_single_pass
    if looped_chunk is not None:
        row = ((sys.maxsize, looped_chunk, 16),)
        lc.WIDE_ROW_FWD = {True: row, False: row}
    lc.forward_launch.cache_clear()
    try:
        yield
    finally:
        lc.MAX_SINGLE_PASS_FWD, lc.WIDE_ROW_FWD = saved
        lc.forward_launch.cache_clear()


def forward_looped(shapes):
    """Forward time: the single-pass kernel against the looped kernel at several chunk widths."""
    print("| op | shape | single pass | " + " | ".join(f"looped {c}" for c in FORWARD_LOOPED_CHUNKS) + " |")
    print("|---|---|---|" + "---|" * len(FORWARD_LOOPED_CHUNKS))
    low_fill = lc.LOW_FILL_LOOPED_FWD
    lc.LOW_FILL_LOOPED_FWD = {True: (0.0, ()), False: (0.0, ())}  # compare the raw kernels
    for op in ("rms_norm", "layer_norm"):
        for rows, hidden in shapes:
            fn = _forward_call(op, rows, hidden)
            cells = []
            # single pass up to its ceiling (past it, 8192 chunks as before run 75), then every row looped
            for single_limit, chunk in [(SINGLE_PASS_FWD_CEILING, 8192)] + [(1, c) for c in FORWARD_LOOPED_CHUNKS]:
                with _forward_tables(single_limit, chunk), torch.no_grad():
                    ms = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
                cells.append(f"{ms * 1e3:.1f} ({2 * rows * hidden * 2 / (ms * 1e-3) / 4.27e12 * 100:.0f}%)")
            print(f"| {op} | {rows}x{hidden} | " + " | ".join(cells) + " |", flush=True)
    lc.LOW_FILL_LOOPED_FWD = low_fill
    lc.forward_launch.cache_clear()


def looped_variants():
    """The looped forward kernel launched by hand: Triton's own launch vs the cached launcher, and
    num_stages / num_warps variants, on 16384x8192 RMSNorm (single pass: ~134 us)."""
    from trinix_bench.ops import normalization as nz

    rows, hidden, chunk = 16384, 8192, 2048
    x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
    y = torch.empty_like(x)
    args = (x, hidden, x, hidden, x, hidden, y, hidden, w, x, x, x, rows, hidden, 1e-6, 0.0)
    flags = dict(IS_RMS=True, HAS_RESIDUAL=False, HAS_WEIGHT=True, HAS_BIAS=False, STORE_STATS=False, BLOCK_N=chunk,
                 MASKED=False, SHIFTED_STATS=False, ONE_CHUNK=False, OUT_BLOCK_N=chunk, REVERSE_OUT=False, ROW_ALIGN=1,
                 Y_CACHE="")
    for stages in (1, 2, 3):
        for warps in (4, 8):
            fn = lambda: nz._norm_fwd_looped_kernel[(rows,)](*args, **flags, num_warps=warps, num_stages=stages)
            us = 1e3 * triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
            print(f"looped direct stages={stages} warps={warps}: {us:.1f} us", flush=True)
    compiled = nz._norm_fwd_looped_kernel[(rows,)](*args, **flags, num_warps=8)
    print("n_regs", compiled.n_regs, "n_spills", compiled.n_spills, "shared", compiled.metadata.shared)
    with _forward_tables(1, chunk):
        for enabled in (False, True):
            nz._LAUNCHES.enabled = enabled
            with torch.no_grad():
                us = 1e3 * triton.testing.do_bench(lambda: tb.rms_norm(x, w), warmup=25, rep=100, return_mode="median")
            print(f"tb.rms_norm looped, cached launcher {enabled}: {us:.1f} us", flush=True)


def backward_stages(shapes):
    """fwd+bwd time with the backward launched at several num_stages / num_warps / programs per SM
    (injected by wrapping the launcher; Triton's own launch path, so host cost is not comparable)."""
    from trinix_bench.ops import normalization as nz

    original_launch, original_per_sm = nz._LAUNCHES.launch, dict(lc.BACKWARD_PROGRAMS_PER_SM)
    print("| op | shape | stages | warps | programs/SM | full us | % of copy |")
    print("|---|---|---|---|---|---|---|")
    for op in ("rms_norm", "layer_norm"):
        for rows, hidden in shapes:
            step, leaves = _training_step(op, rows, hidden)
            for stages in (1, 2, 3):
                for warps in (None, 8):
                    for per_sm in (1, 2, 4):
                        def launch(kernel, grid, args, unspecialized, constexprs, num_warps, *options):
                            if kernel in (nz._norm_bwd_kernel, nz._norm_bwd_looped_kernel):
                                return kernel[grid](*args, **constexprs, num_warps=warps or num_warps, num_stages=stages)
                            return original_launch(kernel, grid, args, unspecialized, constexprs, num_warps, *options)
                        nz._LAUNCHES.launch = launch
                        _set_programs_per_sm(per_sm)
                        ms = triton.testing.do_bench(step, warmup=25, rep=100, grad_to_none=leaves, return_mode="median")
                        pct = 5 * rows * hidden * 2 / (ms * 1e-3) / 4.27e12 * 100
                        print(f"| {op} | {rows}x{hidden} | {stages} | {warps or 'table'} | {per_sm} | {ms * 1e3:.1f} | {pct:.0f}% |",
                              flush=True)
            del step, leaves
            torch.cuda.empty_cache()
    nz._LAUNCHES.launch = original_launch
    _use_backward_grid(original_per_sm, _LOOPED_BWD_TABLE)


def _warm_up(fn, leaves=None, seconds=0.3):
    """Run ``fn`` for a while before the first timed variant. Without it the first variant of a
    shape read up to 20% slow (run 51: LayerNorm fwd+bwd 32768x16384, the table's launch 1964.8 us
    timed first, 1616.1 us in the masks probe; 8192x5120 179.6 vs 151.8), as the GPU came back
    from the host-side setup between shapes."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(10):
            fn()
            for leaf in leaves or ():
                leaf.grad = None
        torch.cuda.synchronize()


def _launch_variant_row(label, fn, bytes_moved, **bench):
    """Time one variant (do_bench median, us) and format its us and % of copy; failures (e.g. out of
    shared memory) are reported, not raised."""
    try:
        ms = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median", **bench)
        return f"{label} | {ms * 1e3:.1f} | {bytes_moved / (ms * 1e-3) / 4.27e12 * 100:.0f}%"
    except Exception as exc:
        return f"{label} | failed: {type(exc).__name__} | -"


def backward_pipeline(shapes):
    """fwd+bwd time with the single-pass backward's row loop software-pipelined (ROW_STAGES: the
    next rows' x and dy staged through shared memory), by warps and programs per SM; the table's
    launch first. Each variant replaces ``backward_launch``. (Runs 19-20 also tried a register
    prefetch of the next row and re-reading w' per row; both lost to or tied with 3 stages and were
    dropped from the kernel, docs/kernels.md.)"""
    print("| op | shape | kernel | warps | stages | programs/SM | full us | % of copy |")
    print("|---|---|---|---|---|---|---|---|")
    for op, rows, hidden, block_n, table_warps in _backward_probe_cases(shapes):
        forced = []
        for warps in sorted({table_warps, 32 if block_n >= 16384 else table_warps}):
            for per_sm in (1, 2):
                for stages in (1, 2, 3, 4):
                    if block_n >= 16384 and per_sm == 2:
                        continue  # one 16-32 warp program a SM is all the registers allow
                    forced.append((f"single {block_n} | {warps} | {stages} | {per_sm}",
                                   _single_pass_launch(rows, hidden, warps, per_sm, stages, lc.DxOperands.HELD_FP32)))
        _time_backward_launches(
            op, rows, hidden, forced,
            lambda cfg: f"table: {'looped' if cfg.looped else 'single'} {cfg.block_n} | {cfg.num_warps} | "
                        f"{cfg.row_stages} | -")


def _backward_probe_cases(shapes):
    """(op, rows, hidden, power-of-two tile, the table's backward warps there) for both ops."""
    for op in ("rms_norm", "layer_norm"):
        for rows, hidden in shapes:
            block_n = 1 << (hidden - 1).bit_length()
            yield op, rows, hidden, block_n, lc._warps_for(block_n, lc.BACKWARD_WARPS_BY_BLOCK_N)


def _time_backward_launches(op, rows, hidden, forced, table_label):
    """Time fwd+bwd (do_bench) under the table's backward launch, then under each (label,
    BackwardLaunch) of ``forced`` in place of ``backward_launch``; print a table row for each."""
    from trinix_bench.ops import normalization as nz

    table = nz.backward_launch
    step, leaves = _training_step(op, rows, hidden)
    cfg = table(rows, hidden, torch.device("cuda"), op == "rms_norm", torch.bfloat16)
    _warm_up(step, leaves)
    for label, launch in [(table_label(cfg), None)] + forced:
        if launch is not None:
            nz.backward_launch = lambda *_, _cfg=launch, **__: _cfg
        try:
            row = _launch_variant_row(label, step, 5 * rows * hidden * 2, grad_to_none=leaves)
        finally:
            nz.backward_launch = table
        print(f"| {op} | {rows}x{hidden} | {row} |", flush=True)
    del step, leaves
    torch.cuda.empty_cache()


def _single_pass_launch(rows, hidden, warps, per_sm, stages, dx_operands, tiles=None):
    """A single-pass BackwardLaunch at the row's power-of-two tile (or at ``tiles``, the widths
    of split_tiles), bypassing the tables."""
    block_n, *tail_n = tiles or (1 << (hidden - 1).bit_length(), 0, 0)
    shape = lc.BackwardLaunch(block_n, lc._rows_per_program(block_n), warps, False, 0, 0, stages, dx_operands,
                              tuple(tail_n), programs_per_sm=per_sm)
    return lc.with_row_strips(shape, rows, torch.device("cuda"))


def backward_operands(shapes):
    """fwd+bwd time of the single-pass backward by what dx is computed from after the row
    reductions (DxOperands: x, dy held in fp32 / read again / held in bf16), warps and row-loop
    stages, one program per SM; LayerNorm included at tiles the table sends to the looped kernel.
    The table's launch first."""
    print("| op | shape | variant | full us | % of copy |")
    print("|---|---|---|---|---|")
    for op, rows, hidden, block_n, table_warps in _backward_probe_cases(shapes):
        forced = []
        for stages in (1, 2, 3):
            for operands in lc.DxOperands:
                # 32 warps (64 registers a thread) only at 16384-column tiles (run 26)
                for warps in (table_warps, 32) if block_n >= 16384 else (table_warps,):
                    forced.append((f"single {block_n} w{warps} s{stages} {operands.name}",
                                   _single_pass_launch(rows, hidden, warps, 1, stages, operands)))
        _time_backward_launches(
            op, rows, hidden, forced,
            lambda cfg: f"table: {'looped' if cfg.looped else 'single'} {cfg.block_n} w{cfg.num_warps} s{cfg.row_stages}")


def _probe_modes():
    """(op, mode, passes over the tensor) of the three forwards and the two fwd+bwd."""
    modes = [(op, "fwd", passes) for op, (_, passes) in FORWARD_SWEEP_OPS.items()]
    return modes + [("rms_norm", "fwd+bwd", 5), ("layer_norm", "fwd+bwd", 5)]


def _mode_call(op, mode, rows, hidden):
    """(the call, the leaves to reset or None, the grad mode to time it under) for one op-mode."""
    if mode == "fwd":
        return _forward_call(op, rows, hidden), None, torch.no_grad
    fn, leaves = _training_step(op, rows, hidden)
    return fn, leaves, contextlib.nullcontext


def non_pow2(shapes):
    """% of copy of each non-power-of-two width against its power-of-two neighbours at the same row
    count (so problem size and launch ramp cancel), under the tables in effect: forward for the
    three ops, fwd+bwd for RMSNorm and LayerNorm. Ratio = % of copy / the neighbour's; issue 5
    asks for >= 0.90."""
    print("| op | mode | rows | hidden | us | % of copy | pow2 below (% copy) | ratio | pow2 above (% copy) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for rows, hidden in shapes:
        below, above = 1 << (hidden.bit_length() - 1), 1 << (hidden - 1).bit_length()
        for op, mode, passes in _probe_modes():
            percent = {}
            for width in (hidden, below, above):
                fn, leaves, grad_mode = _mode_call(op, mode, rows, width)
                with grad_mode():
                    _warm_up(fn, leaves)
                    ms = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median", grad_to_none=leaves)
                percent[width] = (ms * 1e3, passes * rows * width * 2 / (ms * 1e-3) / 4.27e12 * 100)
                del fn, leaves
                torch.cuda.empty_cache()
            us, pct = percent[hidden]
            print(f"| {op} | {mode} | {rows} | {hidden} | {us:.1f} | {pct:.0f}% | {below}: {percent[below][1]:.0f}% | "
                  f"{pct / percent[below][1]:.2f} | {above}: {percent[above][1]:.0f}% | {pct / percent[above][1]:.2f} |",
                  flush=True)


def alignment_ab(shapes, rounds=2):
    """Each op-mode at each shape with the kernels' ROW_ALIGN as the launch computes it and forced
    to 1 (the kernels before it: one element an access where the width or a row stride is not a
    multiple of 16), alternating ``rounds`` times in one process; us (% of copy)."""
    _rule_ab("row_alignment", "ROW_ALIGN", "forced to 1", lambda *_: 1, shapes, rounds)


def phase_ab(shapes, rounds=2):
    """Each op-mode at each shape with the looped forward's PHASE_VECTOR as the launch computes it
    and forced to 0 (before it: rows off the 16-byte boundary, such as an odd width's, moved one
    element an access), alternating ``rounds`` times in one process; us (% of copy)."""
    _rule_ab("row_phase_vector", "PHASE_VECTOR", "forced to 0", lambda *_: 0, shapes, rounds)


def _rule_ab(name, flag, forced_label, forced, shapes, rounds):
    """Each op-mode at each shape with ``normalization.<name>`` (a per-call rule giving the kernels'
    ``flag``) as it is and replaced by ``forced``, alternating ``rounds`` times in one process."""
    from trinix_bench.ops import normalization as nz

    computed = getattr(nz, name)
    variants = {"computed": computed, "forced": forced}
    print(f"| op | mode | shape | {flag} | computed, us (% of copy) | {forced_label}, us (% of copy) |")
    print("|---|---|---|---|---|---|")
    for rows, hidden in shapes:
        for op, mode, passes in _probe_modes():
            fn, leaves, grad_mode = _mode_call(op, mode, rows, hidden)
            readings = {label: [] for label in variants}
            try:
                with grad_mode():
                    for _ in range(rounds):
                        for label, rule in variants.items():
                            setattr(nz, name, rule)
                            _warm_up(fn, leaves)
                            ms = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median",
                                                         grad_to_none=leaves)
                            readings[label].append(
                                f"{ms * 1e3:.1f} ({passes * rows * hidden * 2 / (ms * 1e-3) / 4.27e12 * 100:.0f}%)")
            finally:
                setattr(nz, name, computed)
            print(f"| {op} | {mode} | {rows}x{hidden} | {computed(2, hidden)} | {', '.join(readings['computed'])} | "
                  f"{', '.join(readings['forced'])} |", flush=True)
            del fn, leaves
            torch.cuda.empty_cache()


def _time_forward_variants(op, rows, hidden, passes, fn, variants, masked_variants=None):
    """Time the inference call ``fn`` with each (label: ForwardLaunch) of ``variants`` in place of
    ``forward_launch``, then each of ``masked_variants`` with the kernel's masks kept even where
    the launch covers the problem exactly (the kernels before run 48); print a table row for each."""
    from trinix_bench.ops import normalization as nz

    table, exact_cover = nz.forward_launch, lc.ForwardLaunch.exact_cover
    with torch.no_grad():
        _warm_up(fn)
    runs = [(label, cfg, False) for label, cfg in variants.items()]
    runs += [(label, cfg, True) for label, cfg in (masked_variants or {}).items()]
    for label, cfg, keep_masks in runs:
        nz.forward_launch = lambda *_, _cfg=cfg, **__: _cfg
        if keep_masks:
            lc.ForwardLaunch.exact_cover = lambda *_: False
        try:
            with torch.no_grad():
                row = _launch_variant_row(label, fn, passes * rows * hidden * 2)
        finally:
            nz.forward_launch, lc.ForwardLaunch.exact_cover = table, exact_cover
        print(f"| {op} | {rows}x{hidden} | {row} |", flush=True)


def _tiles_label(tiles):
    return "+".join(str(t) for t in tiles if t)


def split_rows(shapes, parts=("forward", "backward")):
    """Rows held as up to three power-of-two register tiles (split_tiles) against the table's
    launch: the forward at 4-16 warps for each op, then fwd+bwd with the single-pass backward by
    warps, row-loop stages and DxOperands (past the padded tile's single-pass limit only the
    operands that leave registers free). ``parts`` picks the forward, the backward or both."""
    from trinix_bench.ops import normalization as nz

    table = nz.forward_launch
    print("| op | shape | variant | us | % of copy |")
    print("|---|---|---|---|---|")
    for rows, hidden in shapes if "forward" in parts else ():
        tiles = lc.split_tiles(hidden, lc.SPLIT_MIN_TILE)
        for op, (is_rms, passes) in FORWARD_SWEEP_OPS.items():
            fn = _forward_call(op, rows, hidden)
            base = table(hidden, is_rms, op == "fused_add_rms_norm")
            variants = {f"table: {'looped' if base.looped else 'single'} {base.block_n} w{base.num_warps}": base}
            for warps in (4, 8, 16):  # 32 warps lost at every shape of run 41
                variants[f"split {_tiles_label(tiles)} w{warps}"] = lc.ForwardLaunch(tiles[0], 1, warps, False,
                                                                                    tiles[1:])
            _time_forward_variants(op, rows, hidden, passes, fn, variants)
            del fn
            torch.cuda.empty_cache()
    print()
    print("| op | shape | variant | full us | % of copy |")
    print("|---|---|---|---|---|")
    for op, rows, hidden, block_n, table_warps in _backward_probe_cases(shapes if "backward" in parts else ()):
        tilings = [lc.split_tiles(hidden, lc.SPLIT_MIN_TILE)]
        third = hidden // 3
        if hidden % 3 == 0 and third & (third - 1) == 0:  # 12288 as three equal tiles
            tilings.append((third, third, third))
        single_pass_limit = lc.MAX_SINGLE_PASS_BWD[op == "rms_norm", True]
        forced = []
        for tiles in tilings:
            if sum(tiles) <= single_pass_limit:
                # run 41: 32 warps lost at every launch, and 1 stage to 2-3 at 12288
                grid = ((8, 16) if sum(tiles) <= 8192 else (16,), (2, 3, 4), tuple(lc.DxOperands))
            else:  # past the padded tile's limit: only the operands that leave registers free
                grid = ((16, 32), (1, 2, 3), (lc.DxOperands.RELOADED, lc.DxOperands.HELD_NARROW))
            for warps in grid[0]:
                for stages in grid[1]:
                    for operands in grid[2]:
                        forced.append((f"split {_tiles_label(tiles)} w{warps} s{stages} {operands.name}",
                                       _single_pass_launch(rows, hidden, warps, 1, stages, operands, tiles)))
        _time_backward_launches(
            op, rows, hidden, forced,
            lambda cfg: f"table: {'looped' if cfg.looped else 'single'} {cfg.block_n} w{cfg.num_warps} "
                        f"s{cfg.row_stages} {cfg.dx_operands.name}")


FORWARD_SWEEP_OPS = {"rms_norm": (True, 2), "layer_norm": (False, 2), "fused_add_rms_norm": (True, 4)}
# forward_ab also times the fused LayerNorm (not a peer op-mode, so not in the sweeps above)
FORWARD_AB_OPS = {**FORWARD_SWEEP_OPS, "fused_add_layer_norm": (False, 4)}


def _parse_backward_candidate(spec):
    """``op@ROWSxHIDDEN=LAUNCH``, LAUNCH in launch_config.BACKWARD_NOTATION (separate: LayerNorm's
    two row sums by one tl.sum each; affine: dx from per-row coefficients, BackwardLaunch.affine_dx)
    -> (op, rows, hidden, label, BackwardLaunch with its grid) bypassing the tables."""
    head, _, launch = spec.partition("=")
    op, _, shape = head.partition("@")
    if op not in BACKWARD_AB_OPS:
        raise SystemExit(f"--candidates: cannot read {spec!r}; op must be one of {', '.join(BACKWARD_AB_OPS)}")
    dims = shape.split("x")
    if len(dims) != 2 or not all(d.isdigit() for d in dims):
        raise SystemExit(f"--candidates: cannot read {spec!r}; expected op@ROWSxHIDDEN=LAUNCH")
    rows, hidden = int(dims[0]), int(dims[1])
    try:
        cfg = lc.parse_backward_notation(launch)
    except ValueError as exc:
        raise SystemExit(f"--candidates: cannot read {spec!r}: {exc}") from None
    return op, rows, hidden, launch, lc.with_row_strips(cfg, rows, torch.device("cuda"))


def _alternate(op, rows, hidden, call, leaves, grad_mode, bytes_moved, launcher, labelled, rounds=2):
    """Time ``call`` under each (label, launch) of ``labelled`` (None: the table's) in place of
    ``normalization.<launcher>``, alternating, ``rounds`` readings each after one warm-up; print a
    row for each launch."""
    from trinix_bench.ops import normalization as nz

    table = getattr(nz, launcher)
    readings = [[] for _ in labelled]
    with grad_mode():
        _warm_up(call, leaves)
        for _ in range(rounds):
            for i, (_, cfg) in enumerate(labelled):
                if cfg is not None:
                    setattr(nz, launcher, lambda *_, _cfg=cfg, **__: _cfg)
                try:
                    row = _launch_variant_row("", call, bytes_moved, grad_to_none=leaves)
                finally:
                    setattr(nz, launcher, table)
                readings[i].append(row.split(" | ", 1)[1].replace(" | ", " ("))
    for (label, _), values in zip(labelled, readings):
        print(f"| {op} | {rows}x{hidden} | {label} | {'), '.join(values)}) |", flush=True)


# op -> (is_rms, elements moved a fwd+bwd per element of x: the fused ops also read the residual
# and write residual_out forward and read residual_out's gradient backward)
BACKWARD_AB_OPS = {"rms_norm": (True, 5), "layer_norm": (False, 5), "fused_add_rms_norm": (True, 8),
                   "fused_add_layer_norm": (False, 8)}


def _fallback_note(table_stages, fitted_stages):
    """What launch_backward fell back to after the table's stages ran out of shared memory (its
    _FITTED_ROW_STAGES: fewer stages, or 0 for the looped kernel); "" where it ran as the table says."""
    if fitted_stages is None or fitted_stages == table_stages:
        return ""
    return f" (ran {f's{fitted_stages}' if fitted_stages else 'looped'}: s{table_stages} out of shared memory)"


def backward_ab(candidates, dtype=torch.bfloat16, rounds=2):
    """fwd+bwd under the table's backward launch and under each candidate launch of the same shape,
    alternating, two readings each (do_bench median, us), after one warm-up: for choosing between
    launches whose single readings differ by a few percent. % of copy counts 2-byte elements. A
    spec without a launch (``op@ROWSxHIDDEN``) times the table's launch alone, e.g. to compare two
    commits' packages run one after the other."""
    from trinix_bench.ops import normalization as nz

    by_shape = {}
    for spec in candidates:
        if "=" not in spec:  # op@ROWSxHIDDEN alone: the table's launch only
            op, _, shape = spec.partition("@")
            by_shape.setdefault((op, *(int(v) for v in shape.split("x"))), [])
            continue
        op, rows, hidden, label, cfg = _parse_backward_candidate(spec)
        by_shape.setdefault((op, rows, hidden), []).append((label, cfg))
    print("| op | shape | launch | readings us (% of copy) |")
    print("|---|---|---|---|")
    for (op, rows, hidden), launches in by_shape.items():
        step, leaves = _training_step(op, rows, hidden, dtype)
        is_rms, elements_moved = BACKWARD_AB_OPS[op]
        base = nz.backward_launch(rows, hidden, torch.device("cuda"), is_rms, dtype)
        step()  # one call first, so the label names the stages launch_backward fell back to, if any
        fitted = None
        if hasattr(nz, "fitted_stages_key"):  # older packages have no stage fallback
            fitted = nz._FITTED_ROW_STAGES.get(nz.fitted_stages_key(hidden, is_rms, dtype, torch.cuda.current_device(),
                                                                    op.startswith("fused_add_")))
        # older packages (runs 68-69 time two commits' tables) have no notation: their launch's repr
        notation = lc.backward_notation(base, rows, hidden) if hasattr(lc, "backward_notation") else repr(base)
        label = f"table: {notation}{_fallback_note(base.row_stages, fitted)}"
        _alternate(op, rows, hidden, step, leaves, contextlib.nullcontext, elements_moved * rows * hidden * 2,
                   "backward_launch",
                   [(label, None)] + launches, rounds)
        del step, leaves
        torch.cuda.empty_cache()


@dataclasses.dataclass(frozen=True)
class _MaskedForwardLaunch(lc.ForwardLaunch):
    """A forward launch that keeps its masks where it covers the problem exactly (``/masked``)."""

    keep_masks = True


FORWARD_CANDIDATE_FORM = ("op@ROWSxHIDDEN=looped/CHUNK/wWARPS[/shifted][/oOUT_CHUNK][/rev][/regN][/ycs|/yef] or "
                          "op@ROWSxHIDDEN=single/TILES/wWARPS[/early][/shifted][/masked][/mROWS][/regN][/ycs|/yef]")


# a forward candidate's option -> its ForwardLaunch.y_cache (y's store policy)
_Y_CACHE_OPTIONS = {"ycs": ".cs", "yef": "evict_first"}


def _parse_forward_candidate(spec):
    """``op@ROWSxHIDDEN=looped/CHUNK/wWARPS`` or ``op@ROWSxHIDDEN=single/TILES/wWARPS`` (TILES:
    "4096+1024"), either optionally with ``/shifted`` (LayerNorm's statistics about the row's first
    element, one joint reduction), a single pass with ``/early`` (w and b read with x),
    ``/masked`` (masks kept where the launch covers the problem) and ``/mROWS`` (rows a program;
    default the table's rule), a looped one with ``/oOUT_CHUNK`` (pass 2's chunk) and ``/rev``
    (pass 2 from the row's last chunk to its first), either with ``/regN`` (at most N registers a
    thread, ptxas's .maxnreg) and ``/ycs`` or ``/yef`` (y stored streamed, or under an evict-first
    L2 policy: ForwardLaunch.y_cache) -> (op, rows, hidden, label, ForwardLaunch)."""
    head, _, launch = spec.partition("=")
    op, _, shape = head.partition("@")
    parts = launch.split("/")
    kind, tiles, warps, *options = parts + [""] * (3 - len(parts))  # a missing part reads as "" and fails below
    rows_options = [o for o in options if o[:1] == "m" and o[1:].isdigit()]
    out_options = [o for o in options if o[:1] == "o" and o[1:].isdigit()]
    register_options = [o for o in options if o[:3] == "reg" and o[3:].isdigit()]
    y_cache_options = [o for o in options if o in _Y_CACHE_OPTIONS]
    allowed = ({"shifted", "rev", *out_options, *y_cache_options} if kind == "looped"
               else {"early", "shifted", "masked", *rows_options, *y_cache_options})
    allowed |= set(register_options)
    if (op not in FORWARD_AB_OPS or kind not in ("looped", "single") or not warps.startswith("w")
            or not warps[1:].isdigit() or set(options) - allowed or len(rows_options) > 1 or len(out_options) > 1
            or len(register_options) > 1 or len(y_cache_options) > 1 or not all(t.isdigit() for t in tiles.split("+"))):
        raise SystemExit(f"--candidates: cannot read {spec!r}; expected {FORWARD_CANDIDATE_FORM}")
    rows, hidden = (int(v) for v in shape.split("x"))
    widths = [int(t) for t in tiles.split("+")] + [0, 0]
    block_m = 1 if kind == "looped" else lc._rows_per_program(widths[0])
    if rows_options:
        block_m = int(rows_options[0][1:])
    launch_class = _MaskedForwardLaunch if "masked" in options else lc.ForwardLaunch
    cfg = launch_class(widths[0], block_m, int(warps[1:]), kind == "looped", tuple(widths[1:3]),
                       early_affine="early" in options, shifted_stats="shifted" in options,
                       out_block_n=int(out_options[0][1:]) if out_options else 0, reverse_out="rev" in options,
                       max_registers=int(register_options[0][3:]) if register_options else 0,
                       y_cache=_Y_CACHE_OPTIONS[y_cache_options[0]] if y_cache_options else "")
    return op, rows, hidden, launch, cfg


def forward_label(cfg):
    """A ForwardLaunch written as _parse_forward_candidate reads it (rows a program left out; the
    options a package older than the field lacks read as unset)."""
    return (f"{'looped' if cfg.looped else 'single'}/{_tiles_label((cfg.block_n, *cfg.tail_n))}"
            f"/w{cfg.num_warps}{'/early' if getattr(cfg, 'early_affine', False) else ''}"
            f"{'/shifted' if getattr(cfg, 'shifted_stats', False) else ''}"
            f"{f'/o{cfg.out_block_n}' if getattr(cfg, 'out_block_n', 0) else ''}"
            f"{'/rev' if getattr(cfg, 'reverse_out', False) else ''}"
            f"{f'/reg{cfg.max_registers}' if getattr(cfg, 'max_registers', 0) else ''}"
            f"{''.join(f'/{o}' for o, c in _Y_CACHE_OPTIONS.items() if c and c == getattr(cfg, 'y_cache', ''))}")


def forward_ab(candidates, rounds=2):
    """The forward under the table's launch and under each candidate of the same shape, alternating
    as backward_ab does (bf16); candidates as _parse_forward_candidate reads them."""
    from trinix_bench.ops import normalization as nz

    by_shape = {}
    for spec in candidates:
        op, rows, hidden, label, cfg = _parse_forward_candidate(spec)
        by_shape.setdefault((op, rows, hidden), []).append((label, cfg))
    print("| op | shape | launch | readings us (% of copy) |")
    print("|---|---|---|---|")
    for (op, rows, hidden), launches in by_shape.items():
        is_rms, passes = FORWARD_AB_OPS[op]
        fused = op.startswith("fused_add")
        if hasattr(lc, "early_affine_rows"):  # the table's launch for this row count (older packages: by width)
            base = nz.forward_launch(hidden, is_rms, fused, few_rows=rows <= lc.early_affine_rows(hidden))
        else:
            base = nz.forward_launch(hidden, is_rms, fused)
        call = _forward_call(op, rows, hidden)
        _alternate(op, rows, hidden, call, None, torch.no_grad, passes * rows * hidden * 2, "forward_launch",
                   [(f"table: {forward_label(base)}", None)] + launches, rounds)
        del call
        torch.cuda.empty_cache()


def reload_weight(shapes):
    """fwd+bwd with the single-pass backward reading w' again for every row block instead of
    holding it in registers (BackwardLaunch.reload_weight), which frees a tile of registers for the
    dw / db sums: the table's launch, the same launch reading w again, then the row's tiles
    (split_tiles, or its power-of-two tile) at 1-3 row stages for the operands that leave registers
    free (and held in fp32 below 16384 columns), masked and unmasked at 16384, 32 warps past it."""
    from trinix_bench.ops import normalization as nz

    print("| op | shape | variant | full us | % of copy |")
    print("|---|---|---|---|---|")
    for op, rows, hidden, block_n, table_warps in _backward_probe_cases(shapes):
        cfg = nz.backward_launch(rows, hidden, torch.device("cuda"), op == "rms_norm", torch.bfloat16)
        forced = [] if cfg.looped else [("table, w read again", dataclasses.replace(cfg, reload_weight=True))]
        tiles = lc.split_tiles(hidden, lc.SPLIT_MIN_TILE)
        operands = [lc.DxOperands.RELOADED, lc.DxOperands.HELD_NARROW]
        if hidden < 16384:
            operands.append(lc.DxOperands.HELD_FP32)
        table_or_wide_warps = table_warps if cfg.looped else cfg.num_warps
        for warps in sorted({table_or_wide_warps, 32 if hidden > 16384 else table_or_wide_warps}):
            for stages in (1, 2, 3):
                for dx_operands in operands:
                    launch = _single_pass_launch(rows, hidden, warps, 1, stages, dx_operands, tiles)
                    label = f"{_tiles_label(tiles)} w{warps} s{stages} {dx_operands.name}, w read again"
                    for keep_masks in (False, True) if hidden == 16384 else (False,):
                        forced.append((label + (", masked" if keep_masks else ""),
                                       dataclasses.replace(launch, reload_weight=True, keep_masks=keep_masks)))
        _time_backward_launches(
            op, rows, hidden, forced,
            lambda cfg: f"table: {'looped' if cfg.looped else 'single'} {_tiles_label((cfg.block_n, *cfg.tail_n))} "
                        f"w{cfg.num_warps} s{cfg.row_stages} {cfg.dx_operands.name}"
                        f"{', masked' if cfg.masked(rows, hidden) else ''}")


def masks(shapes):
    """Forward (three ops) and fwd+bwd (RMSNorm, LayerNorm) under the tables in effect, with the
    masks as the launches set them (off where the launch covers the problem exactly and the table
    does not keep them: ForwardLaunch / BackwardLaunch ``masked``) and with the masks kept
    everywhere, as before run 48."""
    exact_cover = lc._Cover.exact_cover
    print("Each cell: two readings, taken masked, unmasked, masked, unmasked.")
    print("| op | mode | shape | masked us (% copy) | as the launches say us (% copy) | unmasked fwd / bwd |")
    print("|---|---|---|---|---|---|")
    for rows, hidden in shapes:
        for op, mode, passes in _probe_modes():
            fn, leaves, grad_mode = _mode_call(op, mode, rows, hidden)
            with grad_mode():
                _warm_up(fn, leaves)
            readings = {True: [], False: []}
            for keep_masks in (True, False, True, False):
                if keep_masks:
                    lc._Cover.exact_cover = lambda *_: False
                try:
                    with grad_mode():
                        ms = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median", grad_to_none=leaves)
                finally:
                    lc._Cover.exact_cover = exact_cover
                readings[keep_masks].append(
                    f"{ms * 1e3:.1f} ({passes * rows * hidden * 2 / (ms * 1e-3) / 4.27e12 * 100:.0f}%)")
            cells = [", ".join(readings[True]), ", ".join(readings[False])]
            is_rms = op != "layer_norm"
            fwd_exact = not lc.forward_launch(hidden, is_rms, op == "fused_add_rms_norm").masked(rows, hidden)
            bwd = lc.backward_launch(rows, hidden, torch.device("cuda"), is_rms, torch.bfloat16)
            bwd_exact = not bwd.masked(rows, hidden)
            print(f"| {op} | {mode} | {rows}x{hidden} | {cells[0]} | {cells[1]} | {fwd_exact} / "
                  f"{bwd_exact if mode != 'fwd' else '-'} |", flush=True)
            del fn, leaves
            torch.cuda.empty_cache()


def forward_sweep(shapes):
    """Forward time of every launch worth trying per op and shape: the table's (and, where it
    covers the shape exactly, the table's with the masks kept), the single-pass tile at 4-32 warps,
    split tiles at 4-16 warps for non-power-of-two rows, and the looped kernel at 2048-8192 chunks.
    Each variant replaces ``forward_launch`` (the probes of run 10 set the warps table instead)."""
    from trinix_bench.ops import normalization as nz

    table = nz.forward_launch
    print("| op | shape | variant | us | % of copy |")
    print("|---|---|---|---|---|")
    for rows, hidden in shapes:
        for op, (is_rms, passes) in FORWARD_SWEEP_OPS.items():
            fn = _forward_call(op, rows, hidden)
            block_n = 1 << (hidden - 1).bit_length()
            base = table(hidden, is_rms, op == "fused_add_rms_norm")
            table_label = f"table: {'looped' if base.looped else 'single'} {_tiles_label((base.block_n, *base.tail_n))} " \
                          f"w{base.num_warps}"
            variants = {table_label: base}
            masked = {f"{table_label}, masked": base} if base.exact_cover(rows, hidden) else {}
            for warps in (4, 8, 16, 32):
                if block_n // (32 * warps) <= 128:  # at most 128 values a thread
                    variants[f"single {block_n} w{warps}"] = lc.ForwardLaunch(block_n, base.block_m if not base.looped else 1,
                                                                          warps, False)
            tiles = lc.split_tiles(hidden, lc.SPLIT_MIN_TILE)
            if tiles[1]:
                for warps in (4, 8, 16):
                    variants[f"split {_tiles_label(tiles)} w{warps}"] = lc.ForwardLaunch(tiles[0], 1, warps, False,
                                                                                        tiles[1:])
            # Chunks down to 2048 at 16 warps are what inductor's autotuner picked for these rows (run 32).
            for chunk, warps in ((2048, 4), (2048, 8), (2048, 16), (4096, 8), (4096, 16), (8192, 8), (8192, 16)):
                if chunk <= hidden:  # a chunk of the whole row: one pass of statistics, the row read again
                    variants[f"looped {chunk} w{warps}"] = lc.ForwardLaunch(chunk, 1, warps, True)
            _time_forward_variants(op, rows, hidden, passes, fn, variants, masked)
            del fn
            torch.cuda.empty_cache()


def kernel_resources():
    """Registers, spills and shared memory of every kernel the cached launcher compiled so far in
    this process, with its constexprs (run after other probes, or it runs a few calls itself)."""
    from trinix_bench.ops import normalization as nz

    if not nz._LAUNCHES._compiled:
        backward_operands([(16384, 8192)])
    print("| kernel | warps | constexprs (wrapper order) | regs | spills | shared B |")
    print("|---|---|---|---|---|---|")
    for key, compiled in nz._LAUNCHES._compiled.items():
        kernel, _device, warps = key[:3]
        # The key holds the constexpr values in the launch wrapper's flag order, then the
        # per-argument specialization (tuples and types).
        flags = ",".join(str(v) for v in key[3:] if not isinstance(v, (tuple, type)))
        print(f"| {kernel.fn.__name__} | {warps} | {flags} | {compiled.n_regs} | {compiled.n_spills} | "
              f"{compiled.metadata.shared} |")


def inductor_code(out_dir):
    """Write the Triton code torch.compile generates for the peer table's eager references
    (rms fwd / fwd+bwd, LayerNorm fwd / fwd+bwd) at a few configs into ``out_dir``."""
    import os

    from torch._inductor.utils import run_and_get_code

    def hf_rms(x, w):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        return w * h.to(x.dtype)

    def ln(x, w, b):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, 1e-5)

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "inductor_kernels.py")
    sink = open(path, "w")
    for rows, hidden in ((4096, 8192), (32768, 12288), (131072, 16384)):
        for name, fn, n_params in (("rms", hf_rms, 1), ("ln", ln, 2)):
            x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            params = [torch.randn(hidden, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                      for _ in range(n_params)]
            dy = torch.randn_like(x)
            compiled = torch.compile(fn, dynamic=False)
            torch._dynamo.reset()
            _, codes = run_and_get_code(lambda: compiled(x, *params).backward(dy))
            for index, code in enumerate(codes):
                sink.write(f"\n\n# ==== {name} fwd+bwd {rows}x{hidden}, graph {index} ====\n\n{code}")
            sink.flush()
            print(f"{name} {rows}x{hidden}: {len(codes)} graphs into {path}", flush=True)
    sink.close()


def host_pieces():
    """Host time of the pieces of one decode-sized inference call."""
    from trinix_bench import dispatch, functional
    from trinix_bench._validate import check_norm_args
    from trinix_bench.ops import normalization as nz

    x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    r = torch.randn_like(x)
    pieces = {
        "check_norm_args": lambda: check_norm_args(x, None, w, None, 1e-6, "auto"),
        "resolve_backend": lambda: dispatch.resolve_backend("rms_norm", x, False, "auto"),
        "_needs_grad": lambda: functional._needs_grad(x, w),
        "launch_forward rms": lambda: nz.launch_forward(x, None, w, None, 1e-6, 0.0, True, False),
        "launch_forward fused": lambda: nz.launch_forward(x, r, w, None, 1e-6, 0.0, True, False),
        "tb.rms_norm": lambda: tb.rms_norm(x, w),
        "tb.fused_add_rms_norm triton": lambda: tb.fused_add_rms_norm(x, r, w, backend="triton"),
        "torch.empty_like": lambda: torch.empty_like(x),
    }
    for name, fn in pieces.items():
        print(f"{name:32s} {_host_us(fn, iters=3000):6.1f} us")


class _IdentityFunction(torch.autograd.Function):
    """The floor of a Python autograd.Function: forward and backward do no work."""

    @staticmethod
    def forward(ctx, x, w):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, dy):
        return dy, None


def host_training():
    """Host time of the pieces of one decode-sized fwd+bwd call (1x4096 bf16), for the training
    thresholds: where the ~200 us of an eager Triton fwd+bwd goes, against F.rms_norm's."""
    from trinix_bench.ops import normalization as nz

    hidden = 4096
    x = torch.randn(1, hidden, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
    xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))
    dy = torch.randn_like(x)
    _, _, mean, rstd = nz.launch_forward(x, None, w, b, 1e-6, 0.0, False, True)
    keep_ours = tb.rms_norm(xg, wg, backend="triton")
    keep_torch = torch.nn.functional.rms_norm(xg, (hidden,), wg, 1e-6)
    cfg = lc.backward_launch(1, hidden, x.device, True, x.dtype)
    partial = torch.randn(cfg.programs, hidden, device="cuda")

    def step(fn):
        def run():
            xg.grad = wg.grad = bg.grad = None
            fn().backward(dy)
        return run

    pieces = {
        "torch.empty(1, 4096) bf16": lambda: torch.empty(1, hidden, device="cuda", dtype=torch.bfloat16),
        "torch.empty(programs, 4096) fp32": lambda: torch.empty(cfg.programs, hidden, device="cuda"),
        "partial.sum(0)": lambda: partial.sum(0),
        "partial.sum(0).to(bf16)": lambda: partial.sum(0).to(torch.bfloat16),
        "backward_launch()": lambda: lc.backward_launch(1, hidden, x.device, True, x.dtype),
        "launch_forward rms, stats": lambda: nz.launch_forward(x, None, w, None, 1e-6, 0.0, True, True),
        "launch_backward rms (no autograd)": lambda: nz.launch_backward(dy, None, x, w, rstd, rstd, 0.0, True, True,
                                                                        None),
        "launch_backward ln (no autograd)": lambda: nz.launch_backward(dy, None, x, w, mean, rstd, 0.0, False, True,
                                                                       torch.bfloat16),
        "identity Function fwd+bwd": step(lambda: _IdentityFunction.apply(xg, wg)),
        "x * w fwd+bwd (2 ATen nodes)": step(lambda: xg * wg),
        "ours rms fwd (grad)": lambda: tb.rms_norm(xg, wg, backend="triton"),
        "ours rms bwd only (retain_graph)": lambda: keep_ours.backward(dy, retain_graph=True),
        "F.rms_norm bwd only (retain_graph)": lambda: keep_torch.backward(dy, retain_graph=True),
        "ours rms fwd+bwd": step(lambda: tb.rms_norm(xg, wg, backend="triton")),
        "F.rms_norm fwd+bwd": step(lambda: torch.nn.functional.rms_norm(xg, (hidden,), wg, 1e-6)),
        "ours ln fwd+bwd": step(lambda: tb.layer_norm(xg, wg, bg, backend="triton")),
        "F.layer_norm fwd+bwd": step(lambda: torch.nn.functional.layer_norm(xg, (hidden,), wg, bg, 1e-6)),
    }
    for name, fn in pieces.items():
        print(f"{name:36s} {_host_us(fn, iters=2000):7.1f} us", flush=True)
    _print_profile(step(lambda: tb.rms_norm(xg, wg, backend="triton")), calls=1000, top=25)


def small_rows(shapes):
    """Pure GPU time (CUDA-graph replay, no host time) and do_bench time of our inference forward
    against Liger-Kernel's at launch-bound shapes, to tell a kernel gap from a host gap."""
    from liger_kernel.transformers import functional as lf

    print("| op | shape | provider | GPU us (graph) | do_bench us |")
    print("|---|---|---|---|---|")
    for rows, hidden in shapes:
        x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
        calls = {
            ("rms_norm", "ours"): lambda: tb.rms_norm(x, w),
            ("rms_norm", "liger"): lambda: lf.liger_rms_norm(x, w, 1e-6),
            ("layer_norm", "ours"): lambda: tb.layer_norm(x, w, b),
            ("layer_norm", "liger"): lambda: lf.liger_layer_norm(x, w, b, 1e-5),
        }
        with torch.no_grad():
            for (op, provider), fn in calls.items():
                gpu = _graph_us(fn)
                bench = 1e3 * triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
                print(f"| {op} | {rows}x{hidden} | {provider} | {gpu:.2f} | {bench:.1f} |", flush=True)
    _liger_forward_resources()


def _liger_forward_resources():
    """Registers and spills of the forward kernels Liger-Kernel compiled in this process (its
    Triton JIT caches: the first entry of each device's cache tuple holds the compiled kernels)."""
    from liger_kernel.ops import layer_norm as liger_ln, rms_norm as liger_rms

    print()
    print("| Liger kernel | warps | regs | spills | shared B |")
    print("|---|---|---|---|---|")
    for jit_fn in (liger_rms._rms_norm_forward_kernel, liger_ln._layer_norm_forward_kernel):
        for caches in getattr(jit_fn, "device_caches", {}).values():
            for compiled in caches[0].values():
                print(f"| {jit_fn.fn.__name__} | {compiled.metadata.num_warps} | {compiled.n_regs} | "
                      f"{compiled.n_spills} | {compiled.metadata.shared} |")


SETUP_VARIANTS = ("table", "cache kept", "inputs kept", "both kept")


def setup_effects(shapes, rounds=2):
    """do_bench time of our inference forward and Liger-Kernel's (where installed) under
    scripts/peer_table.py's setup and without each of its two pieces, to find what in it moves a
    launch-bound call by ~2 us (runs 83-85). Variants, each reading one do_bench median:
    - table: fresh inputs from peer_table.measure, then torch.cuda.empty_cache() (the peer table);
    - cache kept: fresh inputs, no empty_cache;
    - inputs kept: one set of inputs made before the rounds, empty_cache after each reading;
    - both kept: one set of inputs, no empty_cache.
    Each round rotates the providers and the variants (peer_table.measuring_order)."""
    import statistics

    import peer_table

    print("| cell | shape | provider | variant | readings us | median us |")
    print("|---|---|---|---|---|---|")
    for rows, hidden in shapes:
        for cell in ("rms_fwd", "ln_fwd"):
            providers = peer_table.select_providers(peer_table._providers(cell), ["ours", "liger"])
            kept_inputs = peer_table.make_inputs(cell, rows, hidden)
            readings = {}
            for round_index in range(rounds):
                for name in peer_table.measuring_order(list(providers), round_index):
                    fn = providers[name]
                    for variant in peer_table.measuring_order(list(SETUP_VARIANTS), round_index):
                        if variant in ("table", "cache kept"):
                            ms = peer_table.measure(cell, rows, hidden, fn)
                        else:
                            ms = peer_table.time_call(cell, fn, kept_inputs)
                        if variant in ("table", "inputs kept"):
                            torch.cuda.empty_cache()
                        readings.setdefault((name, variant), []).append(ms * 1e3)
            for (name, variant), values in readings.items():
                listed = ", ".join(f"{v:.1f}" for v in values)
                print(f"| {cell} | {rows}x{hidden} | {name} | {variant} | {listed} | {statistics.median(values):.1f} |",
                      flush=True)
            del kept_inputs
            torch.cuda.empty_cache()


def copy_ceiling(shapes, rounds=3):
    """What a plain copy of a forward's bytes reaches at each shape. ``y.copy_(x)`` moves exactly
    what an RMSNorm or LayerNorm forward must (x read, y written; w and b aside), so its do_bench
    time is the floor for a forward of that size, launch and ramp included, where the 2 GiB copy
    that "% of copy" divides by has neither. Alternating readings (do_bench median, L2 emptied) of
    the copy and of both forwards under the tables; % of the 2 GiB copy bandwidth, and the copy's
    time over the forward's (1.00: the forward runs at the copy's speed for its size). ``stream``
    moves the same bytes through an elementwise kernel (torch.neg), since a contiguous copy is a
    DMA transfer: the kernel whose time ``counters.py`` (ncu) can read beside do_bench's."""
    import statistics

    import peer_table

    bandwidth = peer_table.copy_bandwidth_gbps()
    print(f"copy bandwidth (2 GiB): {bandwidth:.0f} GB/s")
    print("| shape | call | readings us | median us | % of copy | copy / call |")
    print("|---|---|---|---|---|---|")
    for rows, hidden in shapes:
        x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16)
        y = torch.empty_like(x)
        calls = {"copy": lambda x=x, y=y: y.copy_(x),
                 "stream": lambda x=x, y=y: torch.neg(x, out=y),  # the same bytes through a kernel
                 "rms_norm": _forward_call("rms_norm", rows, hidden),
                 "layer_norm": _forward_call("layer_norm", rows, hidden)}
        readings = {name: [] for name in calls}
        with torch.no_grad():
            _warm_up(calls["copy"])
            for _ in range(rounds):
                for name, fn in calls.items():
                    readings[name].append(1e3 * triton.testing.do_bench(fn, warmup=25, rep=100,
                                                                        return_mode="median"))
        copy_us = statistics.median(readings["copy"])
        for name, values in readings.items():
            us = statistics.median(values)
            pct = 2 * rows * hidden * 2 / (us * 1e-6) / (bandwidth * 1e9) * 100
            print(f"| {rows}x{hidden} | {name} | {', '.join(f'{v:.1f}' for v in values)} | {us:.1f} | "
                  f"{pct:.1f}% | {copy_us / us:.2f} |", flush=True)
        del x, y, calls
        torch.cuda.empty_cache()


# nvidia-smi's fields beside each clock_trace reading (queried only; nothing is set)
CLOCK_FIELDS = ("clocks.sm", "clocks.mem", "power.draw", "temperature.gpu")


def clock_summary(samples, start, end):
    """Median of each CLOCK_FIELDS value over the (time, values) ``samples`` taken from ``start``
    to ``end``; the sample nearest the window where none fell inside (a reading shorter than the
    sampling period); None without samples."""
    import statistics

    inside = [values for t, values in samples if start <= t <= end]
    if not inside and samples:
        inside = [min(samples, key=lambda s: min(abs(s[0] - start), abs(s[0] - end)))[1]]
    if not inside:
        return None
    return tuple(statistics.median(v[i] for v in inside) for i in range(len(CLOCK_FIELDS)))


@contextlib.contextmanager
def _clock_samples(period_ms=20):
    """A list that fills with (time.perf_counter(), CLOCK_FIELDS values) from ``nvidia-smi -lms``
    running in the background for the current device; stays empty where nvidia-smi cannot run."""
    import subprocess
    import threading

    uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
    command = ["nvidia-smi", "-i", uuid if uuid.startswith("GPU-") else f"GPU-{uuid}",
               f"--query-gpu={','.join(CLOCK_FIELDS)}", "--format=csv,noheader,nounits", f"-lms={period_ms}"]
    samples = []
    try:
        smi = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        print(f"clocks unavailable: {exc}", file=sys.stderr)
        yield samples
        return

    def read():
        for line in smi.stdout:
            try:
                samples.append((time.perf_counter(), tuple(float(v) for v in line.split(","))))
            except ValueError:  # e.g. "[N/A]"
                continue

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield samples
    finally:
        smi.terminate()
        smi.wait()
        reader.join(timeout=2)
        if not samples:
            print(f"clocks unavailable: {smi.stderr.read().strip()[:200]}", file=sys.stderr)


def clock_trace(shapes, rounds=4):
    """Each do_bench reading of our inference forward and Liger-Kernel's (where installed) at
    ``shapes``, as the peer table takes it (peer_table.measure: fresh inputs, then empty_cache),
    beside the SM and memory clocks, power and temperature nvidia-smi reported while it ran
    (sampled every 20 ms, read only): whether the ~2 us between the peer table's readings and
    forward_ab's later rounds (runs 83-90) follow the clocks. Even rounds start after two idle
    seconds, odd ones after a second of XXXL RMSNorm fwd+bwd, as a sweep's earlier shapes would."""
    import peer_table

    load, load_leaves = _training_step("rms_norm", 131072, 16384)
    print("| reading | round | after | cell | shape | provider | us | SM MHz | mem MHz | W | C |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    index = 0
    with _clock_samples() as samples:
        for round_index in range(rounds):
            after = "load" if round_index % 2 else "idle"
            if after == "idle":
                torch.cuda.synchronize()
                time.sleep(2)
            else:
                _warm_up(load, load_leaves, seconds=1.0)
            for rows, hidden in shapes:
                for cell in ("rms_fwd", "ln_fwd"):
                    providers = peer_table.select_providers(peer_table._providers(cell), ["ours", "liger"])
                    for name in peer_table.measuring_order(list(providers), round_index):
                        torch.cuda.synchronize()
                        start = time.perf_counter()
                        ms = peer_table.measure(cell, rows, hidden, providers[name])
                        end = time.perf_counter()
                        torch.cuda.empty_cache()
                        clocks = clock_summary(samples, start, end)
                        shown = " | ".join(f"{v:.0f}" for v in clocks) if clocks else "- | - | - | -"
                        print(f"| {index} | {round_index} | {after} | {cell} | {rows}x{hidden} | {name} | "
                              f"{ms * 1e3:.1f} | {shown} |", flush=True)
                        index += 1


def _torch_sum_partials(dw_partial, db_partial, dw_dtype, db_dtype):
    """The backward's reduction before the partial-sum kernel: ``partial.sum(0).to(dtype)`` each."""
    return (dw_partial.sum(0).to(dw_dtype) if dw_partial is not None else None,
            db_partial.sum(0).to(db_dtype) if db_partial is not None else None)


# partial_sum's launches: (block_n, block_rows, warps)
PARTIAL_SUMS_TRIED = tuple(lc.PartialSumLaunch(*v) for v in (
    (64, 32, 4), (128, 16, 4), (128, 32, 4), (32, 64, 2), (64, 64, 4), (128, 64, 4), (128, 64, 8), (256, 32, 8),
    (128, 128, 8), (64, 128, 8)))
# partial_sum's (programs, hidden) shapes: one program an SM, two from 28672 columns (the looped backward)
PARTIAL_SUM_SHAPES = ((132, 4096), (132, 5120), (132, 8192), (132, 16384), (264, 28672), (132, 65536))


def partial_sum(shapes, rounds=2):
    """The backward's dw/db partial rows summed by ``_sum_partials`` under each launch of
    PARTIAL_SUMS_TRIED against ``partial.sum(0).to(bf16)``: GPU time of both gradients (CUDA-graph
    replay, the partials warm in L2 as after the backward) and host time a call at
    PARTIAL_SUM_SHAPES; then fwd+bwd of both ops at (rows, hidden) ``shapes`` with either
    reduction, alternating ``rounds`` times (do_bench median, us)."""
    from trinix_bench.ops import normalization as nz

    table = nz.PARTIAL_SUM
    print("| programs x hidden | reduction | GPU us (graph) | host us |")
    print("|---|---|---|---|")
    for programs, hidden in PARTIAL_SUM_SHAPES:
        dw_partial, db_partial = (torch.randn(programs, hidden, device="cuda") for _ in range(2))
        variants = [("torch sum(0).to x2", _torch_sum_partials, table)]
        variants += [(f"kernel {v.block_n}/{v.block_rows}/w{v.num_warps}", nz._sum_partials, v)
                     for v in PARTIAL_SUMS_TRIED]
        for label, reduce, launch in variants:
            nz.PARTIAL_SUM = launch
            try:
                def call(reduce=reduce):
                    return reduce(dw_partial, db_partial, torch.bfloat16, torch.bfloat16)

                call()
                gpu_ms = triton.testing.do_bench_cudagraph(call, rep=50)
                print(f"| {programs}x{hidden} | {label} | {gpu_ms * 1e3:.2f} | {_host_us(call, iters=500):.1f} |",
                      flush=True)
            finally:
                nz.PARTIAL_SUM = table
    print()
    print("| op | shape | reduction | readings us (% of copy) |")
    print("|---|---|---|---|")
    reductions = {"kernel (table)": nz._sum_partials, "torch sum(0).to": _torch_sum_partials}
    for rows, hidden in shapes:
        for op in ("rms_norm", "layer_norm"):
            step, leaves = _training_step(op, rows, hidden)
            readings = {label: [] for label in reductions}
            try:
                _warm_up(step, leaves)
                for _ in range(rounds):
                    for label, reduce in reductions.items():
                        nz._sum_partials = reduce
                        ms = triton.testing.do_bench(step, warmup=25, rep=100, return_mode="median",
                                                     grad_to_none=leaves)
                        percent = 5 * rows * hidden * 2 / (ms * 1e-3) / 4.27e12 * 100
                        readings[label].append(f"{ms * 1e3:.1f} ({percent:.0f}%)")
            finally:
                nz._sum_partials = reductions["kernel (table)"]
            for label, values in readings.items():
                print(f"| {op} | {rows}x{hidden} | {label} | {', '.join(values)} |", flush=True)
            del step, leaves
            torch.cuda.empty_cache()


def gpu_vs_host(shapes):
    """fwd+bwd of both ops through the kernels: do_bench's median against the host time of one call
    at one row of the same width (nothing waits on the GPU there) and the GPU time of the kernels
    alone (torch.profiler's device time over 50 calls): where do_bench's reading is the host's.
    Every profile runs after every timing, since a profiler session slows later launches."""
    from torch.profiler import ProfilerActivity, profile

    cases = [(op, rows, hidden) for op in ("rms_norm", "layer_norm") for rows, hidden in shapes]
    timed = {}
    for op, rows, hidden in cases:
        step, leaves = _training_step(op, rows, hidden)
        _warm_up(step, leaves)
        ms = triton.testing.do_bench(step, warmup=25, rep=100, return_mode="median", grad_to_none=leaves)
        one_row, one_row_leaves = _training_step(op, 1, hidden)

        def host_call():
            one_row()
            for leaf in one_row_leaves:
                leaf.grad = None

        timed[op, rows, hidden] = (ms * 1e3, _host_us(host_call, iters=1000))
        del step, leaves
        torch.cuda.empty_cache()
    print("| op | shape | do_bench us | GPU kernels us a call | host us a call (1 row) |")
    print("|---|---|---|---|---|")
    for op, rows, hidden in cases:
        step, leaves = _training_step(op, rows, hidden)
        _warm_up(step, leaves)
        calls = 50
        with profile(activities=[ProfilerActivity.CUDA], acc_events=True) as prof:
            for _ in range(calls):
                step()
                for leaf in leaves:
                    leaf.grad = None
            torch.cuda.synchronize()
        gpu_us = sum(event.self_device_time_total for event in prof.key_averages()) / calls
        bench_us, host_us = timed[op, rows, hidden]
        print(f"| {op} | {rows}x{hidden} | {bench_us:.1f} | {gpu_us:.1f} | {host_us:.1f} |", flush=True)
        del step, leaves
        torch.cuda.empty_cache()

# probe name -> (function, whether it takes --shapes)
PROBES = {
    "overhead": (overhead, False),
    "backward": (backward, True),
    "decode": (decode, False),
    "forward_looped": (forward_looped, True),
    "looped_variants": (looped_variants, False),
    "backward_stages": (backward_stages, True),
    "backward_pipeline": (backward_pipeline, True),
    "host": (host_pieces, False),
    "host_training": (host_training, False),
    "small_rows": (small_rows, True),
    "backward_operands": (backward_operands, True),
    "forward_sweep": (forward_sweep, True),
    "resources": (kernel_resources, False),
    "split_rows": (split_rows, True),
    "non_pow2": (non_pow2, True),
    "masks": (masks, True),
    "gpu_vs_host": (gpu_vs_host, True),
    "reload_weight": (reload_weight, True),
}
# probes that take --shapes and --rounds
ROUNDS_PROBES = {"setup_effects": setup_effects, "copy_ceiling": copy_ceiling, "clock_trace": clock_trace,
                 "alignment_ab": alignment_ab, "phase_ab": phase_ab, "partial_sum": partial_sum}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("probe",
                        choices=list(PROBES) + list(ROUNDS_PROBES) + ["inductor", "backward_ab", "forward_ab"])
    parser.add_argument("--shapes", default="16384x8192,32768x12288,131072x16384")
    parser.add_argument("--variants", default=",".join(BACKWARD_VARIANTS))
    parser.add_argument("--out-dir", default="inductor_code", help="inductor: where the code goes")
    parser.add_argument("--parts", default="forward,backward", help="split_rows: which passes to time")
    parser.add_argument("--candidates", default="",
                        help="backward_ab: comma-separated op@ROWSxHIDDEN[=LAUNCH], LAUNCH as launch_config.BACKWARD_NOTATION "
                             "reads, e.g. 8192+8192/w16/s3/HELD_NARROW/reload or looped/4096/w8/p2/s1; "
                             "forward_ab: " + FORWARD_CANDIDATE_FORM)
    parser.add_argument("--rounds", type=int, default=2,
                        help="backward_ab / forward_ab / setup_effects / copy_ceiling / alignment_ab / phase_ab: alternating "
                             "readings of each launch; clock_trace: rounds (odd ones after a load)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"],
                        help="backward_ab: the activations' dtype")
    parser.add_argument("--then-resources", action="store_true",
                        help="after the probe, list the resources of the kernels it compiled")
    args = parser.parse_args()
    if args.probe == "inductor":
        return inductor_code(args.out_dir)
    if args.probe == "backward_ab":
        backward_ab(args.candidates.split(","), getattr(torch, args.dtype), args.rounds)
        return kernel_resources() if args.then_resources else None
    if args.probe == "forward_ab":
        forward_ab(args.candidates.split(","), args.rounds)
        return kernel_resources() if args.then_resources else None
    if args.probe in ROUNDS_PROBES:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
        return ROUNDS_PROBES[args.probe](shapes, args.rounds)
    probe, takes_shapes = PROBES[args.probe]
    if not takes_shapes:
        return probe()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    if args.probe == "backward":
        probe(shapes, args.variants.split(","))
    elif args.probe == "split_rows":
        probe(shapes, args.parts.split(","))
    else:
        probe(shapes)
    if args.then_resources:
        kernel_resources()

if __name__ == "__main__":
    main()
