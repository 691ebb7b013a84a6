"""scripts/peer_ratios.py: ratios against the peer bar are a pure function of stored rows."""

import json
import math

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def peer_ratios():
    return load_script("peer_ratios")


PEERS_MD = """# Peer figures

#### rms fwd

| config | rows x hidden | torch_F.rms_norm | quack | best | best % of copy |
|---|---|---|---|---|---|
| XL | 16384x8192 | 205.6 | 135.3 | quack | 93% |
| XXXL | 131072x16384 | 3284.6 | 2074.5 | quack | 98% |

#### ln full

| config | rows x hidden | torch_F.layer_norm | liger | best | best % of copy |
|---|---|---|---|---|---|
| XL | 16384x8192 | 743.1 | 465.6 | liger | 68% |
"""


def _rows(path, rows):
    path.write_text("".join(json.dumps(dict(status="ok", **r)) + "\n" for r in rows))
    return path


def test_ratios_pass_rule_and_medians(peer_ratios, tmp_path):
    bar = peer_ratios.parse_peer_file(PEERS_MD)
    assert bar[("rms_fwd", "XXXL")] == ("quack", 2074.5, 98.0)
    first = _rows(tmp_path / "a.jsonl", [
        dict(cell="rms_fwd", config="XL", provider="ours", us=140.0, pct_of_copy=90.0),
        dict(cell="rms_fwd", config="XL", provider="liger", us=137.0, pct_of_copy=92.0),
        dict(cell="rms_fwd", config="XXXL", provider="ours", us=2110.0, pct_of_copy=96.0),
        dict(cell="ln_full", config="XL", provider="ours", us=900.0, pct_of_copy=40.0),
        dict(cell="ln_full", config="XL", provider="liger", us=460.0, pct_of_copy=68.0),
    ])
    second = _rows(tmp_path / "b.jsonl", [
        dict(cell="ln_full", config="XL", provider="ours", us=370.0, pct_of_copy=84.0),
        dict(cell="ln_full", config="XL", provider="ours", us=380.0, pct_of_copy=82.0),
    ])
    rows = {(r["cell"], r["config"]): r for r in peer_ratios.ratio_rows(bar, peer_ratios.load_runs([first, second]))}
    xl = rows[("rms_fwd", "XL")]
    assert xl["file_ratio"] == pytest.approx(135.3 / 140.0) and not xl["file_pass"]  # quack below 97% of copy
    assert xl["run_peer"] == "liger" and not xl["run_pass"]
    xxxl = rows[("rms_fwd", "XXXL")]
    assert 0.97 <= xxxl["file_ratio"] < 1 and xxxl["file_pass"]  # tolerated: that peer is above 97%
    assert math.isnan(xxxl["run_ratio"])  # no peer measured in the runs
    ln = rows[("ln_full", "XL")]
    assert ln["ours_us"] == 380.0  # median of 900, 370, 380 over both files
    assert ln["file_ratio"] == pytest.approx(465.6 / 380.0) and ln["file_pass"] and ln["run_pass"]
    assert peer_ratios.geomean([2.0, 0.5, math.nan]) == pytest.approx(1.0)


def test_a_later_file_supersedes_a_cell_when_asked(peer_ratios, tmp_path):
    # --supersede: a re-run of some cells replaces those cells' rows (every provider, failed rows
    # included) and leaves the other cells to the earlier file
    first = _rows(tmp_path / "a.jsonl", [
        dict(cell="rms_fwd", config="XXXL", provider="ours", us=2110.0, pct_of_copy=96.0),
        dict(cell="rms_fwd", config="XXXL", provider="liger", us=2050.0, pct_of_copy=99.0),
        dict(cell="rms_fwd", config="XL", provider="ours", us=140.0, pct_of_copy=90.0),
    ])
    second = _rows(tmp_path / "b.jsonl", [
        dict(cell="rms_fwd", config="XXXL", provider="ours", us=1980.0, pct_of_copy=102.0),
    ])
    joined = peer_ratios.load_runs([first, second])
    assert joined[("rms_fwd", "XXXL", "ours")][0] == pytest.approx(2045.0)  # median of both files
    runs = peer_ratios.load_runs([first, second], supersede=True)
    assert runs[("rms_fwd", "XXXL", "ours")] == (1980.0, 102.0)
    assert ("rms_fwd", "XXXL", "liger") not in runs  # the later file did not measure it
    assert runs[("rms_fwd", "XL", "ours")] == (140.0, 90.0)
