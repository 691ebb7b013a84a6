"""scripts/offline_resources.py: which launch a spec names (compiling needs Triton's CUDA backend)."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import load_script


@pytest.fixture(scope="module")
def offline_resources():
    return load_script("offline_resources")


def test_a_bare_shape_takes_the_tables_launch(offline_resources):
    from trinix_bench.ops import launch_config as lc

    op, rows, hidden, cfg = offline_resources.parse_spec("layer_norm@131072x16384", torch.bfloat16)
    assert (op, rows, hidden) == ("layer_norm", 131072, 16384)
    table = lc.backward_launch(rows, hidden, torch.device("cpu"), False, torch.bfloat16)
    assert cfg == dataclasses.replace(table, programs=0, rows_per_program=0)
    assert lc.backward_notation(cfg, rows, hidden) == "8192+8192/w16/s3/HELD_NARROW/reload/separate/affine"
    assert lc.backward_notation(cfg, rows, 16000) == "8192+8192/w16/s3/HELD_NARROW/reload/masked/separate/affine"
    _, _, _, fp16 = offline_resources.parse_spec("layer_norm@4096x16384", torch.float16)
    assert lc.backward_notation(fp16, 4096, 16384) == "16384/w16/s2/RELOADED"
    _, _, _, looped = offline_resources.parse_spec("layer_norm@4096x28672", torch.bfloat16)
    assert lc.backward_notation(looped, 4096, 28672) == "looped/4096/w8/p2/s1"


def test_a_launch_spec_names_every_field(offline_resources):
    from trinix_bench.ops import launch_config as lc
    from trinix_bench.ops.launch_config import DxOperands

    _, rows, hidden, cfg = offline_resources.parse_spec(
        "rms_norm@8192x5120=4096+1024/w8/s4/HELD_FP32/masked/separate", torch.bfloat16)
    assert (cfg.block_n, cfg.tail_n, cfg.block_m, cfg.num_warps, cfg.row_stages, cfg.dx_operands) == (
        4096, (1024, 0), 1, 8, 4, DxOperands.HELD_FP32)
    assert (cfg.keep_masks, cfg.reload_weight, cfg.joint_sums, cfg.looped, cfg.affine_dx) == (
        True, False, False, False, False)
    _, _, _, plain = offline_resources.parse_spec("layer_norm@64x512=256+128+128/w4/s2/RELOADED/reload/affine",
                                                  torch.float32)
    assert (plain.tail_n, plain.block_m, plain.reload_weight, plain.joint_sums, plain.keep_masks, plain.affine_dx) == (
        (128, 128), 16, True, True, False, True)
    assert lc.backward_notation(cfg, rows, hidden) == "4096+1024/w8/s4/HELD_FP32/masked/separate"


@pytest.mark.parametrize("spec, message", [
    ("layer_norm@4096", "expected op@ROWSxHIDDEN"),
    ("group_norm@4x8", "op must be rms_norm or layer_norm"),
    ("rms_norm@4x8=8/16/s1/RELOADED", "expected TILES/wWARPS/sSTAGES/OPERANDS"),
    ("rms_norm@4x8=8/w4/s1/RELOADED/fast", "expected TILES/wWARPS/sSTAGES/OPERANDS"),
])
def test_a_malformed_spec_says_what_is_expected(offline_resources, spec, message):
    with pytest.raises(SystemExit, match=message):
        offline_resources.parse_spec(spec, torch.bfloat16)


def test_opcode_counts_read_nvdisasm_lines(offline_resources):
    listing = "\n".join([
        "        .text._norm_bwd_kernel:",
        "        /*0000*/                   MOV R1, c[0x0][0x28] ;",
        "        /*0010*/                   FFMA R4, R5, R6, R7 ;",
        "        /*0020*/              @!P0 FFMA R4, R5, R6, R7 ;",
        "        /*0030*/               @P1 SHF.L.U32 R2, R3, 0x10, RZ ;",
        "        /*0040*/                   LDGSTS.E.BYPASS.128 [R2], desc[UR4][R4.64] ;",
        "        /*0050*/              @UP0 BAR.SYNC.DEFER_BLOCKING 0x0 ;",
        "                                                                 /* 0x000fe20000000f00 */",
        ".L_x_0:",
    ])
    counts = offline_resources.opcode_counts(listing)
    assert counts == {"MOV": 1, "FFMA": 2, "SHF.L.U32": 1, "LDGSTS.E.BYPASS.128": 1, "BAR.SYNC.DEFER_BLOCKING": 1}


def test_global_access_bytes_read_ptx_lines(offline_resources):
    ptx = "\n".join([
        "\t@%p1 ld.global.L1::evict_last.L2::cache_hint.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd1 + 0 ], %rd9;",
        "\tld.global.v2.b32 { %r5, %r6 }, [ %rd2 + 0 ];",
        "\t@!%p2 ld.global.b16 { %rs1 }, [ %rd3 + 0 ];",
        "\tst.global.b32 [ %rd4 + 0 ], { %r7 };",
        "\t@%p3 st.global.v4.b32 [ %rd5 + 0 ], { %r8, %r9, %r10, %r11 };",
        "\tcp.async.cg.shared.global.L2::cache_hint [ %r12 + 0 ], [ %rd6 + 0 ], 0x10, %r13, %rd10;",
        "\t@%p4 cp.async.ca.shared.global [ %r14 + 0 ], [ %rd7 + 0 ], 0x4, %r15;",
        "\tld.shared.v4.b32 \t{%r16, %r17, %r18, %r19}, [global_smem+16528];",
        "\tld.param.u64 \t%rd8, [kernel_param_0];",
    ])
    assert offline_resources.global_access_bytes(ptx) == {
        ("ld", 16): 1, ("ld", 8): 1, ("ld", 2): 1, ("st", 4): 1, ("st", 16): 1, ("cp.async", 16): 1,
        ("cp.async", 4): 1}


def test_rows_of_eight_times_odd_columns_compile_to_vector_accesses():
    # 1000 bf16 columns (8 x 125): Triton's own specialization proves no alignment (not a multiple
    # of 16), so only ROW_ALIGN lets the compiler move more than one element an access. Each kernel
    # (forward single pass and looped; backward pipelined and looped, with the residual gradient)
    # is compiled for sm_90 without a GPU by the installed Triton, in a process of its own: this
    # session's kernels may be the interpreter's. Every global access must move more than 2 bytes.
    pytest.importorskip("triton.backends.nvidia.compiler")
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    specs = ["fwd:fused_add_layer_norm@4x1000=single/1024/w4", "fwd:fused_add_layer_norm@4x1000=looped/512/w4",
             "layer_norm@4x1000=1024/w4/s2/HELD_NARROW", "layer_norm@4x1000=looped/512/w4/p1/s1"]
    done = subprocess.run([sys.executable, "offline_resources.py", "--accesses", "--residual-grad", *specs],
                          cwd=root / "scripts", env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if "global accesses" in line]
    assert len(rows) == len(specs), done.stdout
    for row in rows:
        widths = [(kind, int(size)) for kind, size in re.findall(r"(ld|st|cp\.async) (\d+) B:", row)]
        assert "ROW_ALIGN 8" in row and widths and all(size > 2 for _, size in widths), row
        assert max(size for kind, size in widths if kind != "st") >= 8, row


@pytest.fixture
def offline_with_siblings(monkeypatch):
    import sys

    # Forward specs read their launch through tune_kernels, imported by name as from scripts/.
    monkeypatch.setitem(sys.modules, "tune_kernels", load_script("tune_kernels"))
    return load_script("offline_resources")


def test_a_forward_spec_takes_the_tables_launch_or_the_one_it_names(offline_with_siblings):
    from trinix_bench.ops import launch_config as lc

    op, rows, hidden, cfg = offline_with_siblings.parse_forward_spec("fwd:layer_norm@4096x8192")
    assert (op, rows, hidden) == ("layer_norm", 4096, 8192) and cfg == lc.forward_launch(8192, False)
    *_, decode = offline_with_siblings.parse_forward_spec("fwd:rms_norm@1x4096")
    assert decode == lc.forward_launch(4096, True, few_rows=True) and decode.early_affine
    *_, fused = offline_with_siblings.parse_forward_spec("fwd:fused_add_rms_norm@1x4096")
    assert fused == lc.forward_launch(4096, True, True) and not fused.early_affine
    op, rows, hidden, capped = offline_with_siblings.parse_forward_spec("fwd:layer_norm@4096x8192=single/8192/w16/reg32")
    assert (op, rows, hidden) == ("layer_norm", 4096, 8192)
    assert (capped.block_n, capped.num_warps, capped.looped, capped.max_registers) == (8192, 16, False, 32)


@pytest.mark.parametrize("spec, message", [("fwd:layernorm@4096x8192", "op must be one of"),
                                           ("fwd:layer_norm@4096", "expected fwd:op@ROWSxHIDDEN"),
                                           ("fwd:layer_norm@4096x8192=single/8192", "single/TILES/wWARPS")])
def test_a_malformed_forward_spec_names_the_expected_form(offline_with_siblings, spec, message):
    with pytest.raises(SystemExit, match=message):
        offline_with_siblings.parse_forward_spec(spec)
