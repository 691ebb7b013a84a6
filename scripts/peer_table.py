"""Reproduce the peer table of shared/PEERS_H200.md with our ops beside the peers installed here.

Method (the same as the peer table): ``triton.testing.do_bench(fn, warmup=25, rep=100,
return_mode="median")``, which empties L2 between calls; bf16 x and weight, eps 1e-6 (1e-5 for
LayerNorm's peers as well as ours, which only changes values); ``full`` is one autograd call
``y = f(x, w[, b]); y.backward(dy)`` with grads reset to None between calls.

% of copy = ideal bytes / time / measured device-to-device copy bandwidth, with ideal bytes
fwd = 2*M*N*2, fused add fwd = 4*M*N*2, full = 5*M*N*2 (weights and row stats neglected).

    PYTHONPATH=. python scripts/peer_table.py --out results.json [--cells rms_fwd,ln_full] [--configs XL] [--rounds 3]

``ours`` is the public function with auto dispatch, ``ours_triton`` forces the kernels and
``ours_torch`` forces our PyTorch path. Prints one markdown table per op-mode and writes every measurement to ``--out`` as JSON lines as it
lands. This is a tuning tool for docs/kernels.md; the user-facing benchmark is benchmark_normalization.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys

import torch
import triton

import trinix_bench as tb

CONFIGS = {  # name: (rows, hidden), as in the peer table
    "Decode-1": (1, 4096),
    "Decode-32": (32, 4096),
    "Small": (2048, 4096),
    "Medium": (2048, 4096),
    "Large": (4096, 8192),
    "XL": (16384, 8192),
    "XXL": (32768, 12288),
    "XXXL": (131072, 16384),
}
CELLS = ("rms_fwd", "rms_full", "add_rms_fwd", "ln_fwd", "ln_full")
BYTES_PER_ELEMENT_PASSES = {"rms_fwd": 2, "rms_full": 5, "add_rms_fwd": 4, "ln_fwd": 2, "ln_full": 5}


def hf_rms(x, w, eps=1e-6):
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(x.dtype)


def hf_add_rms(x, r, w, eps=1e-6):
    s = x + r
    return hf_rms(s, w, eps), s


def _providers(cell):
    """name -> callable(x, r, w, b) for this cell, peers included only when importable."""
    is_ln = cell.startswith("ln")
    fused = cell.startswith("add")
    provs = {}
    if is_ln:
        provs["ours"] = lambda x, r, w, b: tb.layer_norm(x, w, b)
        provs["ours_triton"] = lambda x, r, w, b: tb.layer_norm(x, w, b, backend="triton")
        provs["ours_torch"] = lambda x, r, w, b: tb.layer_norm(x, w, b, backend="torch")
        provs["torch_F"] = lambda x, r, w, b: torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, 1e-5)
        compiled = torch.compile(lambda x, w, b: torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, 1e-5), dynamic=False)
        provs["torch_compile"] = lambda x, r, w, b: compiled(x, w, b)
    elif fused:
        provs["ours"] = lambda x, r, w, b: tb.fused_add_rms_norm(x, r, w)
        provs["ours_triton"] = lambda x, r, w, b: tb.fused_add_rms_norm(x, r, w, backend="triton")
        provs["ours_torch"] = lambda x, r, w, b: tb.fused_add_rms_norm(x, r, w, backend="torch")
        provs["hf_eager"] = lambda x, r, w, b: hf_add_rms(x, r, w)
        compiled = torch.compile(hf_add_rms, dynamic=False)
        provs["torch_compile"] = lambda x, r, w, b: compiled(x, r, w)
    else:
        provs["ours"] = lambda x, r, w, b: tb.rms_norm(x, w)
        provs["ours_triton"] = lambda x, r, w, b: tb.rms_norm(x, w, backend="triton")
        provs["ours_torch"] = lambda x, r, w, b: tb.rms_norm(x, w, backend="torch")
        provs["hf_eager"] = lambda x, r, w, b: hf_rms(x, w)
        provs["torch_F"] = lambda x, r, w, b: torch.nn.functional.rms_norm(x, x.shape[-1:], w, 1e-6)
        compiled = torch.compile(hf_rms, dynamic=False)
        provs["torch_compile"] = lambda x, r, w, b: compiled(x, w)
    try:
        from liger_kernel.transformers import functional as lf

        if is_ln:
            provs["liger"] = lambda x, r, w, b: lf.liger_layer_norm(x, w, b, 1e-5)
        elif fused:
            provs["liger"] = lambda x, r, w, b: lf.liger_fused_add_rms_norm(x, r, w, 1e-6)
        else:
            provs["liger"] = lambda x, r, w, b: lf.liger_rms_norm(x, w, 1e-6)
    except ImportError as exc:
        print(f"liger unavailable: {exc}", file=sys.stderr)
    return provs


def copy_bandwidth_gbps() -> float:
    src = torch.randn(1 << 30, device="cuda", dtype=torch.bfloat16)  # 2 GiB
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), warmup=25, rep=200, return_mode="median")
    return 2 * src.numel() * src.element_size() / (ms * 1e-3) / 1e9


def select_providers(available, keep):
    """The providers of ``available`` named in ``keep``, in ``keep``'s order (the order they are
    measured in, so an order effect can be checked by reversing it); all of them for None."""
    if keep is None:
        return available
    return {name: available[name] for name in keep if name in available}


def measuring_order(names, round_index):
    """The providers in the order round ``round_index`` measures them: each round starts one
    provider later, so over len(names) rounds every provider takes every place once."""
    shift = round_index % len(names) if names else 0
    return names[shift:] + names[:shift]


def make_inputs(cell, rows, hidden):
    """(x, r, w, b) for one cell, bf16 on the GPU, seeded by the shape so that every provider of a
    config reads the same values; r (the residual) only for fused add, b only for LayerNorm."""
    gen = torch.Generator(device="cuda").manual_seed(rows * 7 + hidden)
    x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16, generator=gen)
    r = torch.randn_like(x) if cell.startswith("add") else None
    w = torch.randn(hidden, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(hidden, device="cuda", dtype=torch.bfloat16, generator=gen) if cell.startswith("ln") else None
    return x, r, w, b


def cell_call(cell, fn, inputs):
    """(a no-argument call of ``fn`` on ``inputs`` as the cell times it, the leaves whose grads to
    reset to None between calls or None, the grad mode to run it under): ``fn(*inputs)`` under
    no_grad for a forward cell; for a ``full`` cell one autograd call ``fn(...).backward(dy)``."""
    x, r, w, b = inputs
    if not cell.endswith("full"):
        return (lambda: fn(x, r, w, b)), None, torch.no_grad
    leaves = [t.requires_grad_() for t in (x, w, b) if t is not None]
    dy = torch.randn_like(x)

    def step():
        fn(x, r, w, b).backward(dy)

    return step, leaves, contextlib.nullcontext


def time_call(cell, fn, inputs):
    """do_bench median (ms) of the cell's call of ``fn`` on ``inputs`` (cell_call)."""
    call, leaves, grad_mode = cell_call(cell, fn, inputs)
    with grad_mode():
        return triton.testing.do_bench(call, warmup=25, rep=100, grad_to_none=leaves, return_mode="median")


def measure(cell, rows, hidden, fn):
    """The peer table's reading of one provider in one config: fresh inputs, then time_call (ms)."""
    return time_call(cell, fn, make_inputs(cell, rows, hidden))


def measure_config(cell, config, providers, rounds, copy_gbps, sink, timer=measure):
    """Every provider of ``providers`` (name -> callable) on one config of a cell, ``rounds`` times,
    each round in measuring_order; each row is written to ``sink`` as a JSON line as it lands, and
    a provider that raises gets a row with its error instead of stopping the table. Returns the rows."""
    rows, hidden = CONFIGS[config]
    ideal_bytes = BYTES_PER_ELEMENT_PASSES[cell] * rows * hidden * 2
    results = []
    for round_index in range(rounds):
        for name in measuring_order(list(providers), round_index):
            try:
                ms = timer(cell, rows, hidden, providers[name])
                status = "ok"
            except Exception as exc:  # a peer failing must not stop the table
                ms, status = float("nan"), f"{type(exc).__name__}: {str(exc)[:120]}"
            torch.cuda.empty_cache()
            row = dict(cell=cell, config=config, rows=rows, hidden=hidden, provider=name, us=ms * 1e3,
                       pct_of_copy=ideal_bytes / (ms * 1e-3) / (copy_gbps * 1e9) * 100, copy_gbps=copy_gbps,
                       status=status, round=round_index)
            results.append(row)
            sink.write(json.dumps(row) + "\n")
            sink.flush()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--providers", default="",
                        help="comma list to keep, measured in this order within each cell (default: all)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every cell this many times, each round starting one provider later "
                             "(run 84: the same kernel read 12.1-12.8 or 14.0-15.0 us by its place in the order); "
                             "the printed tables give each provider's median")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be a positive integer, got {args.rounds}")
    cells = args.cells.split(",")
    configs = args.configs.split(",")
    for flag, names, known in (("--cells", cells, CELLS), ("--configs", configs, CONFIGS)):
        unknown = [name for name in names if name not in known]
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; expected a comma list of {', '.join(known)}")
    keep = args.providers.split(",") if args.providers else None
    # One compiled function serves every config of a cell; static shapes need one graph per config.
    torch._dynamo.config.recompile_limit = 64
    bw = copy_bandwidth_gbps()
    print(f"copy bandwidth: {bw:.0f} GB/s", flush=True)
    with open(args.out, "a") as sink:
        for cell in cells:
            providers = select_providers(_providers(cell), keep)
            rows = [row for config in configs for row in measure_config(cell, config, providers, args.rounds, bw, sink)]
            _print_cell(cell, configs, rows)
    return 0


def median_by_provider(rows):
    """provider -> its row with the median us and % of copy over its ok rounds (a failed row when
    no round succeeded)."""
    by = {}
    for name in dict.fromkeys(r["provider"] for r in rows):
        mine = [r for r in rows if r["provider"] == name]
        ok = [r for r in mine if r["status"] == "ok"]
        if not ok:
            by[name] = mine[-1]
            continue
        by[name] = dict(ok[0], us=statistics.median(r["us"] for r in ok),
                        pct_of_copy=statistics.median(r["pct_of_copy"] for r in ok))
    return by


def _print_cell(cell, configs, rows):
    names = list(dict.fromkeys(r["provider"] for r in rows))
    print(f"\n#### {cell} (us; ratio = best peer / ours)\n")
    print("| config | " + " | ".join(names) + " | ratio | ours % copy |")
    print("|---" * (len(names) + 3) + "|")
    ratios = []
    for cfg in configs:
        by = median_by_provider([r for r in rows if r["config"] == cfg])
        peers = [r["us"] for n, r in by.items() if not n.startswith("ours") and r["status"] == "ok"]
        ours = by.get("ours", {}).get("us", float("nan"))
        ratio = min(peers) / ours if peers and ours == ours else float("nan")
        ratios.append(ratio)
        cells = " | ".join(f"{by[n]['us']:.1f}" if n in by else "-" for n in names)
        print(f"| {cfg} | {cells} | {ratio:.2f} | {by.get('ours', {}).get('pct_of_copy', float('nan')):.0f}% |")
    finite = [r for r in ratios if r == r and r > 0]
    if finite:
        print(f"\ngeomean ratio: {statistics.geometric_mean(finite):.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
