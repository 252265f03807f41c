"""The cost model (validation, files) and the calibration on the host kernel (quick mode)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math

import pytest

import cowsim
from cowsim.host import probe as kernel
from cowsim.cli.calibrate import add_calibrate_parser
from cowsim.host.calibrate import SAMPLE_RAW, calibrate, fit_model, parse_raw
from cowsim.cost import PROFILE_FORMAT, CostModel

REASON = kernel.unavailable_reason()
needs_kernel = pytest.mark.skipif(REASON is not None, reason=f"kernel side unavailable: {REASON}")

FIELDS = [
    "fork_base_ns", "fork_per_pte_ns", "fork_per_table_ns", "fork_per_shared_table_ns", "fault_ns", "zero_fill_ns", "copy_page_ns",
    "cow_reuse_ns", "tlb_flush_ns", "exit_per_page_ns", "exec_ns",
]


def test_defaults_and_fields():
    m = CostModel()
    assert list(m.to_dict()) == FIELDS
    assert all(v > 0 for v in m.to_dict().values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.fault_ns = 1.0  # type: ignore[misc]


def test_prices():
    m = CostModel(fork_base_ns=100, fork_per_pte_ns=2, fork_per_table_ns=10, fault_ns=1, zero_fill_ns=2,
                  copy_page_ns=3, cow_reuse_ns=4, exit_per_page_ns=5)
    assert m.fork_ns(ptes=1024) == 100 + 2048 + 20  # two tables by default
    assert m.fork_ns(ptes=3, tables=3) == 100 + 6 + 30
    assert m.fault_cost_ns(cowsim.Outcome.ZERO_PAGE) == 1
    assert m.fault_cost_ns("cow_copy") == 4
    assert m.fault_cost_ns(cowsim.Outcome.COW_REUSE) == 5
    assert m.fault_cost_ns(cowsim.Outcome.HIT) == 0
    assert m.fault_cost_ns(cowsim.Outcome.SEGFAULT) == 0
    with pytest.raises(cowsim.InvalidArgument, match="unknown outcome"):
        m.fault_cost_ns("bogus")
    assert m.exit_ns(10) == 50
    # priced from a real simulation
    with cowsim.Machine(memory="1MiB") as mach:
        p = mach.spawn()
        a = p.mmap(4 * 4096)
        p.touch(a)                       # zero page
        p.touch(a + 4096, write=True)    # zero fill
        p.touch(a, write=True)           # zero fill (over the zero page)
        c = p.fork()
        c.touch(a, write=True)           # copy
        p.touch(a, write=True)           # reuse
        total = m.faults_ns(p.stats) + m.faults_ns(c.stats)
    assert total == 5 * 1 + 2 * 2 + 3 + 4
    # odf: a table copy is the deferred fork work of one full table
    assert m.table_copy_ns(512) == 10 + 512 * 2
    with cowsim.Machine(memory="1MiB") as mach:
        p = mach.spawn()
        a = p.mmap(4 * 4096)
        p.touch(a, write=True)           # zero fill
        c = p.fork("odf")
        c.touch(a, write=True)           # table copy, then page copy
        assert c.stats.table_copies == 1
        assert m.faults_ns(c.stats) == 1 + 3 + (10 + 512 * 2)


def test_odf_fork_prices_65x_below_cow_at_1gib():
    m = CostModel()
    pages, tables = (1 << 30) // 4096, 512
    cow = m.fork_ns(pages, tables)
    odf = m.fork_base_ns + tables * m.fork_per_shared_table_ns
    assert 64 < cow / odf < 66


def test_load_save_round_trip(tmp_path):
    m = CostModel(fault_ns=123.5)
    path = tmp_path / "m.json"
    m.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == PROFILE_FORMAT and data["cost_model"]["fault_ns"] == 123.5
    assert CostModel.load(path) == m
    assert CostModel.load(str(path)) == m
    assert CostModel.load(m.to_dict()) == m
    assert CostModel.load({"format": PROFILE_FORMAT, "cost_model": {"fault_ns": 123.5}}) == m
    assert CostModel.load({}) == CostModel()


@pytest.mark.parametrize("data,fragment", [
    ({"fault_ns": -1}, "fault_ns must be finite and >= 0"),
    ({"fault_ns": math.nan}, "fault_ns must be finite"),
    ({"copy_page_ns": math.inf}, "copy_page_ns must be finite"),
    ({"fault_ns": "1"}, "fault_ns must be a number"),
    ({"fault_ns": True}, "fault_ns must be a number"),
    ({"fault_nsec": 1}, "unknown parameter(s) fault_nsec"),
    ({"format": "other/9", "cost_model": {}}, "unsupported profile format"),
    ([1, 2], "expected a mapping"),
])
def test_validation_errors(data, fragment):
    with pytest.raises(cowsim.InvalidArgument) as info:
        CostModel.load(data)
    assert fragment in str(info.value)


def test_load_file_errors(tmp_path):
    with pytest.raises(cowsim.InvalidArgument, match="cannot read"):
        CostModel.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(cowsim.InvalidArgument, match="is not JSON"):
        CostModel.load(bad)


def test_fit_on_synthetic_measurements():
    m = fit_model(SAMPLE_RAW)
    assert m == CostModel(fork_base_ns=50000, fork_per_pte_ns=150, fork_per_table_ns=1000, fault_ns=1000,
                          zero_fill_ns=2000, copy_page_ns=4000, cow_reuse_ns=500, tlb_flush_ns=500,
                          exit_per_page_ns=500)
    parsed = parse_raw(SAMPLE_RAW)
    assert parsed["faults"]["zero_page"]["ns_per_fault_median"] == 1200.0
    assert parsed["forks"][1]["best_ns"] == 2539600


def test_parse_errors():
    with pytest.raises(cowsim.InvalidArgument, match="malformed"):
        parse_raw([["fault", "zero_page", "x"]])
    with pytest.raises(cowsim.InvalidArgument, match="lacks the zero_page"):
        parse_raw([["info", "pagesize", "4096"]])
    with pytest.raises(cowsim.InvalidArgument, match="lacks fork"):
        parse_raw([r for r in SAMPLE_RAW if r[0] != "fork"])


@needs_kernel
def test_quick_calibration(tmp_path):
    cal = calibrate(quick=True)
    d = cal.model.to_dict()
    assert all(math.isfinite(v) and v >= 0 for v in d.values())
    assert cal.model.fault_ns > 0 and cal.model.fork_base_ns > 0
    assert cal.model.fork_per_pte_ns > 0 or cal.model.fork_per_table_ns > 0
    assert cal.machine["system"] == "Linux" and cal.quick
    f = cal.measurements["faults"]
    assert f["zero_fill"]["faults_per_pass"] >= f["zero_fill"]["pages"]  # one fault per page, at least
    path = tmp_path / "profile.json"
    cal.save(path)
    assert CostModel.load(path) == cal.model
    profile = json.loads(path.read_text())
    assert profile["machine"]["release"] and profile["quick"] is True


@needs_kernel
def test_cli_calibrate(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="cowsim")
    sub = parser.add_subparsers(dest="command", required=True)
    add_calibrate_parser(sub)
    out_file = tmp_path / "p.json"
    args = parser.parse_args(["calibrate", "--quick", "--output", str(out_file)])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["format"] == PROFILE_FORMAT
    assert "calibrate:" in err
    assert CostModel.load(out_file).to_dict() == json.loads(out)["cost_model"]


def test_cli_calibrate_unavailable(monkeypatch, capsys):
    monkeypatch.setattr(kernel.platform, "system", lambda: "Plan9")
    parser = argparse.ArgumentParser(prog="cowsim")
    sub = parser.add_subparsers(dest="command", required=True)
    add_calibrate_parser(sub)
    args = parser.parse_args(["calibrate", "--quick"])
    assert args.func(args) == 3
    out, err = capsys.readouterr()
    assert out == "" and "not Linux" in err
