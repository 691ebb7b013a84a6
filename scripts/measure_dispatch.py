"""Measure where "auto" should switch from the PyTorch path to Triton, per op, for inference and training.

For each op and a ladder of (rows x hidden) sizes, times ``backend="triton"`` and ``backend="torch"``
with ``triton.testing.do_bench`` (median, L2 emptied between calls; the best of three medians): the forward under no_grad
(inference) and forward + backward through autograd (training). The threshold is the smallest size
from which Triton is at least as fast at every larger size of the ladder.

    PYTHONPATH=. python scripts/measure_dispatch.py --out dispatch_profile.json

Writes a JSON profile loadable with ``trinix_bench.load_dispatch_profile`` (or
TRINIX_DISPATCH_PROFILE), and prints the table behind it.
"""

from __future__ import annotations

import argparse
import json

import torch
import triton

import trinix_bench as tb
from trinix_bench.dispatch import OPS, threshold_field

LADDER = [(1, 4096), (8, 4096), (32, 4096), (128, 4096), (512, 4096), (1024, 4096), (2048, 4096),
          (4096, 4096), (4096, 8192), (8192, 8192), (16384, 8192)]


def _call(op, backend, x, r, w, b):
    if op == "rms_norm":
        return tb.rms_norm(x, w, backend=backend), None
    if op == "layer_norm":
        return tb.layer_norm(x, w, b, backend=backend), None
    if op == "fused_add_rms_norm":
        return tb.fused_add_rms_norm(x, r, w, backend=backend)
    return tb.fused_add_layer_norm(x, r, w, b, backend=backend)


REPEATS = 3  # best of three do_bench medians: one host hiccup must not move a threshold


def time_us(op, backend, rows, hidden, training):
    return min(_time_once(op, backend, rows, hidden, training) for _ in range(REPEATS))


def _time_once(op, backend, rows, hidden, training):
    x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16)
    r = torch.randn_like(x) if op.startswith("fused") else None
    w = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(hidden, device="cuda", dtype=torch.bfloat16) if op.endswith("layer_norm") else None
    if not training:
        with torch.no_grad():
            return 1e3 * triton.testing.do_bench(lambda: _call(op, backend, x, r, w, b), warmup=25, rep=100,
                                                 return_mode="median")
    leaves = [t.requires_grad_() for t in (x, r, w, b) if t is not None]
    dy = torch.randn_like(x)
    dres = torch.randn_like(x) if r is not None else None

    def step():
        y, res_out = _call(op, backend, x, r, w, b)
        torch.autograd.backward([y] + ([res_out] if res_out is not None else []),
                                [dy] + ([dres] if dres is not None else []))

    return 1e3 * triton.testing.do_bench(step, warmup=25, rep=100, grad_to_none=leaves, return_mode="median")


def crossover(points):
    """Smallest numel from which Triton is never slower along the ladder; None if it never is."""
    threshold = None
    for numel, triton_us, torch_us in reversed(points):
        if triton_us <= torch_us:
            threshold = numel
        else:
            break
    return threshold


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    profile, table = {}, []
    for op in OPS:
        for training in (False, True):
            points = []
            for rows, hidden in LADDER:
                t_us = time_us(op, "triton", rows, hidden, training)
                p_us = time_us(op, "torch", rows, hidden, training)
                points.append((rows * hidden, t_us, p_us))
                table.append(dict(op=op, training=training, rows=rows, hidden=hidden, triton_us=t_us, torch_us=p_us))
                print(f"{op:22s} {'train' if training else 'infer'} {rows:6d}x{hidden:5d} "
                      f"triton {t_us:8.1f} us  torch {p_us:8.1f} us", flush=True)
            found = crossover(points)
            # Never faster on the ladder: keep Triton off below a size past the ladder's top.
            limit = found if found is not None else 2 * LADDER[-1][0] * LADDER[-1][1]
            profile[threshold_field(op, training)] = limit
    with open(args.out, "w") as f:
        json.dump(profile, f, indent=2)
    with open(args.out.replace(".json", "_table.json"), "w") as f:
        json.dump(table, f, indent=1)
    print(json.dumps(profile, indent=2))


if __name__ == "__main__":
    main()
