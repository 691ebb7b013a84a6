"""scripts/peer_table.py: which providers a table measures, and in which order."""

import torch
from helpers import load_script


def test_providers_are_measured_in_the_order_asked():
    peer_table = load_script("peer_table")
    available = {"ours": 1, "torch_F": 2, "liger": 3}
    assert list(peer_table.select_providers(available, ["liger", "ours"])) == ["liger", "ours"]
    assert list(peer_table.select_providers(available, ["ours", "apex"])) == ["ours"]  # apex not installed
    assert peer_table.select_providers(available, None) is available


def test_each_round_starts_one_provider_later():
    peer_table = load_script("peer_table")
    names = ["ours", "torch_F", "liger"]
    orders = [peer_table.measuring_order(names, r) for r in range(4)]
    assert orders == [["ours", "torch_F", "liger"], ["torch_F", "liger", "ours"], ["liger", "ours", "torch_F"],
                      ["ours", "torch_F", "liger"]]
    for place in range(3):  # over three rounds every provider takes every place once
        assert sorted(order[place] for order in orders[:3]) == sorted(names)


def test_the_printed_value_is_each_providers_median_over_its_ok_rounds():
    peer_table = load_script("peer_table")
    rows = [dict(provider="ours", us=u, pct_of_copy=p, status="ok") for u, p in ((14.5, 55), (12.3, 64), (12.9, 61))]
    rows += [dict(provider="liger", us=float("nan"), pct_of_copy=float("nan"), status="RuntimeError: x"),
             dict(provider="liger", us=13.1, pct_of_copy=60, status="ok")]
    rows += [dict(provider="apex", us=float("nan"), pct_of_copy=float("nan"), status="ImportError: y")]
    by = peer_table.median_by_provider(rows)
    assert (by["ours"]["us"], by["ours"]["pct_of_copy"]) == (12.9, 61)
    assert by["liger"]["us"] == 13.1 and by["liger"]["status"] == "ok"
    assert by["apex"]["status"] == "ImportError: y"


def test_each_reading_is_written_as_it_lands_and_a_failing_peer_does_not_stop_the_table(tmp_path):
    import json
    import math

    peer_table = load_script("peer_table")
    providers = {"ours": "fast", "liger": "broken", "torch_F": "slow"}
    written = []

    def timer(cell, rows, hidden, fn):
        assert (cell, rows, hidden) == ("rms_fwd", 4096, 8192)  # the config's shape reaches the timer
        if fn == "broken":
            raise RuntimeError("no kernel for this GPU")
        with open(tmp_path / "out.jsonl") as f:  # what an interrupted run would have kept so far
            written.append(len(f.readlines()))
        return {"fast": 0.040, "slow": 0.080}[fn]

    with open(tmp_path / "out.jsonl", "a") as sink:
        rows = peer_table.measure_config("rms_fwd", "Large", providers, 2, 4000.0, sink, timer=timer)
    stored = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    assert stored == [json.loads(json.dumps(r)) for r in rows] and len(rows) == 6
    assert written == [0, 2, 4, 5]  # each earlier row was on disk before the next reading started
    assert [r["provider"] for r in rows] == ["ours", "liger", "torch_F", "liger", "torch_F", "ours"]
    assert [r["round"] for r in rows] == [0, 0, 0, 1, 1, 1]
    broken = [r for r in rows if r["provider"] == "liger"]
    assert all(r["status"] == "RuntimeError: no kernel for this GPU" and math.isnan(r["us"]) for r in broken)
    ours = rows[0]
    assert ours["us"] == 40.0 and ours["status"] == "ok"
    # % of copy: 2 passes of 4096 x 8192 bf16 in 40 us against a 4000 GB/s copy
    assert math.isclose(ours["pct_of_copy"], 2 * 4096 * 8192 * 2 / 40e-6 / 4000e9 * 100)


def test_unknown_cells_or_configs_are_named(capsys, tmp_path):
    import pytest

    peer_table = load_script("peer_table")
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit):
        peer_table.main(["--out", str(out), "--configs", "XL,Huge"])
    assert "--configs: unknown Huge; expected a comma list of Decode-1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        peer_table.main(["--out", str(out), "--cells", "rms_fwd,gn_fwd"])
    assert "--cells: unknown gn_fwd; expected a comma list of rms_fwd" in capsys.readouterr().err
    assert not out.exists()  # nothing measured, nothing written


def test_a_cell_call_runs_the_provider_as_the_table_times_it():
    # Forward cells run under no_grad with nothing to reset; a full cell is one autograd call
    # f(x, w).backward(dy) on random dy, its leaves returned for resetting between calls.
    peer_table = load_script("peer_table")
    x = torch.randn(3, 8, dtype=torch.float64)
    w = torch.randn(8, dtype=torch.float64)
    grad_enabled = []

    def scale(x, r, w, b):
        grad_enabled.append(torch.is_grad_enabled())
        return x * w

    call, leaves, grad_mode = peer_table.cell_call("rms_fwd", scale, (x, None, w, None))
    with grad_mode():
        y = call()
    assert leaves is None and grad_enabled == [False] and torch.equal(y, x * w)
    call, leaves, grad_mode = peer_table.cell_call("rms_full", scale, (x, None, w, None))
    with grad_mode():
        call()
    assert grad_enabled == [False, True] and leaves[0] is x and leaves[1] is w
    dy = x.grad / w  # x.grad = dy * w
    assert torch.allclose(w.grad, (x.detach() * dy).sum(0))
