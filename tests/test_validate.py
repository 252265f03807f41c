"""Fidelity: the built-in suite on the host kernel and in cowsim must agree exactly,
and a deliberately wrong simulator must be caught."""
from __future__ import annotations

import argparse
import json

import pytest

import cowsim
from cowsim import kernel
from cowsim.scenario import Scenario
from cowsim.suite import SUITE_NAMES, builtin_suite
from cowsim.validate import Row, ValidationResult, add_validate_parser, run_scenario, run_suite, simulate

REASON = kernel.unavailable_reason()
needs_kernel = pytest.mark.skipif(REASON is not None, reason=f"kernel side unavailable: {REASON}")


def _suite():
    if REASON is None:
        fa = kernel.fault_around_bytes()[0]
        return builtin_suite(page_size=kernel._page_size(), fault_around=fa)
    return builtin_suite()


@pytest.fixture(scope="module")
def kernel_suite_result():
    return run_suite(_suite(), kernel=True)


# --------------------------------------------------------------- anywhere
def test_suite_predictions_hold_in_cowsim_alone():
    res = run_suite(builtin_suite(), kernel=False)
    assert res.all_match, res.to_table()
    assert res.kernel_skipped == "kernel=False"
    assert all(r.kernel is None for r in res.rows)
    stated = [r for r in res.rows if r.expected is not None]
    assert len(stated) > 100  # every scenario states its predictions
    assert {r.scenario for r in stated} == set(SUITE_NAMES)


def test_three_way_pss_prints_4095():
    (sc,) = builtin_suite(["pss_three_way"])
    sim = simulate(sc)
    assert sim[(4, "parent", "a", "Pss")] == 4095
    assert sim[(4, "c2", "a", "Pss")] == 4095
    assert sim[(4, "parent", "a", "Shared_Dirty")] == 12288


def test_rows_are_plain_records_and_render():
    (sc,) = builtin_suite(["cow_fork_pss"])
    res = run_scenario(sc, kernel=False)
    d = res.to_dict()
    json.dumps(d)
    assert d["rows"][0].keys() >= {"scenario", "step", "proc", "region", "metric", "kernel", "cowsim", "match"}
    assert json.loads(res.to_json())["all_match"] is True
    table = res.to_table()
    assert "cow_fork_pss" in table and "Pss" in table and "ALL MATCH" in table
    assert "512*" in table  # Pss N/2 of 256 pages, a stated prediction


def test_unavailable_kernel_is_reported_cleanly(monkeypatch):
    monkeypatch.setattr(kernel.platform, "system", lambda: "Darwin")
    reason = kernel.unavailable_reason()
    assert reason is not None and "not Linux" in reason
    (sc,) = builtin_suite(["cow_fork_pss"])
    with pytest.raises(kernel.KernelUnavailable) as info:
        run_scenario(sc, kernel=True)
    assert isinstance(info.value, cowsim.CowsimError) and "not Linux" in info.value.reason
    res = run_scenario(sc, kernel="auto")
    assert res.kernel_skipped and "not Linux" in res.kernel_skipped
    assert res.all_match  # cowsim against the predictions
    assert "not run" in res.to_table()


def test_no_compiler_is_reported(monkeypatch):
    if kernel.platform.system() != "Linux":
        pytest.skip("the compiler check comes after the Linux check")
    monkeypatch.setenv("CC", "/nonexistent/cc-for-cowsim")
    assert "no C compiler" in (kernel.unavailable_reason() or "")


def test_bad_kernel_argument():
    (sc,) = builtin_suite(["cow_fork_pss"])
    with pytest.raises(TypeError):
        run_scenario(sc, kernel="yes")


def test_match_logic():
    from cowsim.validate import _match

    assert _match(1, 1, None, 0) is True
    assert _match(1, 2, None, 0) is False
    assert _match(1, 2, None, 1) is True
    assert _match(None, 2, 2, 0) is True
    assert _match(None, 2, 3, 0) is False
    assert _match(2, 2, 3, 0) is False
    assert _match(None, None, None, 0) is None
    assert ValidationResult().all_match is False  # nothing compared is no success


# ------------------------------------------------------------ on the kernel
@needs_kernel
def test_builtin_suite_matches_the_kernel(kernel_suite_result):
    res = kernel_suite_result
    assert res.all_match, "\n" + res.to_table()
    kernel_rows = [r for r in res.rows if r.kernel is not None]
    assert len(kernel_rows) > 1000
    # every stated prediction was checked against both sides
    assert all(r.match for r in res.rows if r.expected is not None and r.kernel is not None)
    # and the tolerance on faults was not needed
    assert all(r.kernel == r.cowsim for r in kernel_rows if r.metric == "minflt")


@needs_kernel
def test_kernel_reports_host_facts(kernel_suite_result):
    info = kernel_suite_result.kernel_info
    assert info["system"] == "Linux" and info["release"] and info["page_size"].isdigit()


@needs_kernel
def test_wrong_fault_around_is_detected():
    """The deliberately mis-configured simulator: no shmem fault-around in cowsim."""
    (sc,) = builtin_suite(["shmem_fault_around"], page_size=kernel._page_size(),
                          fault_around=kernel.fault_around_bytes()[0])
    run = kernel.run_scenario(sc)
    good = run_scenario(sc, kernel=run)
    assert good.all_match, good.to_table()
    bad = run_scenario(sc, kernel=run, fault_around=0)
    assert not bad.all_match
    bad_rows = {(r.step, r.proc, r.region, r.metric): r for r in bad.mismatches}
    child_read = bad_rows[(6, "child", "", "minflt")]
    assert child_read.kernel == 7 and child_read.cowsim == 100  # 100 pages: 7 windows vs 100 faults
    assert "K7|S100" in bad.to_table() and "MISMATCH" in bad.to_table()
    # only fault counts differ: fault-around changes no smaps value once all pages are read
    assert {r.metric for r in bad.mismatches} <= {"minflt", "Rss", "Pss", "Pss_Dirty", "Shared_Dirty"}


@needs_kernel
def test_perturbed_simulator_values_are_detected():
    (sc,) = builtin_suite(["cow_child_copies"])
    run = kernel.run_scenario(sc)

    def perturb(scenario, m):
        m[(4, "child", "a", "Pss")] += 4  # one page more Pss than the kernel
        m[(6, "parent", "", "copied")] = 16  # pretend the parent copied instead of reusing

    res = run_scenario(sc, kernel=run, perturb=perturb)
    assert {(r.step, r.proc, r.region, r.metric) for r in res.mismatches} == {
        (4, "child", "a", "Pss"),
        (6, "parent", "", "copied"),
    }
    replaced = run_scenario(sc, kernel=run, perturb=lambda s, m: {k: (v or 0) + 1 for k, v in m.items()})
    assert not replaced.all_match


@needs_kernel
def test_fault_tolerance_applies_to_faults_only():
    (sc,) = builtin_suite(["cow_fork_pss"])
    run = kernel.run_scenario(sc)

    def plus_one(scenario, m):
        m[(2, "parent", "", "minflt")] += 1
        m[(2, "parent", "a", "Rss")] += 4

    res = run_scenario(sc, kernel=run, perturb=plus_one, fault_tolerance=1)
    keys = {(r.step, r.metric) for r in res.mismatches}
    # the fault count is within the tolerance of the kernel but misses the stated prediction (256)
    assert (2, "Rss") in keys and (2, "minflt") in keys
    row = next(r for r in res.rows if (r.step, r.metric) == (2, "minflt"))
    assert row.tolerance == 1 and row.kernel == 256 and row.cowsim == 257


@needs_kernel
def test_wrong_prediction_is_detected_even_when_both_sides_agree():
    sc = Scenario.from_dict({"name": "wrong", "steps": [
        {"op": "map", "region": "a", "pages": 8},
        {"op": "write", "region": "a", "expect": {"minflt": 9}}]})
    res = run_scenario(sc)
    (row,) = res.mismatches
    assert (row.kernel, row.cowsim, row.expected) == (8, 8, 9)
    assert "8(e9)" in res.to_table()


@needs_kernel
def test_vma_merging_is_a_known_disagreement():
    """cowsim never merges regions (SEMANTICS.md); the kernel re-merges a VMA split by
    mprotect, so fault-around windows (and Pss rounding) differ.  See VALIDATION.md."""
    sc = Scenario.from_dict({"name": "merge", "steps": [
        {"op": "map", "region": "s", "pages": 64, "shared": True},
        {"op": "write", "region": "s"},
        {"op": "mprotect", "region": "s", "count": 8, "prot": "r"},
        {"op": "mprotect", "region": "s", "count": 8, "prot": "rw"},
        {"op": "fork", "child": "child"},
        {"op": "read", "proc": "child", "region": "s"}]})
    res = run_scenario(sc)
    (row,) = res.mismatches
    assert (row.step, row.metric, row.kernel, row.cowsim) == (6, "minflt", 4, 5)


@needs_kernel
def test_probe_reports_bad_input():
    with pytest.raises(kernel.KernelProbeError, match="unknown input line"):
        kernel._run_probe(["run"], "cowsim-probe 1\nprocs 1\nbogus\nend\n", 10)
    with pytest.raises(kernel.KernelProbeError, match="incomplete input"):
        kernel._run_probe(["run"], "", 10)


@needs_kernel
def test_probe_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COWSIM_CACHE_DIR", str(tmp_path / "cache"))
    exe = kernel.probe_binary()
    assert exe.parent == tmp_path / "cache" and exe.exists()
    mtime = exe.stat().st_mtime_ns
    assert kernel.probe_binary() == exe and exe.stat().st_mtime_ns == mtime


# ---------------------------------------------------------------------- CLI
def _cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="cowsim")
    sub = parser.add_subparsers(dest="command", required=True)
    add_validate_parser(sub)
    args = parser.parse_args(argv)
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_sim_only(capsys):
    rc, out, err = _cli(["validate", "--sim-only", "--only", "wipeonfork"], capsys)
    assert rc == 0 and "wipeonfork" in out and "ALL MATCH" in out
    assert "validate: wipeonfork" in err  # progress goes to stderr


def test_cli_bad_scenario_file(tmp_path, capsys):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"name": "b", "steps": [{"op": "map", "region": "a", "pages": -1}]}))
    rc, out, err = _cli(["validate", "--sim-only", "--scenario", str(p)], capsys)
    assert rc == 2 and out == "" and "step 1 (map)" in err and "'pages'" in err
    rc, _, err = _cli(["validate", "--sim-only", "--only", "nonesuch"], capsys)
    assert rc == 2 and "unknown built-in scenario" in err


@needs_kernel
def test_cli_json_and_scenario_file(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text('name = "t"\n[[steps]]\nop = "map"\nregion = "a"\npages = 4\n'
                 '[[steps]]\nop = "write"\nregion = "a"\nexpect = { minflt = 4 }\n')
    rc, out, _ = _cli(["validate", "--scenario", str(p), "--json"], capsys)
    data = json.loads(out)
    assert rc == 0 and data["all_match"] and data["kernel"]["system"] == "Linux"
    assert {r["scenario"] for r in data["rows"]} == {"t"}


@needs_kernel
def test_cli_detects_the_deliberate_mismatch(capsys):
    rc, out, _ = _cli(["validate", "--only", "shmem_fault_around", "--sim-fault-around", "0"], capsys)
    assert rc == 1 and "MISMATCH" in out and "K7|S100" in out


def test_row_is_frozen():
    row = Row("s", 1, "a", "p", "", "minflt", 1, 1, None, 0, True)
    with pytest.raises(Exception):
        row.kernel = 2  # type: ignore[misc]
    assert row.as_dict()["note"] == ""
