"""scripts/tune_kernels.py: the launches its A/B candidate specs name (timing them needs the GPU)."""

import pytest
import torch
from helpers import load_script


@pytest.fixture(scope="module")
def tune_kernels():
    return load_script("tune_kernels")


@pytest.fixture
def sms(monkeypatch):
    """A stand-in device of 132 SMs for the grid arithmetic."""
    class Properties:
        multi_processor_count = 132

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *_: Properties())
    return Properties.multi_processor_count


def test_a_looped_backward_candidate_names_chunk_warps_grid_and_stages(tune_kernels, sms):
    from trinix_bench.ops import launch_config as lc

    op, rows, hidden, label, cfg = tune_kernels._parse_backward_candidate("layer_norm@2048x65536=looped/8192/w32/p1/s2")
    assert (op, rows, hidden, label) == ("layer_norm", 2048, 65536, "looped/8192/w32/p1/s2")
    assert cfg.looped and (cfg.block_n, cfg.block_m, cfg.num_warps, cfg.row_stages) == (8192, 1, 32, 2)
    assert cfg.dx_operands == lc.DxOperands.HELD_FP32
    # 2048 rows over at most 132 programs: strips of 16 rows, 128 programs
    assert (cfg.programs, cfg.rows_per_program) == (128, 16)
    *_, two_per_sm = tune_kernels._parse_backward_candidate("rms_norm@4096x32768=looped/4096/w8/p2/s1")
    assert (two_per_sm.programs, two_per_sm.rows_per_program) == (256, 16)  # ceil(4096 / 264) rows each
    *_, few_rows = tune_kernels._parse_backward_candidate("rms_norm@5x32768=looped/4096/w8/p2/s1")
    assert (few_rows.programs, few_rows.rows_per_program) == (5, 1)


def test_a_single_pass_backward_candidate_names_its_options_and_fused_ops(tune_kernels, sms):
    from trinix_bench.ops import launch_config as lc

    op, rows, hidden, label, cfg = tune_kernels._parse_backward_candidate(
        "fused_add_layer_norm@4096x16384=8192+8192/w16/s2/HELD_NARROW/reload/separate/affine")
    assert (op, rows, hidden, label) == ("fused_add_layer_norm", 4096, 16384,
                                         "8192+8192/w16/s2/HELD_NARROW/reload/separate/affine")
    assert (cfg.block_n, cfg.tail_n, cfg.num_warps, cfg.row_stages, cfg.dx_operands) == (
        8192, (8192, 0), 16, 2, lc.DxOperands.HELD_NARROW)
    assert cfg.reload_weight and not cfg.joint_sums and cfg.affine_dx and not cfg.looped
    *_, plain = tune_kernels._parse_backward_candidate("rms_norm@4096x8192=8192/w16/s3/HELD_FP32")
    assert not (plain.reload_weight or plain.affine_dx or plain.keep_masks) and plain.joint_sums
    with pytest.raises(SystemExit, match="OPERANDS"):
        tune_kernels._parse_backward_candidate("rms_norm@4096x8192=8192/w16/s3/HELD_FP32/fast")
    with pytest.raises(SystemExit, match="op must be one of rms_norm"):
        tune_kernels._parse_backward_candidate("group_norm@64x8192=8192/w16/s3/HELD_FP32")
    with pytest.raises(SystemExit, match="expected op@ROWSxHIDDEN=LAUNCH"):
        tune_kernels._parse_backward_candidate("rms_norm@64=8192/w16/s3/HELD_FP32")


@pytest.mark.parametrize("spec", ["rms_norm@64x65536=looped/8192/w32/p1",  # no stages
                                  "rms_norm@64x65536=looped/8192/w32/s1/p1",  # out of order
                                  "rms_norm@64x65536=looped/wide/w32/p1/s1",
                                  "rms_norm@64x65536=looped/8192/w32/p0/s1"])
def test_a_malformed_looped_candidate_names_the_expected_form(tune_kernels, sms, spec):
    with pytest.raises(SystemExit, match="looped/CHUNK/wWARPS/pPROGRAMS_PER_SM/sSTAGES"):
        tune_kernels._parse_backward_candidate(spec)


def test_a_forward_candidate_names_its_launch_and_options(tune_kernels):
    op, rows, hidden, label, cfg = tune_kernels._parse_forward_candidate("layer_norm@32x4096=single/4096/w8/early")
    assert (op, rows, hidden, label) == ("layer_norm", 32, 4096, "single/4096/w8/early")
    assert (cfg.block_n, cfg.block_m, cfg.num_warps, cfg.looped, cfg.tail_n) == (4096, 1, 8, False, (0, 0))
    assert cfg.early_affine and not cfg.shifted_stats and not cfg.masked(32, 4096)  # one row a program: exact
    *_, split = tune_kernels._parse_forward_candidate("rms_norm@8192x5120=single/4096+1024/w4")
    assert (split.block_n, split.tail_n, split.num_warps, split.early_affine) == (4096, (1024, 0), 4, False)
    *_, shifted = tune_kernels._parse_forward_candidate("layer_norm@4096x8192=single/8192/w8/shifted")
    assert shifted.shifted_stats and not shifted.early_affine
    *_, masked = tune_kernels._parse_forward_candidate("rms_norm@2048x4096=single/4096/w8/masked/m2")
    assert masked.block_m == 2 and masked.masked(2048, 4096) and masked.exact_cover(2048, 4096)
    *_, looped = tune_kernels._parse_forward_candidate("fused_add_rms_norm@4096x8192=looped/8192/w16")
    assert looped.looped and (looped.block_n, looped.block_m, looped.num_warps) == (8192, 1, 16)
    assert not looped.shifted_stats
    *_, shifted_looped = tune_kernels._parse_forward_candidate("layer_norm@4096x8192=looped/8192/w16/shifted")
    assert shifted_looped.looped and shifted_looped.shifted_stats and shifted_looped.out_block_n == 0
    *_, narrow_out = tune_kernels._parse_forward_candidate("rms_norm@64x16384=looped/16384/w16/o4096")
    assert (narrow_out.block_n, narrow_out.out_block_n, narrow_out.shifted_stats) == (16384, 4096, False)
    assert not narrow_out.reverse_out and not looped.reverse_out
    *_, reversed_out = tune_kernels._parse_forward_candidate("layer_norm@1024x196608=looped/16384/w32/o8192/rev")
    assert (reversed_out.block_n, reversed_out.out_block_n, reversed_out.reverse_out) == (16384, 8192, True)
    op, *_, fused_ln = tune_kernels._parse_forward_candidate("fused_add_layer_norm@2048x65536=looped/8192/w16/rev")
    assert op == "fused_add_layer_norm" and fused_ln.reverse_out and fused_ln.looped
    assert fused_ln.max_registers == 0 and looped.max_registers == 0
    *_, capped = tune_kernels._parse_forward_candidate("layer_norm@4096x8192=single/8192/w16/reg32")
    assert (capped.num_warps, capped.looped, capped.max_registers) == (16, False, 32)
    *_, capped_looped = tune_kernels._parse_forward_candidate("layer_norm@4096x8192=looped/8192/w16/shifted/reg32")
    assert capped_looped.looped and capped_looped.shifted_stats and capped_looped.max_registers == 32
    assert looped.y_cache == capped_looped.y_cache == ""
    *_, streamed = tune_kernels._parse_forward_candidate("rms_norm@1024x196608=looped/32768/w32/rev/ycs")
    *_, evict_first = tune_kernels._parse_forward_candidate("layer_norm@4096x8192=single/8192/w8/yef")
    assert (streamed.y_cache, streamed.reverse_out, evict_first.y_cache) == (".cs", True, "evict_first")
    assert tune_kernels.forward_label(streamed) == "looped/32768/w32/rev/ycs"
    assert tune_kernels.forward_label(evict_first) == "single/8192/w8/yef"


@pytest.mark.parametrize("spec", ["rms_norm@1x4096=single/4096/w8/late",  # unknown option
                                  "rms_norm@1x4096=looped/4096/w8/early",  # options are the single pass's
                                  "rms_norm@1x4096=single/4096",  # no warps
                                  "rms_norm@1x4096=single/4096/w8/m2/m4",
                                  "rms_norm@1x4096=single/4096/w8/o2048",  # the second pass is the looped kernel's
                                  "rms_norm@1x4096=single/4096/w8/rev",
                                  "rms_norm@1x4096=looped/4096/w8/o2048/o1024",
                                  "rms_norm@1x4096=single/wide/w8",
                                  "rms_norm@1x4096=single/4096/w8/reg",  # no register count
                                  "rms_norm@1x4096=single/4096/w8/reg32/reg40",
                                  "rms_norm@1x4096=looped/4096/w8/ycs/yef",  # one store policy
                                  "add_rms@1x4096=single/4096/w8"])
def test_a_malformed_forward_candidate_names_the_expected_form(tune_kernels, spec):
    with pytest.raises(SystemExit, match=r"single/TILES/wWARPS\[/early\]"):
        tune_kernels._parse_forward_candidate(spec)


def test_the_backward_table_label_names_the_stages_that_ran(tune_kernels):
    # launch_backward's fallback (fewer stages, then the looped kernel) shows in backward_ab's label.
    assert tune_kernels._fallback_note(3, None) == tune_kernels._fallback_note(3, 3) == ""
    assert tune_kernels._fallback_note(3, 2) == " (ran s2: s3 out of shared memory)"
    assert tune_kernels._fallback_note(2, 0) == " (ran looped: s2 out of shared memory)"


def test_a_readings_clocks_are_the_medians_of_the_samples_taken_during_it(tune_kernels):
    samples = [(0.00, (1980.0, 3201.0, 300.0, 40.0)), (0.02, (1755.0, 3201.0, 650.0, 44.0)),
               (0.04, (1830.0, 3201.0, 610.0, 45.0)), (0.06, (1500.0, 3201.0, 700.0, 46.0)),
               (0.30, (1980.0, 3201.0, 120.0, 41.0))]
    assert tune_kernels.clock_summary(samples, 0.01, 0.07) == (1755.0, 3201.0, 650.0, 45.0)
    # a reading shorter than the sampling period takes the nearest sample
    assert tune_kernels.clock_summary(samples, 0.25, 0.26) == (1980.0, 3201.0, 120.0, 41.0)
    assert tune_kernels.clock_summary([], 0.0, 1.0) is None
