"""Forward and backward of every op against float64 references.

Interpreter tests run the Triton kernels on CPU (TRITON_INTERPRET=1); the same grid runs on the
PyTorch path. Shapes cover odd hidden sizes (1, 3, 127, 4097, 70000 — the last takes the looped
two-pass kernels), 0/1/7 rows, N-d and strided inputs.
"""

import dataclasses

import pytest
import torch

import trinix_bench as tb
from helpers import OPS, call, call_reference, check_op, make_inputs, recorded_flags
from trinix_bench.reference import relative_error, tolerance_for

pytestmark = pytest.mark.interpreter

ROWS = (0, 1, 7)
HIDDEN = (1, 3, 127, 4097, 70000)


@pytest.fixture
def forward_tables(monkeypatch):
    """Sets launch_config's forward tables for one test, e.g. ``forward_tables(SHIFTED_STATS_FWD=(40,
    64))``; forward_launch's cache is emptied after setting them and again when the test ends, so
    no launch chosen under them outlives it."""
    from trinix_bench.ops import launch_config

    def set_tables(**tables):
        for name, value in tables.items():
            monkeypatch.setattr(launch_config, name, value)
        launch_config.forward_launch.cache_clear()

    yield set_tables
    launch_config.forward_launch.cache_clear()


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("op", OPS)
def test_matches_float64_fp32(op, rows, hidden, backend):
    if hidden == 70000 and rows == 7:
        rows = 3  # keeps the interpreter quick; 3 rows still spread over several programs
    inputs, grads = make_inputs(op, rows, hidden, torch.float32, "cpu")
    check_op(op, inputs, grads, backend=backend)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("op", OPS)
def test_half_precision_with_fp32_params(op, dtype):
    # Half activations with fp32 weight/bias, as in mixed-precision training: output in x.dtype.
    inputs, grads = make_inputs(op, 5, 300, dtype, "cpu", param_dtype=torch.float32)
    check_op(op, inputs, grads)
    assert inputs["weight"].grad.dtype == torch.float32


@pytest.mark.parametrize("op", OPS)
def test_without_weight_and_bias(op):
    inputs, grads = make_inputs(op, 6, 65, torch.float32, "cpu", weight=False, bias=False)
    check_op(op, inputs, grads)


@pytest.mark.parametrize("op", ["rms_norm", "fused_add_rms_norm"])
@pytest.mark.parametrize("weight", [True, False])
def test_rms_offset(op, weight):
    # Gemma stores w - 1 and multiplies by (w + 1).
    inputs, grads = make_inputs(op, 4, 96, torch.float32, "cpu", weight=weight)
    check_op(op, inputs, grads, offset=1.0)


@pytest.mark.parametrize("op", OPS)
def test_eps_is_honoured(op):
    # A large eps changes the output visibly, so a kernel ignoring it fails the reference check.
    inputs, grads = make_inputs(op, 3, 40, torch.float32, "cpu")
    inputs["x"] = (inputs["x"].detach() * 1e-2).requires_grad_()
    check_op(op, inputs, grads, eps=0.5)


@pytest.mark.parametrize("op", OPS)
def test_strided_rows_without_copy_and_nd_inputs(op):
    # Rows with a stride larger than hidden (a column slice), in 3-D.
    base = torch.randn(2, 5, 200) + 0.25
    x = base[..., 10:139].detach().requires_grad_()
    assert not x.is_contiguous() and x.stride(-1) == 1
    inputs, grads = make_inputs(op, 0, 129, torch.float32, "cpu", x=x)
    check_op(op, inputs, grads)


@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_last_dim(op):
    # A transposed input has no unit column stride and must be handled correctly (copied).
    x = torch.randn(33, 6).t().detach().requires_grad_()
    assert x.stride(-1) != 1
    inputs, grads = make_inputs(op, 0, 33, torch.float32, "cpu", x=x)
    check_op(op, inputs, grads)


@pytest.mark.parametrize("op", OPS)
def test_broadcast_upstream_gradient(op):
    # (y * c).sum().backward() hands the kernel a stride-0 gradient.
    inputs, _ = make_inputs(op, 4, 50, torch.float32, "cpu")
    c = torch.randn(50)
    y, _ = call(op, inputs, backend="triton")
    (y * c).sum().backward()
    expected = {k: v.grad.clone() for k, v in inputs.items() if v is not None}
    for v in inputs.values():
        if v is not None:
            v.grad = None
    y, _ = call(op, inputs, backend="torch")
    (y * c).sum().backward()
    for k, g in expected.items():
        torch.testing.assert_close(g, inputs[k].grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["fused_add_rms_norm", "fused_add_layer_norm"])
def test_only_residual_out_used(op):
    inputs, grads = make_inputs(op, 3, 20, torch.float32, "cpu")
    _, res_out = call(op, inputs, backend="triton")
    dres = grads["dres"]
    res_out.backward(dres)
    torch.testing.assert_close(inputs["x"].grad, dres)
    torch.testing.assert_close(inputs["residual"].grad, dres)
    assert torch.count_nonzero(inputs["weight"].grad) == 0


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("op", OPS)
def test_non_finite_row_stays_in_its_row(op, backend):
    inputs, _ = make_inputs(op, 6, 33, torch.float32, "cpu", requires_grad=False)
    inputs["x"][2, 5] = float("nan")
    inputs["x"][4, 7] = float("inf")
    y, _ = call(op, inputs, backend=backend)
    (ref_y, _), _ = call_reference(op, inputs)
    finite_rows = [0, 1, 3, 5]
    assert torch.isfinite(y[finite_rows]).all()
    assert torch.isnan(y[2]).all() and not torch.isfinite(y[4]).all()
    # NaN-aware comparison: non-finite entries must sit exactly where the reference has them.
    assert relative_error(y, ref_y) <= tolerance_for(torch.float32)


def test_many_rows_use_several_backward_programs():
    # 200 rows spread over several interpreter programs: the partial-sum reduction must add them all.
    inputs, grads = make_inputs("layer_norm", 200, 24, torch.float32, "cpu")
    check_op("layer_norm", inputs, grads)


def test_inference_path_matches_training_path():
    inputs, _ = make_inputs("fused_add_rms_norm", 5, 31, torch.float32, "cpu")
    with torch.no_grad():
        y_inf, r_inf = call("fused_add_rms_norm", inputs, backend="triton")
    y_tr, r_tr = call("fused_add_rms_norm", inputs, backend="triton")
    assert torch.equal(y_inf, y_tr.detach()) and torch.equal(r_inf, r_tr.detach())


def test_torch_compile_fullgraph_and_opcheck():
    inputs, grads = make_inputs("fused_add_layer_norm", 4, 48, torch.float32, "cpu")

    def fn(x, r, w, b):
        return tb.fused_add_layer_norm(x, r, w, b, backend="triton")

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    y, res_out = compiled(inputs["x"], inputs["residual"], inputs["weight"], inputs["bias"])
    torch.autograd.backward([y, res_out], [grads["dy"], grads["dres"]])
    eager_inputs = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
    y2, r2 = fn(eager_inputs["x"], eager_inputs["residual"], eager_inputs["weight"], eager_inputs["bias"])
    torch.autograd.backward([y2, r2], [grads["dy"], grads["dres"]])
    torch.testing.assert_close(y, y2)
    for k in inputs:
        torch.testing.assert_close(inputs[k].grad, eager_inputs[k].grad)

    x = torch.randn(3, 16, requires_grad=True)
    r = torch.randn(3, 16, requires_grad=True)
    w = torch.randn(16, requires_grad=True)
    torch.library.opcheck(torch.ops.trinix_bench.norm_fwd.default, (x, r, w, None, 1e-6, 0.0, True, True))
    out = torch.ops.trinix_bench.norm_fwd(x.detach(), None, w.detach(), None, 1e-6, 0.0, True, True)
    dy = torch.randn(3, 16)
    torch.library.opcheck(
        torch.ops.trinix_bench.norm_bwd.default, (dy, None, x.detach(), w.detach(), out[2], out[3], 0.0, True, True, None)
    )


def test_zero_rows_gives_zero_weight_gradient():
    inputs, grads = make_inputs("layer_norm", 0, 8, torch.float32, "cpu")
    y, _ = call("layer_norm", inputs, backend="triton")
    y.backward(grads["dy"])
    assert y.shape == (0, 8)
    assert torch.equal(inputs["weight"].grad, torch.zeros(8)) and torch.equal(inputs["bias"].grad, torch.zeros(8))


@pytest.mark.parametrize("first_chunk_offset", [0.0, 20.0])
def test_looped_path_on_a_narrow_row_with_large_mean(first_chunk_offset):
    # The looped LayerNorm statistics must not cancel: mean 1000, spread 1. The looped kernel
    # shifts by the first chunk's mean, so also move that chunk 20 spreads away from the rest.
    from trinix_bench.ops import launch_config, normalization
    from trinix_bench.reference import layer_norm_reference

    x = torch.randn(3, 2500, dtype=torch.float64).add_(1000.0)
    x[:, :512] += first_chunk_offset
    x = x.float()
    w = torch.randn(2500)
    cfg_small = launch_config.forward_launch(2500, False, max_single_pass=512)
    assert cfg_small.looped and cfg_small.block_n == 512
    original = normalization.forward_launch
    normalization.forward_launch = lambda *_, **__: cfg_small
    try:
        y, _, mean, rstd = normalization.launch_forward(x, None, w, None, 1e-5, 0.0, False, True)
    finally:
        normalization.forward_launch = original
    # fp32 holds 1000 to ~6e-5, so (x - mean) alone carries ~6e-5 relative error; the cancellation
    # of E[x^2] - E[x]^2 would cost ~5e-2. 1e-3 tells the two apart, and the looped path must be
    # within 2x of the single-pass kernel's error on the same rows.
    expected = layer_norm_reference(x, w)
    looped_error = relative_error(y, expected)
    single_error = relative_error(normalization.launch_forward(x, None, w, None, 1e-5, 0.0, False, True)[0], expected)
    assert looped_error < 1e-3 and looped_error <= 2 * single_error + 1e-7, (looped_error, single_error)
    assert relative_error(rstd, 1 / x.double().var(-1, unbiased=False).add(1e-5).sqrt()) < 1e-4


def test_fused_add_rms_norm_loops_from_8192_columns():
    # Pass 2 of the looped kernel re-reads residual_out from L2; it beat the single pass there
    # (run 30), in 8192-column chunks at 16 warps (run 61). Unfused RMSNorm reads a row of 8192
    # twice as one chunk (run 61); LayerNorm keeps the single pass at a full tile (both read rows of
    # 16384 twice: test_rows_of_16384_are_read_twice).
    from trinix_bench.ops.launch_config import forward_launch

    for hidden in (8192, 16384):
        fused = forward_launch(hidden, True, True)
        assert (fused.looped, fused.block_n, fused.num_warps) == (True, 8192, 16)
    assert not forward_launch(4096, True, True).looped
    rms = forward_launch(8192, True, False)
    assert (rms.looped, rms.block_n, rms.num_warps) == (True, 8192, 16) and rms.exact_cover(5, 8192)
    assert not forward_launch(4096, True, False).looped and not forward_launch(15000, True, False).looped
    assert not forward_launch(8192, False, False).looped
    for op in ("fused_add_rms_norm", "rms_norm"):
        inputs, grads = make_inputs(op, 3, 8192, torch.float32, "cpu")
        check_op(op, inputs, grads)


def test_few_rows_read_w_and_b_with_x():
    # runs 78-80: up to 32 rows of 2048-16384 columns, unfused ops read w and b beside x, and
    # RMSNorm at 8192 holds its row instead of reading it twice; fused ops, narrower and looped
    # rows keep their launches
    from trinix_bench.ops.launch_config import early_affine_rows, forward_launch

    assert [early_affine_rows(h) for h in (2047, 2048, 4096, 8192, 16384, 16385)] == [0, 32, 32, 32, 32, 0]
    for hidden in (2048, 4096, 5120, 8192, 16384):
        for is_rms in (True, False):
            many, few = forward_launch(hidden, is_rms), forward_launch(hidden, is_rms, few_rows=True)
            assert few.early_affine and not few.looped and not many.early_affine
            if not (is_rms and hidden == 8192) and hidden != 16384:  # rows read twice with many rows
                assert dataclasses.replace(few, early_affine=False) == many
    assert forward_launch(8192, True).looped and forward_launch(16384, True).looped
    held = forward_launch(8192, True, few_rows=True)
    assert (held.block_n, held.num_warps) == (8192, 16)
    assert (forward_launch(16384, False, few_rows=True).block_n, forward_launch(16384, False).looped) == (16384, True)
    assert not forward_launch(4096, True, True, few_rows=True).early_affine  # fused add keeps its launch
    assert not forward_launch(4096, False, True, few_rows=True).early_affine
    assert forward_launch(12288, True, few_rows=True) == forward_launch(12288, True)  # low fill: still looped


def test_wide_layer_norm_rows_shift_their_statistics():
    # runs 86-87: unfused LayerNorm from 14336 to 16384 columns (the looped and the single-pass
    # kernel) takes its statistics about the row's first element; narrower and wider rows, RMSNorm
    # and the fused op keep theirs, and nothing else of the launch changes
    from trinix_bench.ops.launch_config import _forward_shape, forward_launch

    shifted = {hidden: forward_launch(hidden, False).shifted_stats for hidden in (12288, 14335, 14336, 15000, 16384,
                                                                                   16385)}
    assert shifted == {12288: False, 14335: False, 14336: True, 15000: True, 16384: True, 16385: False}
    assert forward_launch(14336, False).looped and not forward_launch(15000, False).looped
    assert dataclasses.replace(forward_launch(15000, False), shifted_stats=False) == _forward_shape(
        15000, False, False, None, False)
    assert not forward_launch(16384, True).shifted_stats
    assert not forward_launch(16384, False, True).shifted_stats  # fused add + LayerNorm: not measured
    assert forward_launch(16384, False, few_rows=True).shifted_stats


def test_rows_of_16384_are_read_twice():
    # runs 90-91: unfused rows of 16384 columns take the looped kernel on one chunk at 16 warps,
    # its second pass in 4096 (RMSNorm) or 8192 (LayerNorm, statistics shifted) columns; RMSNorm at
    # 8192 keeps one pass of 8192; the fused add, a few rows and the neighbours keep their launches
    from trinix_bench.ops.launch_config import forward_launch

    launches = {op: forward_launch(16384, op == "rms") for op in ("rms", "ln")}
    assert {op: (c.looped, c.block_n, c.num_warps, c.out_block_n) for op, c in launches.items()} == {
        "rms": (True, 16384, 16, 4096), "ln": (True, 16384, 16, 8192)}
    assert launches["ln"].shifted_stats and not launches["rms"].shifted_stats
    assert forward_launch(8192, True).out_block_n == 8192
    assert forward_launch(16384, True, True).out_block_n == 0  # fused add: its own looped launch
    assert not forward_launch(16384, True, few_rows=True).looped
    assert not forward_launch(15000, True).looped and not forward_launch(15000, False).looped


def test_looped_rows_write_y_back_to_front_by_width_and_op():
    # REVERSE_OUT_FROM: the fused ops from 131072 columns, unfused RMSNorm from 196608, unfused
    # LayerNorm never; only looped launches take it.
    from trinix_bench.ops.launch_config import forward_launch

    def reversed_ops(hidden):
        return {(is_rms, fused) for is_rms in (True, False) for fused in (True, False)
                if forward_launch(hidden, is_rms, fused).reverse_out}

    assert reversed_ops(4096) == reversed_ops(16384) == reversed_ops(98304) == set()
    assert reversed_ops(131072) == {(True, True), (False, True)}
    assert reversed_ops(196608) == reversed_ops(262144) == {(True, True), (False, True), (True, False)}
    assert forward_launch(262144, True).looped and not forward_launch(4096, True, True).reverse_out


def test_looped_rows_store_y_streamed_by_width_and_op():
    # STREAMED_Y_FROM: unfused RMSNorm from 65536 columns, unfused LayerNorm from 196608, never the
    # fused ops; narrower looped rows keep the default store.
    from trinix_bench.ops.launch_config import forward_launch

    def streamed_ops(hidden):
        return {(is_rms, fused) for is_rms in (True, False) for fused in (True, False)
                if forward_launch(hidden, is_rms, fused).y_cache == ".cs"}

    assert streamed_ops(8192) == streamed_ops(18432) == streamed_ops(65535) == set()
    assert streamed_ops(65536) == streamed_ops(131072) == {(True, False)}
    assert streamed_ops(196608) == streamed_ops(262144) == {(True, False), (False, False)}
    assert forward_launch(28672, True).looped and forward_launch(28672, True).y_cache == ""


@pytest.mark.parametrize("y_cache", [".cs", "evict_first"])
@pytest.mark.parametrize("looped", [False, True])
@pytest.mark.parametrize("op", OPS)
def test_forward_stores_y_under_each_cache_policy(op, looped, y_cache, monkeypatch):
    # ForwardLaunch.y_cache reaches both forward kernels (the interpreter ignores the policy; the
    # GPU suite's wide rows run the streamed stores the tables pick) and y stays right.
    from trinix_bench.ops import launch_config

    fwd = launch_config.ForwardLaunch(32 if looped else 128, 1, 4, looped, y_cache=y_cache)
    _force_launches(monkeypatch, fwd, "HELD_FP32")
    policies = recorded_flags(monkeypatch, "Y_CACHE")
    inputs, grads = make_inputs(op, 5, 70, torch.bfloat16, "cpu")
    check_op(op, inputs, grads)
    assert policies == [y_cache, None]


@pytest.mark.parametrize("reverse_out", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("hidden", [60, 64, 130])
@pytest.mark.parametrize("op", OPS)
def test_looped_forward_writes_y_in_narrower_chunks(op, hidden, dtype, reverse_out, monkeypatch):
    # The looped forward's second pass in chunks of 16 columns under 64-column first-pass chunks
    # (out_block_n): one masked chunk, one exact chunk (ONE_CHUNK) and three chunks, LayerNorm's
    # statistics shifted, forward and backward against float64; front to back and back to front
    # (reverse_out: 130 columns end in a 2-column chunk, which is then written first).
    from trinix_bench.ops import launch_config

    fwd = launch_config.ForwardLaunch(64, 1, 4, True, (0, 0), shifted_stats=True, out_block_n=16,
                                      reverse_out=reverse_out)
    _force_launches(monkeypatch, fwd, "HELD_FP32")
    flags = recorded_flags(monkeypatch, "OUT_BLOCK_N")
    reverse_flags = recorded_flags(monkeypatch, "REVERSE_OUT")
    inputs, grads = make_inputs(op, 3, hidden, dtype, "cpu")
    check_op(op, inputs, grads)
    assert flags == [16, None]  # the backward has no such flag
    assert reverse_flags == [reverse_out, None]


def test_row_alignment_is_the_largest_vector_dividing_width_and_strides():
    # ROW_ALIGN: 1 wherever Triton's own specialization (multiples of 16) proves the alignment;
    # otherwise the largest power of two dividing the width and every row stride, at most one
    # 16-byte vector (8 bf16 / fp16, 4 fp32, 2 fp64).
    from trinix_bench.ops.normalization import row_alignment

    assert row_alignment(2, 4096) == row_alignment(2, 4096, 8192, 4096) == row_alignment(4, 70000) == 1
    assert row_alignment(2, 65544) == row_alignment(2, 1000) == row_alignment(2, 40, 56, 40) == 8
    assert row_alignment(4, 65544) == row_alignment(4, 40, 56) == 4 and row_alignment(8, 1000) == 2
    assert row_alignment(2, 4096, 4100) == 4  # a stride can be what limits it
    assert row_alignment(2, 12, 16) == 4 and row_alignment(2, 4096, 4098) == 2
    assert row_alignment(2, 65537) == row_alignment(2, 4096, 4097) == row_alignment(2, 1) == 1


@pytest.mark.parametrize("dtype, align", [(torch.bfloat16, 8), (torch.float32, 4)])
@pytest.mark.parametrize("looped", [False, True])
@pytest.mark.parametrize("op", OPS)
def test_rows_aligned_below_16_elements_launch_their_alignment(op, looped, dtype, align, monkeypatch):
    # 40 columns sliced out of rows of 56 (both 8 x odd): every kernel, forward and backward,
    # single pass (32 + 8 tiles) or looped (16-column chunks, the last one masked), compiles with
    # ROW_ALIGN and restates the width and strides as its multiples; the results must match
    # float64 (a ROW_ALIGN the values do not divide would move rows and cut columns).
    from trinix_bench.ops import launch_config

    fwd = launch_config.ForwardLaunch(16 if looped else 32, 1, 4, looped, (0, 0) if looped else (8, 0))
    _force_launches(monkeypatch, fwd, "HELD_NARROW")
    aligns = recorded_flags(monkeypatch, "ROW_ALIGN")
    base = torch.randn(6, 56, dtype=torch.float32).to(dtype) + 0.5
    x = base[:, 8:48].detach().requires_grad_()
    assert x.stride(0) == 56 and x.data_ptr() % 16 == 0
    inputs, grads = make_inputs(op, 0, 40, dtype, "cpu", x=x)
    check_op(op, inputs, grads)
    assert aligns == [align, align]


def test_row_phase_vector_for_rows_off_the_vector_boundary():
    # PHASE_VECTOR: a 16-byte vector's elements where the width or a row stride leaves row starts
    # off its boundary and the strides agree modulo it; 0 where rows are whole vectors already
    # (Triton's specialization or ROW_ALIGN), where the strides disagree, or for narrow rows.
    from trinix_bench.ops.normalization import row_phase_vector

    assert row_phase_vector(2, 65537) == row_phase_vector(2, 65537, 65537, 65545) == 8
    assert row_phase_vector(4, 65537) == 4 and row_phase_vector(2, 4096, 4097) == 8
    assert row_phase_vector(2, 65538, 65538) == row_phase_vector(2, 33, 33) == 8 and row_phase_vector(4, 70, 70) == 4
    assert row_phase_vector(2, 4096, 4096) == row_phase_vector(2, 65544, 65544) == row_phase_vector(2, 40, 56) == 0
    assert row_phase_vector(2, 65537, 65537, 65538) == 0  # x's body would start at another column than y's
    assert row_phase_vector(2, 31, 31) == row_phase_vector(4, 15, 15) == 0  # under four vectors


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("hidden, chunk, sliced, variant", [
    (67, 16, False, {}), (127, 32, True, {}), (67, 16, True, {"shifted_stats": True}),
    (127, 64, False, {"out_block_n": 16, "reverse_out": True}), (61, 64, False, {}), (4097, 1024, True, {}),
])
@pytest.mark.parametrize("op", OPS)
def test_looped_forward_reads_rows_off_the_vector_boundary_by_phase(op, hidden, chunk, sliced, variant, dtype,
                                                                    monkeypatch):
    # Odd widths (one chunk, several, a masked last one; y back to front; LayerNorm's shift by the
    # first element), contiguous or sliced out of rows 8 columns wider at an odd column (x's rows
    # then start at another phase than y's, and its base off the vector boundary): the looped
    # forward launches with PHASE_VECTOR, each row read as head, aligned body and tail, and must
    # meet float64 forward and backward.
    from trinix_bench.ops import launch_config

    fwd = launch_config.ForwardLaunch(chunk, 1, 4, True, **variant)
    _force_launches(monkeypatch, fwd, "HELD_NARROW")
    phases = recorded_flags(monkeypatch, "PHASE_VECTOR")
    x = None
    if sliced:
        base = torch.randn(7, hidden + 8, dtype=torch.float32).to(dtype) + 0.5
        x = base[:, 3:3 + hidden].detach().requires_grad_()
    inputs, grads = make_inputs(op, 7, hidden, dtype, "cpu", x=x)
    check_op(op, inputs, grads)
    assert phases == [16 // dtype.itemsize, None]  # the backward has no such flag


@pytest.mark.parametrize("op", OPS)
def test_calls_read_rows_twice_by_width(op, monkeypatch, forward_tables):
    # READ_TWICE_FWD shrunk to interpreter sizes (64 columns: second pass in 16 columns for RMSNorm,
    # 32 for LayerNorm): each call's forward launches the looped kernel on one chunk, or not.
    forward_tables(READ_TWICE_FWD={True: ((64, 64, 64, 4, 16),), False: ((64, 64, 64, 4, 32),)})
    flags = recorded_flags(monkeypatch, "OUT_BLOCK_N")
    for hidden in (64, 60):
        inputs, grads = make_inputs(op, 5, hidden, torch.bfloat16, "cpu")
        check_op(op, inputs, grads)
    fused = op.startswith("fused")
    assert flags == [None if fused else (16 if "rms" in op else 32), None, None, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("op", OPS)
def test_calls_launch_shifted_statistics_by_width_and_dtype(op, dtype, monkeypatch, forward_tables):
    # The width picks the shift per call and 32-bit rows never take it: the range shrunk to
    # interpreter sizes, each call's forward flag recorded, results checked against float64.
    forward_tables(SHIFTED_STATS_FWD=(40, 64))
    flags = recorded_flags(monkeypatch, "SHIFTED_STATS")
    for hidden in (40, 64, 65, 39):
        inputs, grads = make_inputs(op, 3, hidden, dtype, "cpu")
        check_op(op, inputs, grads)
    takes_it = op == "layer_norm" and dtype == torch.float16
    assert flags == [takes_it, None, takes_it, None, False, None, False, None]


@pytest.mark.parametrize("op", OPS)
def test_calls_with_few_rows_launch_the_early_read(op, monkeypatch, forward_tables):
    # The row count picks the launch per call: the limits shrunk to interpreter sizes (at most 4
    # rows of 16 columns or more) and the flag each call's forward launched with, checked against
    # float64.
    forward_tables(EARLY_AFFINE_MAX_ROWS=4, EARLY_AFFINE_MIN_HIDDEN=16)
    flags = recorded_flags(monkeypatch, "EARLY_AFFINE")
    for rows, hidden in ((4, 40), (5, 40), (3, 15)):
        inputs, grads = make_inputs(op, rows, hidden, torch.float32, "cpu")
        check_op(op, inputs, grads)
    fused = op.startswith("fused")
    # forward then backward per call; 15 columns are narrower than the table's narrowest width
    assert flags == [not fused, None, False, None, False, None]


@pytest.mark.parametrize("op, hidden", [("rms_norm", 12000), ("fused_add_rms_norm", 12000),
                                        ("layer_norm", 17000), ("fused_add_layer_norm", 17000)])
def test_low_fill_rows_take_the_looped_forward(op, hidden):
    # Rows filling little of their power-of-two tile go through the looped forward kernel.
    from trinix_bench.ops.launch_config import forward_launch

    assert forward_launch(hidden, "rms" in op).looped
    inputs, grads = make_inputs(op, 3, hidden, torch.float32, "cpu")
    check_op(op, inputs, grads)


@pytest.mark.parametrize("op", ["rms_norm", "layer_norm"])
@pytest.mark.parametrize("params", ["frozen", "none"])
def test_compiled_backward_without_parameter_gradients(op, params):
    # A frozen norm (LoRA fine-tuning) or no weight at all: the backward op returns no dw/db, and
    # its placeholders must not alias each other under torch.compile.
    inputs, grads = make_inputs(op, 4, 32, torch.float32, "cpu", weight=params == "frozen", bias=params == "frozen")
    for name in ("weight", "bias"):
        if inputs[name] is not None:
            inputs[name].requires_grad_(False)

    def fn(inp):
        return call(op, inp, backend="triton")[0]

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    compiled(inputs).backward(grads["dy"])
    got = inputs["x"].grad.clone()
    inputs["x"].grad = None
    fn(inputs).backward(grads["dy"])
    torch.testing.assert_close(got, inputs["x"].grad)


@pytest.mark.parametrize("compute_dw, db_dtype", [(True, None), (False, torch.float32), (False, None)])
def test_backward_op_fake_matches_real_with_mixed_dtypes(compute_dw, db_dtype):
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    w = torch.randn(16, dtype=torch.float32)
    b = torch.randn(16, dtype=torch.float32)
    out = torch.ops.trinix_bench.norm_fwd(x, None, w, b, 1e-5, 0.0, False, True)
    dy = torch.randn(3, 16, dtype=torch.bfloat16)
    torch.library.opcheck(torch.ops.trinix_bench.norm_bwd.default,
                          (dy, None, x, w, out[2], out[3], 0.0, False, compute_dw, db_dtype))


@pytest.mark.parametrize("op", OPS)
def test_strided_weight_and_bias(op):
    # Parameters that are views with a stride (w[::2]) must be read correctly, not at unit stride.
    inputs, grads = make_inputs(op, 5, 40, torch.float32, "cpu")
    for name in ("weight", "bias"):
        if inputs[name] is not None:
            inputs[name] = torch.randn(80)[::2].requires_grad_()
    check_op(op, inputs, grads)


@pytest.mark.parametrize("op", ["layer_norm", "fused_add_layer_norm"])
def test_bias_gradient_keeps_the_bias_dtype(op):
    # bf16 activations with an fp32 bias and no weight: db is an fp32 sum, not rounded to bf16.
    inputs, grads = make_inputs(op, 64, 48, torch.bfloat16, "cpu", weight=False, param_dtype=torch.float32)
    check_op(op, inputs, grads)
    assert inputs["bias"].grad.dtype == torch.float32
    expected = grads["dy"].double().sum(0)
    assert relative_error(inputs["bias"].grad, expected) < tolerance_for(torch.float32)


def test_launch_arguments_key_separates_what_triton_specializes_on():
    from trinix_bench.ops.normalization import launch_arguments

    def key(*args, unspecialized=frozenset()):
        return launch_arguments(args, unspecialized)[0]

    t = torch.randn(64)
    base = key(t, 4096, 1e-6)
    assert key(torch.randn(64), 4096, 1e-6) == base  # same class, new data
    assert key(t[1:], 4096, 1e-6) != base  # 4-byte offset: not 16-aligned
    assert key(t.half(), 4096, 1e-6) != base  # dtype
    assert key(t, 1, 1e-6) != base  # an int equal to 1 is a constant
    assert key(t, 4097, 1e-6) != base  # not a multiple of 16
    assert key(t, 2**31 + 16, 1e-6) != base  # 64-bit integer
    assert key(t, 2**63 + 16, 1e-6) != key(t, 2**31 + 16, 1e-6)  # unsigned 64-bit
    # do_not_specialize slots ignore value flags but not the integer width
    assert key(t, 7, 1e-6, unspecialized=frozenset({1})) == key(t, 16, 1e-6, unspecialized=frozenset({1}))
    assert key(t, 2**31, 1e-6, unspecialized=frozenset({1})) != key(t, 16, 1e-6, unspecialized=frozenset({1}))


def test_launch_arguments_pass_tensors_as_their_addresses():
    # The cached launch hands Triton's launcher each tensor's address (it then skips data_ptr()
    # and the driver's pointer check); other arguments go through unchanged, in order.
    from trinix_bench.ops.normalization import launch_arguments

    x, w = torch.randn(3, 5), torch.randn(7)
    _, values = launch_arguments((x, 5, w[2:], 0.5, 3), frozenset({4}))
    assert values == [x.data_ptr(), 5, w.data_ptr() + 2 * w.element_size(), 0.5, 3]
    assert all(type(v) in (int, float) for v in values)


@pytest.mark.parametrize("row_stages", [1, 3])
@pytest.mark.parametrize("rows, hidden, blocks_per_strip", [(11, 4097, 4), (101, 97, 2)])
@pytest.mark.parametrize("op", OPS)
def test_backward_row_stages_and_ragged_strips(op, rows, hidden, blocks_per_strip, row_stages, monkeypatch):
    # The single-pass backward's row loop, pipelined or not, over strips of a few blocks (1 row a
    # block at 4097 columns, 32 at 97) whose last strip and last block are ragged.
    from trinix_bench.ops import normalization

    table_launch = normalization.backward_launch

    def launch(n_rows, n_cols, device, is_rms, dtype, force_looped=False):
        cfg = table_launch(n_rows, n_cols, device, is_rms, dtype, force_looped)
        rows_per_program = blocks_per_strip * cfg.block_m
        return dataclasses.replace(cfg, programs=-(-n_rows // rows_per_program), rows_per_program=rows_per_program,
                                   row_stages=row_stages)

    monkeypatch.setattr(normalization, "backward_launch", launch)
    inputs, grads = make_inputs(op, rows, hidden, torch.float32, "cpu")
    check_op(op, inputs, grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("operands", ["HELD_FP32", "RELOADED", "HELD_NARROW"])
@pytest.mark.parametrize("rows, hidden", [(3, 127), (5, 1000)])
@pytest.mark.parametrize("op", OPS)
def test_backward_dx_operands(op, rows, hidden, operands, dtype, monkeypatch):
    # Each place dx may take x and dy from (held fp32, read again, held in the input dtype and
    # widened by bit operations for bf16) gives the same gradients, fused ops' residual grad included.
    from trinix_bench.ops import launch_config, normalization

    table_launch = normalization.backward_launch

    def launch(n_rows, n_cols, device, is_rms, dtype, force_looped=False):
        cfg = table_launch(n_rows, n_cols, device, is_rms, dtype, force_looped)
        return dataclasses.replace(cfg, dx_operands=launch_config.DxOperands[operands], row_stages=2)

    monkeypatch.setattr(normalization, "backward_launch", launch)
    inputs, grads = make_inputs(op, rows, hidden, dtype, "cpu")
    check_op(op, inputs, grads)


def test_backward_table_at_16k_columns():
    # The 16384-column tile only fits its registers when x and dy are not held in fp32 (runs 26-27);
    # 16-bit rows also read w' again per row, at 3 stages, LayerNorm's as two 8192 tiles (runs 54-56).
    from trinix_bench.ops.launch_config import DxOperands, backward_launch

    cpu = torch.device("cpu")
    rms, ln = (backward_launch(4096, 16384, cpu, is_rms, torch.bfloat16) for is_rms in (True, False))
    assert (rms.looped, rms.block_n, rms.tail_n, rms.row_stages, rms.dx_operands, rms.reload_weight) == (
        False, 16384, (0, 0), 3, DxOperands.HELD_NARROW, True)
    assert (ln.looped, ln.block_n, ln.tail_n, ln.row_stages, ln.dx_operands, ln.reload_weight) == (
        False, 8192, (8192, 0), 3, DxOperands.HELD_NARROW, True)
    assert not ln.masked(4096, 16384) and ln.masked(4096, 15000)  # the second tile idles past 15000
    # bf16 LayerNorm's two tiles spill with the row sums reduced jointly, so it keeps one tl.sum
    # each (run 68), as does LayerNorm 5120 (run 69); every other launch reduces them jointly
    assert not ln.joint_sums and backward_launch(4096, 8192, cpu, False, torch.bfloat16).joint_sums
    assert not backward_launch(4096, 5120, cpu, False, torch.bfloat16).joint_sums
    assert backward_launch(4096, 12288, cpu, False, torch.bfloat16).joint_sums
    # fp16 RMSNorm takes the bf16 launch; fp16 LayerNorm spilled on it and keeps one tile read again
    # (run 57), unmasked since its joint sums stopped the spill (run 68); fp32 RMSNorm keeps one
    # stage and w held (three stages of fp32 tiles pass the shared memory)
    rms16, ln16 = (backward_launch(4096, 16384, cpu, is_rms, torch.float16) for is_rms in (True, False))
    assert rms16 == rms
    assert (ln16.block_n, ln16.tail_n, ln16.row_stages, ln16.dx_operands, ln16.reload_weight, ln16.joint_sums) == (
        16384, (0, 0), 2, DxOperands.RELOADED, False, True)
    assert not ln16.masked(4096, 16384) and ln16.masked(4096, 16000)
    rms32 = backward_launch(4096, 16384, cpu, True, torch.float32)
    assert (rms32.block_n, rms32.row_stages, rms32.reload_weight) == (16384, 1, False)
    for hidden in (12288, 16384):
        # fp32 LayerNorm rows would stage four 64 KB tiles: past the shared memory, so looped
        assert backward_launch(4096, hidden, cpu, False, torch.float32).looped
    assert backward_launch(4096, 8192, cpu, False, torch.bfloat16).dx_operands is DxOperands.HELD_FP32
    assert not backward_launch(4096, 8192, cpu, False, torch.bfloat16).reload_weight
    assert backward_launch(4096, 30000, cpu, True, torch.bfloat16).looped  # past the split table's fill limit too


def test_row_loop_rejects_a_tile_count_the_backward_cannot_hold():
    from trinix_bench.ops.launch_config import DxOperands, RowLoop

    assert RowLoop(3, DxOperands.HELD_NARROW, equal_tiles=2).equal_tiles == 2
    with pytest.raises(ValueError, match="equal_tiles must be 1 or 2, got 4"):
        RowLoop(3, DxOperands.HELD_NARROW, equal_tiles=4)


def test_split_tile_tables_take_the_measured_widths():
    # runs 41-51: split tiles won the forward at 5120 (both ops) and LayerNorm 7168 / 12288, the
    # 16-bit backward at 5120 / 12288 / 14336 (both ops) and RMSNorm 18432 / 28672; the padded tile
    # or the looped kernel kept every other width measured.
    from trinix_bench.ops.launch_config import DxOperands, backward_launch, forward_launch

    cpu = torch.device("cpu")
    for is_rms in (True, False):
        cfg = forward_launch(5120, is_rms)
        assert (cfg.block_n, cfg.tail_n, cfg.num_warps, cfg.looped) == (4096, (1024, 0), 4, False)
        assert forward_launch(8192, is_rms).tail_n == (0, 0) and forward_launch(4096, is_rms).tail_n == (0, 0)
        for hidden in (12288, 14336):
            bwd = backward_launch(4096, hidden, cpu, is_rms, torch.bfloat16)
            # LayerNorm 12288 holds x and dy in fp32 and reads w' again per row (runs 54-56)
            held = hidden == 12288 and not is_rms
            assert (bwd.block_n, bwd.tail_n[0], bwd.row_stages, bwd.dx_operands, bwd.reload_weight) == (
                8192, 4096, 3, DxOperands.HELD_FP32 if held else DxOperands.RELOADED, held)
            assert backward_launch(4096, hidden, cpu, is_rms, torch.float32).tail_n == (0, 0)  # fp32: shared memory
        assert backward_launch(4096, 14336, cpu, is_rms, torch.bfloat16).tail_n == (4096, 2048)
    assert forward_launch(7168, False).tail_n == (2048, 1024) and forward_launch(7168, True).tail_n == (0, 0)
    assert forward_launch(12288, False).tail_n == (4096, 0) and forward_launch(12288, True).looped
    for is_rms, warps in ((True, 8), (False, 4)):
        narrow = backward_launch(4096, 5120, cpu, is_rms, torch.bfloat16)
        assert (narrow.tail_n, narrow.num_warps, narrow.row_stages, narrow.dx_operands) == (
            (1024, 0), warps, 4, DxOperands.HELD_FP32)
    # past the padded tile's single-pass limit, reading w' again per row (runs 54-56): RMSNorm 18432 =
    # 16384 + 2048 held narrow at 3 stages, 28672 = 16384 + 8192 + 4096 read again at 1; LayerNorm
    # 18432 read again at 2 stages, 28672 looped, and so does a device that cannot fit the launch
    wide = backward_launch(4096, 18432, cpu, True, torch.bfloat16)
    assert (wide.looped, wide.block_n, wide.tail_n, wide.num_warps, wide.row_stages, wide.dx_operands,
            wide.reload_weight) == (False, 16384, (2048, 0), 16, 3, DxOperands.HELD_NARROW, True)
    wider = backward_launch(4096, 28672, cpu, True, torch.bfloat16)
    assert (wider.looped, wider.tail_n, wider.row_stages, wider.reload_weight) == (False, (8192, 4096), 1, True)
    ln_wide = backward_launch(4096, 18432, cpu, False, torch.bfloat16)
    assert (ln_wide.looped, ln_wide.tail_n, ln_wide.row_stages, ln_wide.dx_operands, ln_wide.reload_weight) == (
        False, (2048, 0), 2, DxOperands.RELOADED, True)
    assert backward_launch(4096, 28672, cpu, False, torch.bfloat16).looped
    assert backward_launch(4096, 18432, cpu, True, torch.bfloat16, force_looped=True).looped


def test_rows_filling_up_to_seven_eighths_of_their_tile_loop_forward():
    # run 48: 14336 and 28672 (0.875 of their tile) loop too; chunks and warps by op and width
    from trinix_bench.ops.launch_config import forward_launch

    def chunks(hidden, is_rms):
        cfg = forward_launch(hidden, is_rms)
        return cfg.looped, cfg.block_n, cfg.num_warps

    assert chunks(14336, True) == (True, 8192, 8) and chunks(14336, False) == (True, 2048, 8)
    assert chunks(18432, True) == (True, 4096, 16) and chunks(18432, False) == (True, 2048, 8)
    assert chunks(28672, True) == (True, 4096, 16) and chunks(28672, False) == (True, 4096, 16)
    assert not forward_launch(15000, True).looped and not forward_launch(15000, False).looped  # 0.92 of 16384


def test_rows_past_16384_columns_loop_forward_at_the_wide_row_chunks():
    # run 75: every row past 16384 columns loops, whatever its fill; wider rows take wider chunks
    # at more warps (fused add + RMSNorm from its own table)
    from trinix_bench.ops.launch_config import forward_launch

    def chunks(hidden, is_rms, has_residual=False):
        cfg = forward_launch(hidden, is_rms, has_residual)
        assert cfg.looped and cfg.block_m == 1
        return cfg.block_n, cfg.num_warps

    assert chunks(30000, True) == (16384, 16) and chunks(32768, True) == (16384, 16)
    assert chunks(32769, True) == (32768, 32) and chunks(262144, True) == (32768, 32)
    assert chunks(30000, False) == (4096, 16) and chunks(32768, False) == (4096, 16)
    assert chunks(65536, False) == (8192, 16) and chunks(98304, False) == (16384, 32)
    assert chunks(65536, True, True) == (8192, 16) and chunks(131072, True, True) == (16384, 32)
    assert chunks(70000, False, True) == (16384, 32)  # LayerNorm with a residual follows LayerNorm
    # a caller's max_single_pass caps the looped chunk too
    assert forward_launch(100000, True, max_single_pass=4096).block_n == 4096


def test_wide_rows_take_the_wide_looped_backward():
    # run 75: from 32768 columns the looped backward takes 8192-column chunks at 32 warps, one
    # program per SM; narrower looped rows keep 4096 at 8 warps, two per SM
    from trinix_bench.ops.launch_config import backward_launch, multiprocessor_count

    cpu = torch.device("cpu")
    programs = multiprocessor_count(cpu)
    narrow = backward_launch(4096, 28672, cpu, False, torch.bfloat16)
    assert (narrow.looped, narrow.block_n, narrow.num_warps, narrow.programs_per_sm) == (True, 4096, 8, 2)
    assert narrow.programs == 2 * programs
    for is_rms in (True, False):
        wide = backward_launch(4096, 32768, cpu, is_rms, torch.bfloat16)
        assert (wide.looped, wide.block_n, wide.num_warps, wide.programs_per_sm) == (True, 8192, 32, 1)
        assert wide.programs == programs and wide.rows_per_program * wide.programs >= 4096
    single = backward_launch(4096, 8192, cpu, True, torch.bfloat16)
    assert not single.looped and single.programs_per_sm == 1 and single.programs == programs


@pytest.mark.parametrize("per_sm", [1, 2])
@pytest.mark.parametrize("block_m", [1, 4])
def test_row_strips_cover_the_rows_in_whole_blocks(block_m, per_sm):
    # with_row_strips (backward_launch's grid, and the probes'): every row in one strip, strips of
    # whole row blocks, no program without rows, at most per_sm programs an SM.
    from trinix_bench.ops.launch_config import BackwardLaunch, DxOperands, multiprocessor_count, with_row_strips

    cpu = torch.device("cpu")
    shape = BackwardLaunch(64, block_m, 4, False, 0, 0, 1, DxOperands.HELD_FP32, programs_per_sm=per_sm)
    max_programs = multiprocessor_count(cpu) * per_sm
    for rows in (1, 2, 3, 5, 7, 8, 9, 17, 33, 100):
        cfg = with_row_strips(shape, rows, cpu)
        assert cfg.rows_per_program % block_m == 0
        assert (cfg.programs - 1) * cfg.rows_per_program < rows <= cfg.programs * cfg.rows_per_program
        assert cfg.programs <= max_programs
    assert with_row_strips(shape, 100, cpu).programs == max_programs


@pytest.mark.parametrize("is_rms", [True, False])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_backward_notation_reads_back_every_table_launch(is_rms, dtype):
    # The probes print a launch in this notation and read it back (backward_ab candidates,
    # offline_resources specs): every launch the tables pick, single pass and looped, survives.
    from trinix_bench.ops.launch_config import _backward_shape, backward_notation, parse_backward_notation

    for hidden in (512, 5120, 8192, 12288, 16384, 18432, 28672, 65536):
        shape = _backward_shape(hidden, is_rms, dtype, False)
        text = backward_notation(shape, 64, hidden)
        # a single pass named masked reads back as keeping its masks; the looped kernel's are its own
        expected = shape if shape.looped else dataclasses.replace(shape, keep_masks=shape.masked(64, hidden))
        assert parse_backward_notation(text) == expected, text
        assert backward_notation(parse_backward_notation(text), 64, hidden) == text


def test_backward_notation_names_options_in_order():
    from trinix_bench.ops.launch_config import BackwardLaunch, DxOperands, backward_notation, parse_backward_notation

    launch = parse_backward_notation("4096+1024/w8/s4/HELD_FP32/reload/separate/affine")
    assert (launch.block_n, launch.tail_n, launch.block_m, launch.num_warps, launch.row_stages) == (
        4096, (1024, 0), 1, 8, 4)
    assert launch.reload_weight and not launch.joint_sums and launch.affine_dx and not launch.keep_masks
    assert backward_notation(launch, 64, 5120) == "4096+1024/w8/s4/HELD_FP32/reload/separate/affine"
    # a launch with lanes left over is named masked; masked read back keeps the masks
    assert backward_notation(launch, 64, 5000) == "4096+1024/w8/s4/HELD_FP32/reload/masked/separate/affine"
    assert parse_backward_notation("256/w4/s2/RELOADED/masked").keep_masks
    looped = BackwardLaunch(8192, 1, 32, True, 0, 0, 2, DxOperands.HELD_FP32, programs_per_sm=1)
    assert backward_notation(looped, 64, 65536) == "looped/8192/w32/p1/s2"
    assert parse_backward_notation("looped/8192/w32/p1/s2") == looped


def test_backward_notation_names_programs_per_sm_where_not_one():
    from trinix_bench.ops.launch_config import backward_notation, parse_backward_notation

    two = parse_backward_notation("4096+1024/w4/s4/HELD_FP32/separate/p2")
    assert two.programs_per_sm == 2 and not two.joint_sums and two.tail_n == (1024, 0)
    assert backward_notation(two, 64, 5120) == "4096+1024/w4/s4/HELD_FP32/separate/p2"
    one = parse_backward_notation("4096/w8/s3/HELD_FP32")
    assert one.programs_per_sm == 1 and backward_notation(one, 64, 4096) == "4096/w8/s3/HELD_FP32"
    assert parse_backward_notation("4096/w8/s3/HELD_FP32/p1") == one


def test_single_pass_programs_per_sm_default_follows_the_table(monkeypatch):
    # A RowLoop without its own programs an SM takes BACKWARD_PROGRAMS_PER_SM's single-pass entry
    # when the launch is built, so the probes that set that entry reach every single pass.
    from trinix_bench.ops import launch_config

    monkeypatch.setitem(launch_config.BACKWARD_PROGRAMS_PER_SM, False, 3)
    launch_config.backward_launch.cache_clear()
    try:
        cpu = torch.device("cpu")
        assert launch_config.backward_launch(64, 4096, cpu, True, torch.bfloat16).programs_per_sm == 3
        assert launch_config.backward_launch(64, 5120, cpu, False, torch.bfloat16).programs_per_sm == 2
        assert launch_config.parse_backward_notation("4096/w8/s3/HELD_FP32").programs_per_sm == 3
    finally:
        launch_config.backward_launch.cache_clear()
    with pytest.raises(ValueError, match="programs_per_sm"):
        launch_config.RowLoop(1, launch_config.DxOperands.RELOADED, programs_per_sm=-1)


@pytest.mark.parametrize("launch", [None, (16, 4, 1)])
@pytest.mark.parametrize("n_partials", [1, 3, 70])
@pytest.mark.parametrize("n_cols", [1, 3, 127, 4097])
@pytest.mark.parametrize("dtypes", [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float32),
                                    (torch.float32, None), (None, torch.bfloat16)])
def test_sum_partials_adds_the_partial_rows_in_one_launch(n_partials, n_cols, dtypes, launch, monkeypatch):
    # The backward's dw / db: the fp32 partial rows summed over programs, each in its own dtype,
    # both from one launch, the same bits on a second call; None where a gradient is not wanted.
    # Under the table's launch and a small one whose row loop and column blocks run several times.
    from trinix_bench.ops import launch_config, normalization

    if launch is not None:
        monkeypatch.setattr(normalization, "PARTIAL_SUM", launch_config.PartialSumLaunch(*launch))
    launched = recorded_flags(monkeypatch, "BLOCK_ROWS", normalization._sum_partials_kernel)
    dw_dtype, db_dtype = dtypes
    partials = [torch.randn(n_partials, n_cols) * 3 + 0.5 if dt is not None else None for dt in dtypes]
    sums = normalization._sum_partials(*partials, dw_dtype, db_dtype)
    again = normalization._sum_partials(*partials, dw_dtype, db_dtype)
    assert len(launched) == 2
    for partial, dtype, total, total_again in zip(partials, dtypes, sums, again):
        if dtype is None:
            assert total is None
            continue
        assert total.dtype == dtype and total.shape == (n_cols,)
        assert relative_error(total, partial.double().sum(0)) <= tolerance_for(dtype)
        assert torch.equal(total, total_again)


def test_layer_norm_5120_backward_runs_two_programs_an_sm():
    # run 119: LayerNorm's 4-warp 16-bit launch at 5120 leaves room for two programs an SM
    # (16384x5120 82 -> 84% of copy, 32768x5120 86 -> 89%); RMSNorm's 8-warp one lost at two.
    from trinix_bench.ops.launch_config import backward_launch, multiprocessor_count

    cpu = torch.device("cpu")
    for dtype in (torch.bfloat16, torch.float16):
        layer = backward_launch(8192, 5120, cpu, False, dtype)
        assert (layer.looped, layer.block_n, layer.tail_n, layer.num_warps, layer.programs_per_sm) == (
            False, 4096, (1024, 0), 4, 2)
        assert layer.programs == 2 * multiprocessor_count(cpu)
        assert backward_launch(8192, 5120, cpu, True, dtype).programs_per_sm == 1
    assert backward_launch(8192, 8192, cpu, False, torch.bfloat16).programs_per_sm == 1
    assert backward_launch(8192, 5120, cpu, False, torch.float32).programs_per_sm == 1


@pytest.mark.parametrize("text", ["8/16/s1/RELOADED", "8/w4/s1/RELOADED/fast", "8/w4/s1/HELD", "8/w4/s1",
                                  "8+4+2+1/w4/s1/RELOADED", "wide/w4/s1/RELOADED", "8/w0/s1/RELOADED",
                                  "looped/8192/w32/p1", "looped/8192/w32/s1/p1", "looped/wide/w32/p1/s1", "",
                                  "8/w4/s1/RELOADED/p0", "8/w4/s1/RELOADED/px", "8/w4/s1/RELOADED/p2/reload"])
def test_a_malformed_backward_notation_names_the_expected_form(text):
    from trinix_bench.ops.launch_config import parse_backward_notation

    with pytest.raises(ValueError, match=r"TILES/wWARPS/sSTAGES/OPERANDS.*looped/CHUNK/wWARPS/pPROGRAMS_PER_SM/sSTAGES"):
        parse_backward_notation(text)


@pytest.mark.parametrize("op, hidden", [("rms_norm", 5120), ("layer_norm", 5120), ("fused_add_rms_norm", 5000),
                                        ("rms_norm", 12288), ("layer_norm", 12288), ("rms_norm", 14000),
                                        ("rms_norm", 18000), ("layer_norm", 7000), ("layer_norm", 14000),
                                        ("rms_norm", 28000), ("layer_norm", 18000), ("rms_norm", 16384),
                                        ("layer_norm", 16384), ("layer_norm", 15000)])
def test_split_tile_widths_through_the_tables(op, hidden):
    # The widths the tables split, end to end in bf16 (the backward splits 16-bit rows only), and
    # the 16384-column rows whose backward reads w' again per row (LayerNorm's as two tiles).
    inputs, grads = make_inputs(op, 3, hidden, torch.bfloat16, "cpu")
    check_op(op, inputs, grads)


def _backward_out_of_shared_memory(monkeypatch, too_big):
    """A stand-in launcher whose single-pass backward raises OutOfResources wherever
    ``too_big(constexprs)`` says, with no launch remembered as fitting; returns the list it fills
    with (kernel, HAS_DRES, ROW_STAGES) for every backward launch tried."""
    from triton.runtime.errors import OutOfResources

    from trinix_bench.ops import normalization

    tried = []
    real_launch = normalization._LAUNCHES.launch

    def launch(kernel, grid, args, unspecialized, constexprs, num_warps, *options):
        if kernel in (normalization._norm_bwd_kernel, normalization._norm_bwd_looped_kernel):
            tried.append((kernel, constexprs["HAS_DRES"], constexprs["ROW_STAGES"]))
        if kernel is normalization._norm_bwd_kernel and too_big(constexprs):
            raise OutOfResources(300000, 232448, "shared memory")
        return real_launch(kernel, grid, args, unspecialized, constexprs, num_warps, *options)

    monkeypatch.setattr(normalization._LAUNCHES, "launch", launch)
    monkeypatch.setattr(normalization, "_FITTED_ROW_STAGES", {})
    return tried


@pytest.mark.parametrize("op", OPS)
def test_backward_falls_back_to_looped_when_out_of_shared_memory(op, monkeypatch):
    # A device with less shared memory than the H200 the tables were tuned on: the single-pass
    # launch raises OutOfResources at every stage count (the table's 3, then 2, then 1), the
    # looped kernel answers instead, and later calls of that shape go straight to it.
    from trinix_bench.ops import normalization

    tried = _backward_out_of_shared_memory(monkeypatch, lambda constexprs: True)
    for _ in range(2):
        inputs, grads = make_inputs(op, 7, 300, torch.float32, "cpu")
        check_op(op, inputs, grads)
    single, looped = normalization._norm_bwd_kernel, normalization._norm_bwd_looped_kernel
    assert [kernel for kernel, _, _ in tried] == [single, single, single, looped, looped]
    assert [stages for kernel, _, stages in tried if kernel is single] == [3, 2, 1]


@pytest.mark.parametrize("op", ["fused_add_rms_norm", "fused_add_layer_norm"])
def test_backward_stages_fewer_rows_when_the_residual_gradient_does_not_fit(op, monkeypatch):
    # The fused ops' backward also stages residual_out's gradient: where three row stages then
    # pass the shared memory (on the H200: 16384 columns, run 106), it takes two and remembers
    # that for the shape. The unfused op of the same width, which has no such gradient to stage,
    # keeps its three.
    tried = _backward_out_of_shared_memory(
        monkeypatch, lambda constexprs: constexprs["HAS_DRES"] and constexprs["ROW_STAGES"] > 2)
    for _ in range(2):
        inputs, grads = make_inputs(op, 7, 300, torch.float32, "cpu")
        check_op(op, inputs, grads)
    unfused = op.replace("fused_add_", "")
    inputs, grads = make_inputs(unfused, 7, 300, torch.float32, "cpu")
    check_op(unfused, inputs, grads)
    assert [(dres, stages) for _, dres, stages in tried] == [(True, 3), (True, 2), (True, 2), (False, 3)]


def _fake_cuda_launch_setup(monkeypatch, run):
    """A stand-in kernel and compiled kernel on a pretend CUDA tensor, to drive the cached
    launcher's bookkeeping on a CPU-only machine. Returns (launcher, kernel calls, args)."""
    from types import SimpleNamespace

    from trinix_bench.ops import normalization

    compiled = SimpleNamespace(run=run, function=None, packed_metadata=None)
    calls = []

    class Kernel:
        options = []  # each Triton launch's keyword options (num_warps, maxnreg), constexprs aside

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                calls.append(grid)
                self.options.append({k: v for k, v in kwargs.items() if not k.isupper()})
                return compiled
            return launch

    monkeypatch.setattr(torch._C, "_cuda_getCurrentRawStream", lambda index: 0, raising=False)
    monkeypatch.setattr(normalization._CompiledLaunches, "_hooks_active", staticmethod(lambda: False))
    launcher = normalization._CompiledLaunches()
    launcher.enabled = True
    arg = SimpleNamespace(is_cuda=True, get_device=lambda: 0, dtype=torch.bfloat16, data_ptr=lambda: 4096)
    return launcher, Kernel(), calls, (arg, 7, 1.5)


@pytest.mark.parametrize("looped", [False, True])
def test_forward_flags_give_each_kernel_exactly_its_constexprs(looped):
    # launch_forward and offline_resources.py both build the forward's constexprs with forward_flags:
    # a name the kernel lacks, or one it declares and is not given, fails here before any launch.
    import inspect

    from trinix_bench.ops import normalization
    from trinix_bench.ops.launch_config import ForwardLaunch

    kernel = normalization._norm_fwd_looped_kernel if looped else normalization._norm_fwd_kernel
    declared = {name for name, p in inspect.signature(kernel.fn).parameters.items()
                if "constexpr" in str(p.annotation)}
    cfg = ForwardLaunch(4096, 1, 8, looped, tail_n=(0, 0) if looped else (1024, 0))
    flags = normalization.forward_flags(cfg, 7, 5000 if looped else 5120, 2, False, True, True, True, False)
    assert set(flags) == declared
    assert flags["SHIFTED_STATS"] is False and flags["HAS_RESIDUAL"] and not flags["STORE_STATS"]
    if looped:
        assert not flags["ONE_CHUNK"] and flags["OUT_BLOCK_N"] == 4096 and flags["MASKED"]  # 5000 % 4096 != 0
    else:
        assert (flags["BLOCK_N_2"], flags["BLOCK_N_3"]) == (1024, 0) and not flags["MASKED"]  # 4096 + 1024, 1 row a block


def test_cached_launcher_serves_repeat_launches(monkeypatch):
    runs = []
    launcher, kernel, calls, args = _fake_cuda_launch_setup(monkeypatch, lambda *a: runs.append(a))
    for _ in range(3):
        launcher.launch(kernel, (5,), args, frozenset(), {"BLOCK_N": 64}, 4)
    # The first launch compiles through Triton; the repeats go straight to the compiled launcher
    # with a 3-d grid, then the runtime arguments (the tensor as its address) and the constexprs.
    assert calls == [(5,)] and len(runs) == 2
    assert runs[0][:3] == (5, 1, 1) and runs[0][-4:] == (4096, 7, 1.5, 64)


def test_cached_launcher_keys_and_passes_a_register_cap(monkeypatch):
    runs = []
    launcher, kernel, calls, args = _fake_cuda_launch_setup(monkeypatch, lambda *a: runs.append(a))
    for cap in (0, 32, 32, 0):
        launcher.launch(kernel, (5,), args, frozenset(), {"BLOCK_N": 64}, 4, cap)
    # A capped launch compiles a kernel of its own (ptxas's .maxnreg), then launches from the cache
    # like any other; the uncapped one passes no maxnreg at all (the compiler's own choice).
    assert calls == [(5,), (5,)] and len(runs) == 2
    assert kernel.options == [{"num_warps": 4}, {"num_warps": 4, "maxnreg": 32}]


def test_cached_launcher_switches_off_on_an_unknown_launcher_signature(monkeypatch):
    def incompatible_run(*_):
        raise TypeError("run() takes 12 positional arguments")

    launcher, kernel, calls, args = _fake_cuda_launch_setup(monkeypatch, incompatible_run)
    for _ in range(3):
        launcher.launch(kernel, (5,), args, frozenset(), {"BLOCK_N": 64}, 4)
    assert not launcher.enabled
    assert len(calls) == 3  # every launch still happened, through Triton's own path


@pytest.mark.parametrize("value, enabled", [(None, True), ("1", True), ("0", False)])
def test_cached_launcher_switch(monkeypatch, value, enabled):
    from trinix_bench.ops import normalization

    if value is None:
        monkeypatch.delenv(normalization._CompiledLaunches.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(normalization._CompiledLaunches.ENV_VAR, value)
    assert normalization._CompiledLaunches().enabled is enabled


def test_cached_launcher_sees_registered_launch_hooks(monkeypatch):
    # Triton keeps its launch hooks in a chain object that exists even when empty: only a chain
    # with calls (a profiler) counts as active.
    from types import SimpleNamespace

    from trinix_bench.ops import normalization

    def knobs(enter_calls):
        chain = SimpleNamespace(calls=enter_calls)
        return SimpleNamespace(runtime=SimpleNamespace(launch_enter_hook=chain, launch_exit_hook=SimpleNamespace(calls=[])))

    monkeypatch.setattr(normalization.triton, "knobs", knobs([]), raising=False)
    assert not normalization._CompiledLaunches._hooks_active()
    monkeypatch.setattr(normalization.triton, "knobs", knobs([print]), raising=False)
    assert normalization._CompiledLaunches._hooks_active()


def test_split_tiles_cover_the_row_with_at_most_three_powers_of_two():
    from trinix_bench.ops.launch_config import split_tiles

    assert split_tiles(12288, 1024) == (8192, 4096, 0)
    assert split_tiles(7168, 1024) == (4096, 2048, 1024)
    assert split_tiles(28672, 1024) == (16384, 8192, 4096)
    assert split_tiles(16384, 1024) == (16384, 0, 0)
    assert split_tiles(65535, 1024) == (65536, 0, 0)  # the rounded-up rest merges back into one tile
    for hidden in (1, 3, 127, 777, 4097, 5120, 18432, 70000):
        tiles = split_tiles(hidden, 64)
        nonzero = [t for t in tiles if t]
        assert sum(tiles) >= hidden and all(t & (t - 1) == 0 and t >= 64 for t in nonzero)
        assert nonzero == sorted(nonzero, reverse=True) and len(set(nonzero)) == len(nonzero)
        # never wider than the power-of-two tile it replaces
        assert sum(tiles) <= max(64, 1 << (hidden - 1).bit_length())


def _force_launches(monkeypatch, fwd, operands, reload_weight=False, joint_sums=True, affine_dx=False):
    """Launch the forward as ``fwd`` and the backward on the same tiles and row blocks (looped if
    ``fwd`` is), two row blocks a strip (so strips hold whole blocks, as the table's launches do),
    2 row stages, dx taken from ``operands``, w held or read again per row (``reload_weight``),
    LayerNorm's row sums reduced together or apart (``joint_sums``) and dx in the affine form or
    not (``affine_dx``)."""
    from trinix_bench.ops import launch_config, normalization

    table_backward = normalization.backward_launch

    def backward(n_rows, n_cols, device, is_rms, dtype, force_looped=False):
        cfg = table_backward(n_rows, n_cols, device, is_rms, dtype, force_looped)
        return dataclasses.replace(cfg, looped=fwd.looped, block_n=fwd.block_n, tail_n=fwd.tail_n,
                                   block_m=fwd.block_m, rows_per_program=2 * fwd.block_m,
                                   programs=-(-n_rows // (2 * fwd.block_m)),
                                   dx_operands=launch_config.DxOperands[operands], row_stages=2,
                                   reload_weight=reload_weight, joint_sums=joint_sums, affine_dx=affine_dx)

    monkeypatch.setattr(normalization, "forward_launch", lambda *_, **__: fwd)
    monkeypatch.setattr(normalization, "backward_launch", backward)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("operands", ["HELD_FP32", "RELOADED", "HELD_NARROW"])
@pytest.mark.parametrize("rows, hidden, min_tile", [(5, 777, 64), (7, 448, 64), (9, 40, 8)])
@pytest.mark.parametrize("op", OPS)
def test_split_tile_kernels(op, rows, hidden, min_tile, operands, dtype, monkeypatch):
    # Rows held as two or three register tiles (777 = 512 + 256 + a masked 64; 448 = 256 + 128 +
    # 64; 40 = 32 + 8 with several rows a program), forward and backward, for every dx source.
    from trinix_bench.ops import launch_config

    tiles = launch_config.split_tiles(hidden, min_tile)
    assert tiles[1] > 0
    fwd = launch_config.ForwardLaunch(tiles[0], launch_config._rows_per_program(tiles[0]), 4, False, tiles[1:])
    _force_launches(monkeypatch, fwd, operands)
    inputs, grads = make_inputs(op, rows, hidden, dtype, "cpu")
    check_op(op, inputs, grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("operands", ["HELD_FP32", "RELOADED", "HELD_NARROW"])
@pytest.mark.parametrize("tiles, rows, hidden", [((64, 0, 0), 7, 60), ((256, 128, 64), 5, 448), ((32, 8, 0), 9, 40)])
@pytest.mark.parametrize("op", OPS)
def test_backward_reading_w_again_per_row(op, tiles, rows, hidden, operands, dtype, monkeypatch):
    # The single-pass backward with w' read again for every row block instead of held: one tile
    # (masked), three tiles covering the row exactly, and two tiles with several rows a block.
    from trinix_bench.ops import launch_config

    fwd = launch_config.ForwardLaunch(tiles[0], launch_config._rows_per_program(tiles[0]), 4, False, tiles[1:])
    _force_launches(monkeypatch, fwd, operands, reload_weight=True)
    flags = recorded_flags(monkeypatch, "RELOAD_W")
    inputs, grads = make_inputs(op, rows, hidden, dtype, "cpu")
    check_op(op, inputs, grads)
    assert flags == [None, True]  # the forward has no such flag; the backward read w again


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("joint_sums", [True, False])
@pytest.mark.parametrize("tiles, rows, hidden", [((64, 0, 0), 7, 60), ((256, 128, 64), 5, 448), ((32, 32, 0), 9, 61)])
@pytest.mark.parametrize("op", OPS)
def test_backward_row_sums_joint_or_separate(op, tiles, rows, hidden, joint_sums, dtype, monkeypatch):
    # LayerNorm's row sums of g * xhat and g reduced in one tl.reduce or in one tl.sum each
    # (RowLoop.joint_sums), on one masked tile, three tiles covering the row and two equal tiles
    # (the second masked past column 61) with several rows a block; RMSNorm ignores the flag.
    from trinix_bench.ops import launch_config

    fwd = launch_config.ForwardLaunch(tiles[0], launch_config._rows_per_program(tiles[0]), 4, False, tiles[1:])
    _force_launches(monkeypatch, fwd, "HELD_NARROW", joint_sums=joint_sums)
    flags = recorded_flags(monkeypatch, "JOINT_SUMS")
    inputs, grads = make_inputs(op, rows, hidden, dtype, "cpu")
    check_op(op, inputs, grads)
    assert flags == [None, joint_sums]  # the forward has no such flag


# the weight offset is RMSNorm's
_AFFINE_CASES = [(op, affine) for op in OPS for affine in ("weight_and_bias", "none", "offset")
                 if affine != "offset" or "rms" in op]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("tiles, rows, hidden", [((64, 0, 0), 7, 60), ((256, 128, 64), 5, 448), ((32, 8, 0), 9, 40)])
@pytest.mark.parametrize("op, affine", _AFFINE_CASES)
def test_forward_reading_w_and_b_with_x(op, affine, tiles, rows, hidden, dtype, monkeypatch):
    # The single-pass forward with w' and b read beside x, before the reductions (early_affine):
    # one masked tile, three tiles covering the row, two tiles with several rows a program; with
    # weight and bias, with neither, and with Gemma's offset (RMSNorm ops).
    from trinix_bench.ops import launch_config

    fwd = launch_config.ForwardLaunch(tiles[0], launch_config._rows_per_program(tiles[0]), 4, False, tiles[1:],
                                      early_affine=True)
    _force_launches(monkeypatch, fwd, "HELD_FP32")
    flags = recorded_flags(monkeypatch, "EARLY_AFFINE")
    with_params = affine != "none"
    inputs, grads = make_inputs(op, rows, hidden, dtype, "cpu", weight=with_params, bias=with_params)
    check_op(op, inputs, grads, **({"offset": 1.0} if affine == "offset" else {}))
    assert flags == [True, None]  # the backward has no such flag


# Offset rows (mean 768, std 1) in 16-bit dtypes only: fp32's own x - mean there errs by ~3e-5,
# past its 1e-5, with two reductions or the exact dx form too.
_OFFSET_ROW_CASES = [(kind, dtype) for kind in ("offset", "outlier first")
                     for dtype in (torch.float32, torch.bfloat16, torch.float16)
                     if kind != "offset" or dtype != torch.float32]
# The single pass with w and b read early or late; the looped kernel reads them in its second pass.
_SHIFTED_LAUNCHES = [(early, False, tiles, rows, hidden) for early in (False, True)
                     for tiles, rows, hidden in (((64, 0, 0), 7, 60), ((256, 128, 64), 5, 448), ((32, 8, 0), 9, 40))]
_SHIFTED_LAUNCHES += [(False, True, (chunk, 0, 0), 3, hidden) for chunk, hidden in ((16, 60), (32, 64), (64, 60), (64, 64))]


@pytest.mark.parametrize("rows_kind, dtype", _OFFSET_ROW_CASES)
@pytest.mark.parametrize("early, looped, tiles, rows, hidden", _SHIFTED_LAUNCHES)
@pytest.mark.parametrize("op", OPS)
def test_forward_with_shifted_statistics(op, early, looped, tiles, rows, hidden, rows_kind, dtype, monkeypatch):
    # LayerNorm's mean and variance from one joint reduction of x - x[:, 0] (shifted_stats), on one
    # masked tile, three tiles covering the row, two tiles with several rows a program, and the
    # looped kernel over a masked last chunk, over exact chunks, and on rows of one chunk (masked
    # and exact: the row read twice, ONE_CHUNK).
    # - offset: rows of mean 768 and std 1, where E[x^2] - E[x]^2 unshifted loses ~3% of the
    #   variance in fp32 (fails fp16's tolerance); fused, the residual holds multiples of x's ulp
    #   there, so the sum is exact and the reference sees the rounded sum the kernel normalizes.
    # - outlier first: the shift itself 40 standard deviations out, the bound's worst case.
    # RMSNorm ops ignore the flag, and 32-bit rows keep two reductions.
    from trinix_bench.ops import launch_config

    block_m = 1 if looped else launch_config._rows_per_program(tiles[0])
    fwd = launch_config.ForwardLaunch(tiles[0], block_m, 4, looped, tiles[1:], early_affine=early, shifted_stats=True)
    _force_launches(monkeypatch, fwd, "HELD_FP32")
    flags = recorded_flags(monkeypatch, "SHIFTED_STATS")
    gen = torch.Generator().manual_seed(rows * hidden)
    if rows_kind == "offset":
        x = torch.randn(rows, hidden, generator=gen) + 768.0
    else:
        x = torch.randn(rows, hidden, generator=gen) * 2.0
        x[:, 0] = 80.0 * torch.randn(rows, generator=gen).sign()
    inputs, grads = make_inputs(op, rows, hidden, dtype, "cpu", x=x.to(dtype))
    if op.startswith("fused_add") and rows_kind == "offset":
        ulp_at_offset = torch.finfo(dtype).eps * 512  # the spacing of [512, 1024)
        steps = torch.randint(-4, 5, (rows, hidden), generator=gen).to(torch.float32)
        inputs["residual"] = (steps * ulp_at_offset).to(dtype).requires_grad_(True)
    check_op(op, inputs, grads)
    assert flags == ["rms" not in op and dtype.itemsize == 2, None]  # the backward has no such flag


@pytest.mark.parametrize("rows_kind, dtype", [("random", dtype) for dtype in (torch.bfloat16, torch.float16, torch.float32)]
                         + [case for case in _OFFSET_ROW_CASES if case[0] == "offset"])
@pytest.mark.parametrize("operands", ["HELD_FP32", "RELOADED", "HELD_NARROW"])
@pytest.mark.parametrize("tiles, rows, hidden", [((64, 0, 0), 7, 60), ((256, 128, 64), 5, 448)])
@pytest.mark.parametrize("op", OPS)
def test_backward_affine_dx(op, tiles, rows, hidden, operands, rows_kind, dtype, monkeypatch):
    # dx = rstd * g - (A * x + B) from per-row coefficients (or from held xhat), and LayerNorm's
    # xhat = x * rstd - mean * rstd (BackwardLaunch.affine_dx), for every dx source, on one masked
    # tile and on three tiles covering the row. Offset rows (mean 768, std 1) make A * x and B
    # nearly cancel: the form's worst case short of a degenerate row. 32-bit rows keep the exact
    # form though the launch asks for it.
    from trinix_bench.ops import launch_config

    fwd = launch_config.ForwardLaunch(tiles[0], launch_config._rows_per_program(tiles[0]), 4, False, tiles[1:])
    _force_launches(monkeypatch, fwd, operands, affine_dx=True)
    flags = recorded_flags(monkeypatch, "AFFINE_DX")
    gen = torch.Generator().manual_seed(rows * hidden)
    x = torch.randn(rows, hidden, generator=gen) + (768.0 if rows_kind == "offset" else 0.5)
    inputs, grads = make_inputs(op, rows, hidden, dtype, "cpu", x=x.to(dtype))
    if op.startswith("fused_add") and rows_kind == "offset":  # exact sums, as in the shifted forward's test
        steps = torch.randint(-4, 5, (rows, hidden), generator=gen).to(torch.float32)
        inputs["residual"] = (steps * torch.finfo(dtype).eps * 512).to(dtype).requires_grad_(True)
    check_op(op, inputs, grads)
    assert flags == [None, dtype.itemsize == 2]  # the forward has no such flag


def test_backward_affine_dx_by_width_and_dtype(monkeypatch):
    # The tables take the affine dx for LayerNorm's 16-bit rows of 14336 and 18432 columns and
    # bf16's of 16384 (fp16's single 16384 tile spilled and lost, run 104); not at 5120, 8192 or
    # 12288, nor for RMSNorm or 32-bit rows. A call through the table passes the flag on.
    from trinix_bench.ops.launch_config import backward_launch

    cpu = torch.device("cpu")
    bf16, fp16 = torch.bfloat16, torch.float16
    affine = {(14336, bf16), (14336, fp16), (16384, bf16), (18432, bf16), (18432, fp16)}
    for hidden in (5120, 8192, 12288, 14336, 16384, 18432):
        for dtype in (bf16, fp16, torch.float32):
            assert backward_launch(4096, hidden, cpu, False, dtype).affine_dx == ((hidden, dtype) in affine)
            assert not backward_launch(4096, hidden, cpu, True, dtype).affine_dx
    flags = recorded_flags(monkeypatch, "AFFINE_DX")
    inputs, grads = make_inputs("layer_norm", 2, 14336, bf16, "cpu")
    check_op("layer_norm", inputs, grads)
    assert flags == [None, True]


def test_exact_cover_says_when_the_kernel_needs_no_masks():
    from trinix_bench.ops.launch_config import ForwardLaunch

    looped = ForwardLaunch(512, 1, 4, True)
    assert looped.exact_cover(3, 1024) and looped.exact_cover(1, 512)
    assert not looped.exact_cover(3, 1000) and not looped.exact_cover(3, 1030)
    single = ForwardLaunch(1024, 4, 4, False)
    assert single.exact_cover(8, 1024)
    assert not single.exact_cover(7, 1024)  # a ragged last row block
    assert not single.exact_cover(8, 1000)  # idle lanes at the end of the tile
    split = ForwardLaunch(256, 1, 4, False, (128, 64))
    assert split.exact_cover(5, 448) and not split.exact_cover(5, 440)


# kind -> (tiles, rows a block, exactly covered (rows, hidden), ragged columns, ragged rows)
_MASK_CASES = {
    "single": ((64,), 4, (8, 64), (8, 60), (7, 64)),
    "split": ((256, 128, 64), 1, (5, 448), (5, 440), None),
    "looped": ((128,), 1, (3, 512), (3, 500), None),
}


# (kind, case, dx operands): a looped launch takes one row at a time, so its rows are always
# covered, and its backward has one way to take its operands.
_MASK_LAUNCHES = [(kind, case, operands) for kind, (*_, ragged_rows) in _MASK_CASES.items()
                  for case in ("exact", "ragged columns", "ragged rows") if case != "ragged rows" or ragged_rows
                  for operands in ("HELD_FP32", "RELOADED", "HELD_NARROW") if kind != "looped" or operands == "HELD_FP32"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind, case, operands", _MASK_LAUNCHES)
@pytest.mark.parametrize("op", OPS)
def test_kernels_with_and_without_masks(op, kind, case, operands, dtype, monkeypatch):
    # Exactly covered launches run the kernels unmasked (MASKED=False); any lane left over, in the
    # columns or in the last row block, keeps the masks. Forward and backward against float64, for
    # every place the single-pass backward takes dx's operands from.
    from trinix_bench.ops import launch_config

    tiles, block_m, *shapes = _MASK_CASES[kind]
    shape = dict(zip(["exact", "ragged columns", "ragged rows"], shapes))[case]
    looped = kind == "looped"
    tail = tuple(tiles[1:]) + (0,) * (3 - len(tiles))
    fwd = launch_config.ForwardLaunch(tiles[0], block_m, 4, looped, (0, 0) if looped else tail)
    _force_launches(monkeypatch, fwd, operands)
    masked = recorded_flags(monkeypatch, "MASKED")
    inputs, grads = make_inputs(op, *shape, dtype, "cpu")
    check_op(op, inputs, grads)
    assert masked == [case != "exact"] * 2  # the forward, then the backward
