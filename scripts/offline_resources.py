"""Registers, spills and shared memory of the backward kernel's launches, compiled for sm_90 on a
machine without a GPU.

    pip install --no-deps --target /tmp/t36 triton==3.6.0      # the H200's Triton (ptxas included)
    PYTHONPATH=/tmp/t36:. python scripts/offline_resources.py layer_norm@32768x12288 \\
        layer_norm@131072x16384=8192+8192/w16/s3/HELD_NARROW/reload/separate [--dtype float16] [--opcodes 12]

A spec is ``op@ROWSxHIDDEN`` (the table's launch) or ``op@ROWSxHIDDEN=LAUNCH`` with LAUNCH in
``launch_config.BACKWARD_NOTATION``, as ``tune_kernels.py backward_ab`` reads it.
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


def compile_backward(op: str, rows: int, hidden: int, cfg: lc.BackwardLaunch, dtype: torch.dtype,
                     residual_grad: bool = False):
    """The compiled backward kernel for sm_90 (Triton's CompiledKernel); ``residual_grad``: as the
    fused ops' backward compiles it when residual_out has a gradient (HAS_DRES)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import CUDABackend
    from triton.compiler import ASTSource

    from trinix_bench.ops import normalization as nz

    kernel = nz._norm_bwd_looped_kernel if cfg.looped else nz._norm_bwd_kernel
    target = GPUTarget("cuda", 90, 32)
    constexprs = nz.backward_flags(cfg, rows, hidden, dtype.itemsize, op == "rms_norm", residual_grad, True, True,
                                   op == "layer_norm")
    constexprs = {name: value for name, value in constexprs.items() if name in kernel.arg_names}
    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name == "row_scratch_ptr" and cfg.looped:  # the looped kernel's fp32 scratch (x's placeholder else)
            signature[name] = "*fp32"
        elif name in _POINTERS:
            signature[name] = "*" + _TRITON_TYPES[dtype]
        elif name in _FP32_POINTERS:
            signature[name] = "*fp32"
        elif name == "offset":
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
    divisible = list(_POINTERS + _FP32_POINTERS)
    if hidden % 16 == 0:  # what the launch specializes on (launch_arguments)
        divisible += list(_ROW_STRIDES) + ["n_cols"]
    backend = CUDABackend(target)
    attrs = {(kernel.arg_names.index(name),): backend.parse_attr("D") for name in divisible}
    source = ASTSource(kernel, signature, constexprs, attrs)
    return triton.compile(source, target=target, options=dict(num_warps=cfg.num_warps, num_stages=3))


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
    parser.add_argument("specs", nargs="+", help=f"op@ROWSxHIDDEN[=LAUNCH], LAUNCH as {lc.BACKWARD_NOTATION}")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--residual-grad", action="store_true",
                        help="compile as the fused ops' backward with residual_out's gradient (HAS_DRES)")
    parser.add_argument("--opcodes", type=int, default=0, metavar="N",
                        help="also list each kernel's N most frequent SASS opcodes (static counts)")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print("| spec | launch | regs | spill stores / loads B | shared B |")
    print("|---|---|---|---|---|")
    for spec in args.specs:
        op, rows, hidden, cfg = parse_spec(spec, dtype)
        compiled = compile_backward(op, rows, hidden, cfg, dtype, args.residual_grad)
        registers, stores, loads = ptxas_resources(compiled.asm["ptx"])
        print(f"| {spec} | {lc.backward_notation(cfg, rows, hidden)} | {registers} | {stores} / {loads} | "
              f"{compiled.metadata.shared} |", flush=True)
        if args.opcodes:
            counts = opcode_counts(disassemble(compiled.asm["cubin"]))
            listed = ", ".join(f"{name} {n}" for name, n in counts.most_common(args.opcodes))
            print(f"|  | SASS opcodes ({sum(counts.values())} in all): {listed} | | | |", flush=True)


if __name__ == "__main__":
    main()
