"""scripts/peer_table.py: which providers a table measures, and in which order."""

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
