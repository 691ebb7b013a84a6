"""Registers, spills and shared memory of the kernels' launches (backward; forward with ``fwd:``),
compiled for sm_90 on a machine without a GPU.

    pip install --no-deps --target /tmp/t36 triton==3.6.0      # the H200's Triton (ptxas included)
    PYTHONPATH=/tmp/t36:. python scripts/offline_resources.py layer_norm@32768x12288 \\
        layer_norm@131072x16384=8192+8192/w16/s3/HELD_NARROW/reload/separate [--dtype float16] [--opcodes 12] \\
        [--accesses]

A spec is ``op@ROWSxHIDDEN`` (the table's launch) or ``op@ROWSxHIDDEN=LAUNCH`` with LAUNCH in
``launch_config.BACKWARD_NOTATION``, as ``tune_kernels.py backward_ab`` reads it; a forward spec is
``fwd:op@ROWSxHIDDEN[=LAUNCH]`` with LAUNCH as ``tune_kernels.py forward_ab`` reads it, e.g.
``fwd:layer_norm@4096x8192=single/8192/w16/reg32`` (run from scripts/ or with it on the path).
The kernel is compiled by Triton as a launch would specialize it (16-byte aligned pointers, row
strides divisible by 16 when the width is) and its PTX is run through Triton's ptxas with ``-v``.
With the device's Triton version the counts match what the H200 reports: run 72 read the same
registers, spill bytes and shared memory for six launches (e.g. LayerNorm 32768x16384's table
launch 128 registers, 32 bytes, 229464 B; with joint sums 144 bytes). Other Triton versions
generate other code. Run 68 screened launches this way before timing them on the GPU.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import tempfile

import torch

from trinix_bench.ops import launch_config as lc

_POINTERS = ("dy_ptr", "x_ptr", "dres_ptr", "dx_ptr", "w_ptr", "row_scratch_ptr")
_FP32_POINTERS = ("mean_ptr", "rstd_ptr", "dw_partial_ptr", "db_partial_ptr")
_ROW_STRIDES = ("dy_stride", "x_stride", "dres_stride", "dx_stride")
_TRITON_TYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def parse_spec(spec: str, dtype: torch.dtype) -> tuple[str, int, int, lc.BackwardLaunch]:
    """``op@ROWSxHIDDEN[=LAUNCH]`` -> (op, rows, hidden, BackwardLaunch); the grid fields are 0
    (they do not change the compiled code)."""
    head, _, launch = spec.partition("=")
    op, _, shape = head.partition("@")
    try:
        rows, hidden = (int(v) for v in shape.split("x"))
    except ValueError:
        raise SystemExit(f"spec {spec!r}: expected op@ROWSxHIDDEN[=LAUNCH], e.g. layer_norm@32768x12288") from None
    if op not in ("rms_norm", "layer_norm"):
        raise SystemExit(f"spec {spec!r}: op must be rms_norm or layer_norm")
    if not launch:
        return op, rows, hidden, lc._backward_shape(hidden, op == "rms_norm", dtype, False)
    try:
        return op, rows, hidden, lc.parse_backward_notation(launch)
    except ValueError as exc:
        raise SystemExit(f"spec {spec!r}: {exc}") from None


def _compile(kernel, constexprs: dict, types: dict, row_strides: tuple, hidden: int, num_warps: int,
             max_registers: int = 0):
    """``kernel`` compiled for sm_90 as a launch would specialize it: ``types`` gives each pointer and
    float argument's Triton type (other runtime arguments are i32), pointers 16-byte aligned, and
    the row strides and n_cols divisible by 16 where the width is (launch_arguments)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import CUDABackend
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", 90, 32)
    constexprs = {name: value for name, value in constexprs.items() if name in kernel.arg_names}
    signature = {name: "constexpr" if name in constexprs else types.get(name, "i32") for name in kernel.arg_names}
    divisible = [name for name, kind in types.items() if kind.startswith("*")]
    if hidden % 16 == 0:
        divisible += list(row_strides) + ["n_cols"]
    backend = CUDABackend(target)
    attrs = {(kernel.arg_names.index(name),): backend.parse_attr("D") for name in divisible}
    options = dict(num_warps=num_warps, num_stages=3)
    if max_registers:
        options["maxnreg"] = max_registers
    return triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target, options=options)


def compile_backward(op: str, rows: int, hidden: int, cfg: lc.BackwardLaunch, dtype: torch.dtype,
                     residual_grad: bool = False):
    """The compiled backward kernel for sm_90 (Triton's CompiledKernel); ``residual_grad``: as the
    fused ops' backward compiles it when residual_out has a gradient (HAS_DRES)."""
    from trinix_bench.ops import normalization as nz

    kernel = nz._norm_bwd_looped_kernel if cfg.looped else nz._norm_bwd_kernel
    constexprs = nz.backward_flags(cfg, rows, hidden, dtype.itemsize, op == "rms_norm", residual_grad, True, True,
                                   op == "layer_norm")
    types = {name: "*" + _TRITON_TYPES[dtype] for name in _POINTERS}
    types.update({name: "*fp32" for name in _FP32_POINTERS}, offset="fp32")
    if cfg.looped:  # the looped kernel's fp32 scratch (x's placeholder else)
        types["row_scratch_ptr"] = "*fp32"
    return _compile(kernel, constexprs, types, _ROW_STRIDES, hidden, cfg.num_warps)


_FWD_POINTERS = ("x_ptr", "res_ptr", "res_out_ptr", "y_ptr", "w_ptr", "b_ptr")
_FWD_FP32_POINTERS = ("mean_ptr", "rstd_ptr")
_FWD_ROW_STRIDES = ("x_stride", "res_stride", "res_out_stride", "y_stride")
_FORWARD_PREFIX = "fwd:"


def parse_forward_spec(spec: str) -> tuple[str, int, int, lc.ForwardLaunch]:
    """``fwd:op@ROWSxHIDDEN[=LAUNCH]`` (op rms_norm, layer_norm, fused_add_rms_norm or
    fused_add_layer_norm; LAUNCH as tune_kernels.py forward_ab reads it) -> (op, rows, hidden,
    ForwardLaunch); without LAUNCH the table's launch for that row count."""
    import tune_kernels

    body = spec[len(_FORWARD_PREFIX):]
    head, _, launch = body.partition("=")
    op, _, shape = head.partition("@")
    if op not in tune_kernels.FORWARD_AB_OPS:
        raise SystemExit(f"spec {spec!r}: op must be one of {', '.join(tune_kernels.FORWARD_AB_OPS)}")
    if launch:
        op, rows, hidden, _, cfg = tune_kernels._parse_forward_candidate(body)
        return op, rows, hidden, cfg
    try:
        rows, hidden = (int(v) for v in shape.split("x"))
    except ValueError:
        raise SystemExit(f"spec {spec!r}: expected fwd:op@ROWSxHIDDEN[=LAUNCH], e.g. fwd:layer_norm@4096x8192") from None
    is_rms = tune_kernels.FORWARD_AB_OPS[op][0]
    return op, rows, hidden, lc.forward_launch(hidden, is_rms, op.startswith("fused_add"),
                                               few_rows=rows <= lc.early_affine_rows(hidden))


def compile_forward(op: str, rows: int, hidden: int, cfg: lc.ForwardLaunch, dtype: torch.dtype):
    """The compiled forward kernel for sm_90 as an inference call launches it (no statistics stored)."""
    from trinix_bench.ops import normalization as nz

    kernel = nz._norm_fwd_looped_kernel if cfg.looped else nz._norm_fwd_kernel
    is_rms = "rms" in op
    constexprs = nz.forward_flags(cfg, rows, hidden, dtype.itemsize, is_rms, op.startswith("fused_add"), True,
                                  not is_rms, False)
    types = {name: "*" + _TRITON_TYPES[dtype] for name in _FWD_POINTERS}
    types.update({name: "*fp32" for name in _FWD_FP32_POINTERS}, eps="fp32", offset="fp32")
    return _compile(kernel, constexprs, types, _FWD_ROW_STRIDES, hidden, cfg.num_warps, cfg.max_registers)


def ptxas_resources(ptx: str) -> tuple[int, int, int]:
    """(registers a thread, spill store bytes, spill load bytes) from Triton's ptxas -v for sm_90a."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "kernel.ptx")
        with open(source, "w") as f:
            f.write(ptx)
        done = subprocess.run([get_ptxas(90).path, "-v", "--gpu-name=sm_90a", source, "-o", source + ".o"],
                              capture_output=True, text=True, check=True)
    log = done.stdout + done.stderr
    registers = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    if registers is None or spills is None:
        raise RuntimeError(f"cannot read ptxas -v output:\n{log}")
    return int(registers.group(1)), int(spills.group(1)), int(spills.group(2))


def opcode_counts(sass: str) -> collections.Counter:
    """Static count of each SASS opcode (with its modifiers, predicates dropped) in ``nvdisasm``'s
    listing: where a kernel's instructions go, e.g. how many widen bf16 (SHF, PRMT, IMAD.U32)."""
    counts = collections.Counter()
    for line in sass.splitlines():
        match = _SASS_INSTRUCTION.match(line)
        if match:
            counts[match.group(1)] += 1
    return counts


# "        /*0120*/                   @!P0 FFMA.FTZ R4, R5, R6, R7 ;" -> "FFMA.FTZ"
_SASS_INSTRUCTION = re.compile(r"\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)")


# "@%p1 ld.global.L1::evict_last.L2::cache_hint.v4.b32 { ... }, [ %rd1 + 0 ];" -> (ld, 4 x 32 bits);
# "cp.async.cg.shared.global.L2::cache_hint [ %r1 + 0 ], [ %rd2 + 0 ], 0x10, %r3;" -> (cp.async, 16 bytes)
_GLOBAL_ACCESS = re.compile(r"\s*(?:@!?%\w+\s+)?(ld|st)\.global\S*?(?:\.v(\d+))?\.[bfsu](\d+)\s")
_ASYNC_COPY = re.compile(r"\s*(?:@!?%\w+\s+)?cp\.async\.c[ag]\.shared\.global\S*\s+\[[^]]*\],\s*\[[^]]*\],\s*(0x[0-9a-f]+|\d+)")


def global_access_bytes(ptx: str) -> collections.Counter:
    """Static count of the PTX's global memory accesses by kind and width: ("ld" | "st" |
    "cp.async", bytes a thread moves). 16 is one vector (8 bf16); a row whose alignment the
    compiler cannot prove moves one element an access, 2 bytes in bf16 (ROW_ALIGN, row_alignment)."""
    counts = collections.Counter()
    for line in ptx.splitlines():
        match = _GLOBAL_ACCESS.match(line)
        if match:
            kind, lanes, bits = match.groups()
            counts[kind, int(lanes or 1) * int(bits) // 8] += 1
            continue
        match = _ASYNC_COPY.match(line)
        if match:
            counts["cp.async", int(match.group(1), 0)] += 1
    return counts


def disassemble(cubin: bytes) -> str:
    """``nvdisasm -c`` of a cubin, with the nvdisasm Triton ships beside its ptxas."""
    from triton.backends.nvidia.compiler import get_ptxas

    nvdisasm = os.path.join(os.path.dirname(get_ptxas(90).path), "nvdisasm")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        return subprocess.run([nvdisasm, "-c", path], capture_output=True, text=True, check=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", help=f"op@ROWSxHIDDEN[=LAUNCH], LAUNCH as {lc.BACKWARD_NOTATION}; "
                                                 "or fwd:op@ROWSxHIDDEN[=LAUNCH], LAUNCH as tune_kernels.py forward_ab reads it")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--residual-grad", action="store_true",
                        help="compile as the fused ops' backward with residual_out's gradient (HAS_DRES)")
    parser.add_argument("--opcodes", type=int, default=0, metavar="N",
                        help="also list each kernel's N most frequent SASS opcodes (static counts)")
    parser.add_argument("--accesses", action="store_true",
                        help="also list each kernel's global loads and stores by width (static counts from its PTX)")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print("| spec | launch | regs | spill stores / loads B | shared B |")
    print("|---|---|---|---|---|")
    for spec in args.specs:
        if spec.startswith(_FORWARD_PREFIX):
            import tune_kernels

            op, rows, hidden, cfg = parse_forward_spec(spec)
            compiled = compile_forward(op, rows, hidden, cfg, dtype)
            label = tune_kernels.forward_label(cfg)
        else:
            op, rows, hidden, cfg = parse_spec(spec, dtype)
            compiled = compile_backward(op, rows, hidden, cfg, dtype, args.residual_grad)
            label = lc.backward_notation(cfg, rows, hidden)
        registers, stores, loads = ptxas_resources(compiled.asm["ptx"])
        print(f"| {spec} | {label} | {registers} | {stores} / {loads} | {compiled.metadata.shared} |", flush=True)
        if args.opcodes:
            counts = opcode_counts(disassemble(compiled.asm["cubin"]))
            listed = ", ".join(f"{name} {n}" for name, n in counts.most_common(args.opcodes))
            print(f"|  | SASS opcodes ({sum(counts.values())} in all): {listed} | | | |", flush=True)
        if args.accesses:
            widths = global_access_bytes(compiled.asm["ptx"])
            listed = ", ".join(f"{kind} {size} B: {n}" for (kind, size), n in sorted(widths.items()))
            from trinix_bench.ops.normalization import row_alignment

            print(f"|  | global accesses (ROW_ALIGN {row_alignment(dtype.itemsize, hidden)}): {listed} | | | |",
                  flush=True)


if __name__ == "__main__":
    main()
