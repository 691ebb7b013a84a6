"""GPU tests (marked ``gpu``; skipped without CUDA): large shapes, half precision, 64-bit offsets,
determinism, no recompilation per eps or row count, CUDA-graph capture and torch.compile."""

import pytest
import torch

import trinix_bench as tb
from helpers import OPS, backward, call, check_op, make_inputs, recorded_flags
from trinix_bench.reference import relative_error, rms_norm_reference, tolerance_for

pytestmark = pytest.mark.gpu
DEVICE = "cuda"


def _reset_grads(inputs):
    for t in inputs.values():
        if t is not None:
            t.grad = None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("rows, hidden", [(4096, 8192), (2048, 4096), (1, 4096), (32, 4096), (513, 5120), (257, 12288),
                                          (300, 7168), (129, 14336), (1000, 16384), (200, 15000), (67, 18432),
                                          (33, 28672), (1, 8192), (32, 16384), (200, 2048), (17, 7168), (5, 12288)])
@pytest.mark.parametrize("op", OPS)
def test_large_shapes(op, rows, hidden, dtype):
    inputs, grads = make_inputs(op, rows, hidden, dtype, DEVICE)
    check_op(op, inputs, grads)


@pytest.mark.parametrize("n_partials, n_cols", [(132, 5120), (264, 5120), (264, 28672), (132, 65536), (1, 4097)])
def test_sum_partials_at_the_backward_grids(n_partials, n_cols):
    # The dw / db partial rows as the H200's grids leave them (one or two programs an SM), summed
    # by the compiled kernel: within bf16's and fp32's tolerance of float64, the same bits again.
    from trinix_bench.ops import normalization as nz

    dw_partial, db_partial = (torch.randn(n_partials, n_cols, device=DEVICE) * 2 + 0.25 for _ in range(2))
    dw, db = nz._sum_partials(dw_partial, db_partial, torch.bfloat16, torch.float32)
    assert relative_error(dw, dw_partial.double().sum(0)) <= tolerance_for(torch.bfloat16)
    assert relative_error(db, db_partial.double().sum(0)) <= tolerance_for(torch.float32)
    again = nz._sum_partials(dw_partial, db_partial, torch.bfloat16, torch.float32)
    assert torch.equal(dw, again[0]) and torch.equal(db, again[1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows, hidden", [(129, 14336), (1000, 16384), (3, 16384)])
def test_shifted_statistics_on_rows_far_from_zero(rows, hidden, dtype, monkeypatch):
    # LayerNorm at the widths that shift their statistics (SHIFTED_STATS_FWD): rows of mean 768 and
    # std 1, where unshifted one-pass sums lose ~3% of the variance (past fp16's tolerance), and rows
    # whose shift, the first element, sits 40 standard deviations out. Every forward launched shifts.
    from trinix_bench.ops.launch_config import forward_launch

    assert forward_launch(hidden, False).shifted_stats
    launched = recorded_flags(monkeypatch, "SHIFTED_STATS")  # None for the backward's launches
    far = torch.randn(rows, hidden, device=DEVICE) + 768.0
    outlier = torch.randn(rows, hidden, device=DEVICE) * 2.0
    outlier[:, 0] = 80.0 * torch.randn(rows, device=DEVICE).sign()
    for x in (far, outlier):
        inputs, grads = make_inputs("layer_norm", rows, hidden, dtype, DEVICE, x=x.to(dtype))
        check_op("layer_norm", inputs, grads)
    forward_flags = [flag for flag in launched if flag is not None]
    assert forward_flags and all(forward_flags)


@pytest.mark.parametrize("dtype, rows, hidden", [(torch.bfloat16, 129, 14336), (torch.float16, 129, 14336),
                                                 (torch.bfloat16, 1000, 16384), (torch.bfloat16, 3, 16384),
                                                 (torch.bfloat16, 65, 18432), (torch.float16, 65, 18432)])
def test_affine_dx_on_rows_far_from_zero(rows, hidden, dtype, monkeypatch):
    # LayerNorm's backward in the affine form (RowLoop.affine_dx) at each launch of the tables
    # that takes it, on rows of mean 768 and std 1, where A * x and B nearly cancel; the
    # single-pass kernel ran it (the looped one, a fallback, ignores the flag).
    from trinix_bench.ops import normalization
    from trinix_bench.ops.launch_config import backward_launch

    assert backward_launch(rows, hidden, torch.device(DEVICE), False, dtype).affine_dx
    affine = recorded_flags(monkeypatch, "AFFINE_DX", kernel=normalization._norm_bwd_kernel)
    x = torch.randn(rows, hidden, device=DEVICE) + 768.0
    inputs, grads = make_inputs("layer_norm", rows, hidden, dtype, DEVICE, x=x.to(dtype))
    check_op("layer_norm", inputs, grads)
    assert affine and all(affine)


@pytest.mark.parametrize("looped", [False, True])
@pytest.mark.parametrize("op", OPS)
def test_register_capped_forward(op, looped, monkeypatch):
    # A forward launched under a register cap (ForwardLaunch.max_registers, ptxas's .maxnreg)
    # compiles within it and still meets the float64 reference, forward and backward.
    from trinix_bench.ops import normalization as nz
    from trinix_bench.ops.launch_config import ForwardLaunch

    cap = 32
    monkeypatch.setattr(nz, "forward_launch", lambda *_, **__: ForwardLaunch(8192, 1, 16, looped, max_registers=cap))
    inputs, grads = make_inputs(op, 300, 8192, torch.bfloat16, DEVICE)
    check_op(op, inputs, grads)
    kernel = nz._norm_fwd_looped_kernel if looped else nz._norm_fwd_kernel
    capped = [compiled for key, compiled in nz._LAUNCHES._compiled.items() if key[0] is kernel and key[3] == cap]
    assert capped and all(compiled.n_regs <= cap for compiled in capped)


@pytest.mark.parametrize("param_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("op", OPS)
def test_torch_path_large(op, dtype, param_dtype):
    # The fallback uses F.rms_norm / F.layer_norm when the parameter dtype matches x: hold it to
    # the same float64 bounds as the kernels.
    inputs, grads = make_inputs(op, 1024, 4096, dtype, DEVICE, param_dtype=param_dtype)
    check_op(op, inputs, grads, backend="torch")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("hidden", [30000, 32768, 65536, 65537, 98304, 131072, 200000, 262144])
@pytest.mark.parametrize("op", OPS)
def test_wide_rows(op, hidden, dtype):
    # every looped chunk of the wide-row tables (WIDE_ROW_FWD, FUSED_LOOPED_FWD, LOOPED_BWD),
    # masked (30000, 65537, 200000) and exact; y written back to front (REVERSE_OUT_FROM) by the
    # fused ops from 131072 and by RMSNorm at 200000 (a partial last chunk, written first) and 262144
    inputs, grads = make_inputs(op, 9, hidden, dtype, DEVICE)
    check_op(op, inputs, grads)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("hidden, stride", [(1000, 1000), (4104, 4104), (12296, 12296), (65544, 65544), (4096, 4104)])
@pytest.mark.parametrize("op", OPS)
def test_rows_aligned_below_16_elements(op, hidden, stride, dtype, monkeypatch):
    # Widths or row strides that are multiples of 8 but not 16 (single pass, split tiles, looped;
    # the last a column slice): every launch over such rows passes ROW_ALIGN (8 for bf16, 4 for
    # fp32), meets the float64 reference forward and backward, and compiles to fewer one-element
    # accesses than the same launch with ROW_ALIGN forced to 1; the widths (not the slice, whose
    # w and y are aligned anyway) also to vector loads and stores throughout.
    from helpers import load_script
    from trinix_bench.ops import normalization as nz

    offline = load_script("offline_resources")
    launched = []
    real_launch = nz._LAUNCHES.launch

    def launch(kernel, grid, args, unspecialized, constexprs, num_warps, *options):
        compiled = real_launch(kernel, grid, args, unspecialized, constexprs, num_warps, *options)
        if kernel is not nz._sum_partials_kernel:  # the partial sums read no rows of x
            launched.append((constexprs["ROW_ALIGN"], compiled))
        return compiled

    monkeypatch.setattr(nz._LAUNCHES, "launch", launch)
    base = torch.randn(97, stride, device=DEVICE, dtype=dtype)
    x = base[:, :hidden].detach().requires_grad_()
    inputs, grads = make_inputs(op, 0, hidden, dtype, DEVICE, x=x)
    check_op(op, inputs, grads)
    # the fused ops' backward reads residual_out, not the slice: all its rows are then multiples of 16
    backward_align = 1 if op.startswith("fused") and hidden % 16 == 0 else 16 // dtype.itemsize
    assert [align for align, _ in launched] == [16 // dtype.itemsize, backward_align], launched
    aligned_at = [index for index, (align, _) in enumerate(launched) if align > 1]
    aligned = [launched[index][1] for index in aligned_at]
    launched.clear()
    _reset_grads(inputs)
    monkeypatch.setattr(nz, "row_alignment", lambda *_: 1)
    check_op(op, inputs, grads)
    unaligned = [launched[index][1] for index in aligned_at]

    def one_element_accesses(compiled):
        return sum(n for (_, size), n in offline.global_access_bytes(compiled.asm["ptx"]).items()
                   if size == dtype.itemsize)

    for with_align, without in zip(aligned, unaligned):
        assert one_element_accesses(with_align) < one_element_accesses(without)
        if hidden != stride:
            continue
        widths = offline.global_access_bytes(with_align.asm["ptx"])
        assert max(size for kind, size in widths if kind != "st") >= 8, widths
        assert max(size for kind, size in widths if kind == "st") >= 8, widths


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("hidden, sliced", [(18433, False), (65537, False), (65537, True)])
@pytest.mark.parametrize("op", OPS)
def test_rows_off_the_vector_boundary_read_by_phase(op, hidden, sliced, dtype, monkeypatch):
    # Odd widths on the looped forward (18433, 65537), contiguous or sliced at an odd column out of
    # rows 8 wider (x's base then off the 16-byte boundary, y's not): the forward launches with
    # PHASE_VECTOR and meets float64 forward and backward; it stores y in 16-byte vectors, and with
    # contiguous rows loads x in them too, where PHASE_VECTOR forced to 0 moves one element an
    # access throughout.
    from helpers import load_script
    from trinix_bench.ops import normalization as nz

    offline = load_script("offline_resources")
    launched = []
    real_launch = nz._LAUNCHES.launch

    def launch(kernel, grid, args, unspecialized, constexprs, num_warps, *options):
        compiled = real_launch(kernel, grid, args, unspecialized, constexprs, num_warps, *options)
        if kernel is nz._norm_fwd_looped_kernel:
            launched.append((constexprs["PHASE_VECTOR"], compiled))
        return compiled

    monkeypatch.setattr(nz._LAUNCHES, "launch", launch)
    x = None
    if sliced:
        base = torch.randn(37, hidden + 8, device=DEVICE, dtype=dtype)
        x = base[:, 3:3 + hidden].detach().requires_grad_()
    inputs, grads = make_inputs(op, 37, hidden, dtype, DEVICE, x=x)
    check_op(op, inputs, grads)
    assert [phase for phase, _ in launched] == [16 // dtype.itemsize], launched
    phased = launched[0][1]
    launched.clear()
    _reset_grads(inputs)
    monkeypatch.setattr(nz, "row_phase_vector", lambda *_: 0)
    check_op(op, inputs, grads)
    assert [phase for phase, _ in launched] == [0]

    def accesses(compiled):
        return offline.global_access_bytes(compiled.asm["ptx"])

    widths, unphased = accesses(phased), accesses(launched[0][1])
    assert widths.get(("st", 16), 0) > 0 and (sliced or widths.get(("ld", 16), 0) > 0), widths
    assert all(size < 16 for _, size in unphased), unphased


@pytest.mark.parametrize("op", OPS)
def test_weight_fp32_with_bf16_activations_and_strided_rows(op):
    base = torch.randn(1024, 6144, device=DEVICE, dtype=torch.bfloat16)
    x = base[:, 1024:5120].detach().requires_grad_()
    inputs, grads = make_inputs(op, 0, 4096, torch.bfloat16, DEVICE, param_dtype=torch.float32, x=x)
    check_op(op, inputs, grads)


def test_more_than_2_pow_31_elements():
    rows, hidden = 32769, 65536  # 2_147_549_184 elements: offsets past int32
    x = torch.randn(rows, hidden, device=DEVICE, dtype=torch.bfloat16)
    w = torch.randn(hidden, device=DEVICE, dtype=torch.bfloat16)
    y = tb.rms_norm(x, w, backend="triton")
    check = [0, rows // 2, rows - 2, rows - 1]
    expected = rms_norm_reference(x[check], w)
    assert relative_error(y[check], expected) < tolerance_for(torch.bfloat16)
    del y
    xg = x.requires_grad_()
    dy = torch.randn_like(x)
    tb.rms_norm(xg, w, backend="triton").backward(dy)
    x64 = x[check].detach().double().requires_grad_()
    rms_norm_reference(x64, w).backward(dy[check].double())
    assert relative_error(xg.grad[check], x64.grad) < tolerance_for(torch.bfloat16)


@pytest.mark.parametrize("op", OPS)
def test_weight_gradient_bitwise_deterministic(op):
    inputs, grads = make_inputs(op, 8192, 4096, torch.bfloat16, DEVICE, seed=7)
    grads_seen = []
    for _ in range(3):
        _reset_grads(inputs)
        backward(call(op, inputs, backend="triton"), grads)
        grads_seen.append(torch.cat([inputs["weight"].grad.float()] +
                                    ([inputs["bias"].grad.float()] if inputs["bias"] is not None else [])))
    assert all(torch.equal(grads_seen[0], g) for g in grads_seen[1:])


def _compiled_variants(kernel):
    """Number of compiled variants a Triton JITFunction holds (the attribute moved across versions)."""
    if hasattr(kernel, "device_caches"):
        return sum(len(entry[0]) for entry in kernel.device_caches.values())
    return sum(len(c) for c in kernel.cache.values())


def test_no_recompilation_per_eps_or_row_count():
    from trinix_bench.ops import normalization as nz

    # Through Triton's own launch path: calls served by the launcher cache never reach Triton's
    # compile step, so they could not show a recompilation.
    enabled_before, nz._LAUNCHES.enabled = nz._LAUNCHES.enabled, False
    try:
        w = torch.randn(1024, device=DEVICE, dtype=torch.bfloat16)
        # Two variants per launch: masked (a ragged last row block) and unmasked (exact cover).
        block_m = nz.forward_launch(1024, True, False).block_m
        for rows in (3, 2 * block_m):
            tb.rms_norm(torch.randn(rows, 1024, device=DEVICE, dtype=torch.bfloat16), w, backend="triton")
        before = _compiled_variants(nz._norm_fwd_kernel)
        for rows, eps in [(1, 1e-5), (7, 1e-6), (16, 3e-3), (1000, 1e-8), (4097, 0.5)]:
            x = torch.randn(rows, 1024, device=DEVICE, dtype=torch.bfloat16)
            y = tb.rms_norm(x, w, eps=eps, backend="triton")
            assert relative_error(y, rms_norm_reference(x, w, eps)) < tolerance_for(torch.bfloat16)
        assert _compiled_variants(nz._norm_fwd_kernel) == before
    finally:
        nz._LAUNCHES.enabled = enabled_before


@pytest.mark.parametrize("op", OPS)
def test_cuda_graph_capture(op):
    inputs, grads = make_inputs(op, 64, 2048, torch.bfloat16, DEVICE, requires_grad=False)
    static = {k: v.clone() if v is not None else None for k, v in inputs.items()}
    call(op, static, backend="triton")  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = call(op, static, backend="triton")
    fresh, _ = make_inputs(op, 64, 2048, torch.bfloat16, DEVICE, requires_grad=False)
    for k, v in fresh.items():
        if v is not None:
            static[k].copy_(v)
    graph.replay()
    expected = call(op, fresh, backend="torch")
    assert relative_error(out[0], expected[0]) < tolerance_for(torch.bfloat16)


@pytest.mark.parametrize("op", OPS)
def test_torch_compile_inductor_fullgraph(op):
    inputs, grads = make_inputs(op, 256, 4096, torch.bfloat16, DEVICE)

    def fn(inp):
        return call(op, inp, backend="triton")

    compiled = torch.compile(fn, fullgraph=True)
    y, r = compiled(inputs)
    backward((y, r), grads)
    got = {k: v.grad.clone() for k, v in inputs.items() if v is not None}
    _reset_grads(inputs)
    y2, r2 = fn(inputs)
    backward((y2, r2), grads)
    assert torch.equal(y, y2)
    for k, g in got.items():
        assert torch.equal(g, inputs[k].grad), k


def test_module_auto_dispatch_on_cuda():
    norm = tb.FastRMSNorm(4096, device=DEVICE, dtype=torch.bfloat16)
    x = torch.randn(2048, 4096, device=DEVICE, dtype=torch.bfloat16)
    decision = norm.explain(x)
    assert decision.backend in ("triton", "torch") and decision.reason.startswith("auto")
    assert relative_error(norm(x), rms_norm_reference(x, norm.weight)) < tolerance_for(torch.bfloat16)


@pytest.mark.parametrize("op", OPS)
def test_cached_launcher_matches_triton_launch(op):
    # The cached launcher keys on Triton's specializations; cover the edge cases: a pointer off
    # 16-byte alignment, hidden 1 (an integer equal to 1 is specialized), 1 row, strided rows.
    from trinix_bench.ops import normalization as nz

    cases = [(1, 4096, 0), (7, 1, 0), (33, 4095, 1), (64, 5120, 8), (5, 70000, 0)]
    enabled_before = nz._LAUNCHES.enabled
    for rows, hidden, shift in cases:
        base = torch.randn(rows, hidden + shift, device=DEVICE, dtype=torch.bfloat16)
        x = base[:, shift:].detach().requires_grad_()
        inputs, grads = make_inputs(op, 0, hidden, torch.bfloat16, DEVICE, x=x, seed=rows * 131 + hidden)
        results = []
        for enabled in (False, True, True):  # the second True launches from the cache
            nz._LAUNCHES.enabled = enabled
            try:
                _reset_grads(inputs)
                y, r = call(op, inputs, backend="triton")
                backward((y, r), grads)
                results.append([y] + [t.grad for t in inputs.values() if t is not None])
            finally:
                nz._LAUNCHES.enabled = enabled_before
        for got in results[1:]:
            for a, b in zip(results[0], got):
                assert torch.equal(a, b), (op, rows, hidden, shift)
    # The enabled runs must really have gone through the cache, not fallen back to Triton's launch.
    assert nz._LAUNCHES._compiled, "the cached launcher never served a launch (hooks seen as active?)"


@pytest.mark.parametrize("op", OPS)
def test_uses_triton_agrees_with_resolve_backend_on_cuda(op):
    # The per-call shortcut decides auto CUDA calls without formatting a reason: it must give the
    # decision explain() reports, on both sides of each threshold, for inference and training.
    from trinix_bench import dispatch

    thresholds = dispatch.current_thresholds()
    for needs_grad in (False, True):
        limit = thresholds.min_elements(op, needs_grad)
        for numel in sorted({max(limit - 1, 1), limit, limit + 1}):
            for dtype in (torch.bfloat16, torch.float32, torch.float64):
                x = torch.empty(numel, dtype=dtype, device=DEVICE)
                for backend in ("auto", "torch", "triton"):
                    try:
                        expected = dispatch.resolve_backend(op, x, needs_grad, backend).backend == "triton"
                    except ValueError:
                        with pytest.raises(ValueError):
                            dispatch.uses_triton(op, x, needs_grad, backend)
                        continue
                    assert dispatch.uses_triton(op, x, needs_grad, backend) == expected, (numel, dtype, backend)
