"""scripts/counters.py: the targets it reads and the summary it makes of ncu's raw CSV (running
the targets under ncu needs the GPU)."""

import sys

import pytest
from helpers import load_script


@pytest.fixture
def counters(monkeypatch):
    # The script imports its sibling scripts by name, as it does when run from scripts/.
    for sibling in ("peer_table", "tune_kernels"):
        monkeypatch.setitem(sys.modules, sibling, load_script(sibling))
    return load_script("counters")


def test_a_target_names_cell_shape_provider_and_launch(counters):
    assert counters.parse_target("ln_fwd@4096x8192") == ("ln_fwd", 4096, 8192, "ours", "")
    assert counters.parse_target("rms_fwd@2048x4096:liger") == ("rms_fwd", 2048, 4096, "liger", "")
    assert counters.parse_target("stream@1x4096") == ("stream", 1, 4096, "ours", "")
    assert counters.parse_target("ln_full@32768x16384:torch_compile") == ("ln_full", 32768, 16384, "torch_compile", "")
    cell, rows, hidden, provider, launch = counters.parse_target("ln_fwd@4096x8192=single/8192/w16/reg32")
    assert (cell, rows, hidden, provider, launch) == ("ln_fwd", 4096, 8192, "ours", "single/8192/w16/reg32")
    cfg = counters._forward_launch(cell, rows, hidden, launch)
    assert (cfg.block_n, cfg.num_warps, cfg.looped, cfg.max_registers) == (8192, 16, False, 32)


@pytest.mark.parametrize("text, message", [
    ("ln_fwd", "expected CELL@ROWSxHIDDEN"),
    ("ln_fwd@4096", "expected CELL@ROWSxHIDDEN"),
    ("layernorm@4096x8192", "cell must be stream or one of"),
    ("ln_fwd@0x8192", "must be positive"),
    ("ln_full@4096x8192=single/8192/w16", "our forward cells"),
    ("ln_fwd@4096x8192:liger=single/8192/w16", "our forward cells"),
])
def test_a_malformed_target_names_the_expected_form(counters, text, message):
    with pytest.raises(ValueError, match=message):
        counters.parse_target(text)


def test_a_malformed_launch_names_the_expected_form(counters):
    with pytest.raises(ValueError, match="single/TILES/wWARPS"):
        counters._forward_launch("ln_fwd", 4096, 8192, "single/8192/w16/reg")


def _raw_csv(path, kernels):
    """A CSV laid out as ``ncu --csv --page raw`` writes one: names, then units, then a row per kernel."""
    metrics = [("ID", ""), ("Kernel Name", ""), ("Block Size", ""), ("Grid Size", ""),
               ("gpu__time_duration.sum", "nsecond"), ("dram__bytes_read.sum", "Kbyte"),
               ("launch__registers_per_thread", "register/thread"), ("smsp__inst_executed.sum", "inst"),
               ("smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio", "inst"),
               ("smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio", "inst"),
               ("smsp__average_warps_issue_stalled_not_selected_per_issue_active.ratio", "inst"),
               ("smsp__average_warps_issue_stalled_wait_per_issue_active.ratio", "inst")]
    lines = [",".join(f'"{name}"' for name, _ in metrics), ",".join(f'"{unit}"' for _, unit in metrics)]
    lines += [",".join(f'"{value}"' for value in kernel) for kernel in kernels]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_summary_reads_each_kernel_in_the_columns_units(counters, tmp_path):
    path = _raw_csv(tmp_path / "ln_fwd_4096x8192.csv", [
        ("0", "_norm_fwd_kernel", "(256, 1, 1)", "(4096, 1, 1)", "33,664", "67,157.5", "63", "15,663,104",
         "1.77", "6.31", "1.52", "0.8"),
        ("1", "void at::native::reduce_kernel<128, 4>", "(32, 4, 1)", "(128, 1, 1)", "9,812", "8,700", "54",
         "300,000", "0", "13.7", "n/a", "0"),
    ])
    kernels = counters.read_raw(path)
    assert [k["Kernel Name"][0] for k in kernels] == ["_norm_fwd_kernel", "void at::native::reduce_kernel<128, 4>"]
    assert counters.top_stalls(kernels[0]) == "long_scoreboard 6.3, barrier 1.8, not_selected 1.5"
    assert counters.top_stalls(kernels[1], count=2) == "long_scoreboard 13.7"  # zero and n/a left out
    header, rule, first, second = counters.summary([path])
    columns = [c.strip() for c in header.strip("|").split("|")]
    first_cells = dict(zip(columns, (c.strip() for c in first.strip("|").split("|"))))
    assert first_cells["target"] == "ln_fwd_4096x8192" and first_cells["kernel"] == "_norm_fwd_kernel"
    assert first_cells["grid x block"] == "(4096, 1, 1) x (256, 1, 1)"
    assert first_cells["us"] == "33.7"  # 33,664 ns
    assert first_cells["DRAM read MB"] == "67.2"  # 67,157.5 KB
    assert first_cells["registers"] == "63" and first_cells["warp instructions (M)"] == "15.7"
    assert first_cells["DRAM % of peak"] == "-"  # not in this report
    assert "| at::native::reduce_kernel |" in second and "| 9.8 |" in second  # template arguments cut


def test_the_summary_refuses_a_csv_that_is_not_ncus(counters, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an ncu --page raw CSV"):
        counters.read_raw(path)
