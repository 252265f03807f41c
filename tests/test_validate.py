"""Fidelity: the built-in suite on the host kernel and in cowsim must agree exactly,
and a deliberately wrong simulator must be caught."""
from __future__ import annotations

import argparse
import json

import pytest

import cowsim
from cowsim.host import probe as kernel
from cowsim.validation import host_side
from cowsim.validation.scenario import Scenario
from cowsim.validation.suite import SUITE_NAMES, builtin_suite
from cowsim.cli.validate import add_validate_parser
from cowsim.validation import (Row, ValidationResult, kernel_run, run_scenario, run_suite, settle_kernel_runs,
                               simulate, thp_skip_reason)

REASON = kernel.unavailable_reason()
needs_kernel = pytest.mark.skipif(REASON is not None, reason=f"kernel side unavailable: {REASON}")
THP_NAMES = ("thp_write_fault", "thp_zero_page", "thp_fork_split", "thp_reuse_after_child_exit",
             "thp_partial_munmap")
THP_REASON = REASON or thp_skip_reason(builtin_suite(["thp_zero_page"])[0])
needs_thp = pytest.mark.skipif(THP_REASON is not None, reason=f"kernel THP side unavailable: {THP_REASON}")


# Built-in scenarios the core does not follow yet (docs/FILE_MEASUREMENTS.md, FL: a read fault in a
# fresh page table, and a shared write fault, map a whole large folio; the core maps one window / page).
# tests/test_validate_files.py holds them as strict expected failures.
KNOWN_CORE_GAPS: tuple = ()


def _suite():
    if REASON is None:
        fa = kernel.fault_around_bytes()[0]
        scs = builtin_suite(page_size=kernel.host_page_size(), fault_around=fa)
    else:
        scs = builtin_suite()
    return [sc for sc in scs if sc.name not in KNOWN_CORE_GAPS]


@pytest.fixture(scope="module")
def kernel_suite_result():
    return run_suite(_suite(), kernel=True)


# --------------------------------------------------------------- anywhere
def test_suite_predictions_hold_in_cowsim_alone():
    res = run_suite([sc for sc in builtin_suite() if sc.name not in KNOWN_CORE_GAPS], kernel=False)
    assert res.all_match, res.to_table()
    assert res.kernel_skipped == "kernel=False"
    assert all(r.kernel is None for r in res.rows)
    stated = [r for r in res.rows if r.expected is not None]
    assert len(stated) > 100  # every scenario states its predictions
    assert {r.scenario for r in stated} == set(SUITE_NAMES) - set(KNOWN_CORE_GAPS)


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
    with pytest.raises(kernel.HostUnavailable) as info:
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
    from cowsim.validation.compare import _match

    assert _match(1, 1, None, 0) is True
    assert _match(1, 2, None, 0) is False
    assert _match(1, 2, None, 1) is True
    assert _match(None, 2, 2, 0) is True
    assert _match(None, 2, 3, 0) is False
    assert _match(2, 2, 3, 0) is False
    assert _match(None, None, None, 0) is None
    assert ValidationResult().all_match is False  # nothing compared is no success


# ------------------------------------------------- re-running the kernel side, anywhere
STEP1 = (1, "parent", "", "minflt")  # the map step's fault count
STEP2 = (2, "parent", "a", "Rss")


def _fake_kernel(monkeypatch, sc, edits):
    """Makes the kernel side of ``sc`` give cowsim's own values, run i changed by
    ``edits[i]`` (key -> value; runs beyond the list are clean).  Returns the
    list of runs made so far."""
    import cowsim.validation.run as validate

    clean = simulate(sc, page_size=4096, fault_around=65536)
    made = []

    def fake_run(scenario, timeout=60.0):
        assert scenario.to_dict() == sc.to_dict()
        values = dict(clean)
        values.update(edits[len(made)] if len(made) < len(edits) else {})
        made.append(values)
        return host_side.HostRun(sc.name, values, {"page_size": "4096", "system": "Linux"}, [])

    monkeypatch.setattr(kernel, "unavailable_reason", lambda: None)
    monkeypatch.setattr(validate, "thp_skip_reason", lambda scenario: None)
    monkeypatch.setattr(validate, "kernel_run", fake_run)
    return made


def _rows(res, key):
    return [r for r in res.rows if (r.step, r.proc, r.region, r.metric) == key]


def _plain():
    return Scenario.from_dict({"name": "plain", "steps": [
        {"op": "map", "region": "a", "pages": 8},
        {"op": "write", "region": "a", "expect": {"minflt": 8}}]})


def test_a_first_run_that_agrees_is_not_rerun(monkeypatch):
    sc = _plain()
    made = _fake_kernel(monkeypatch, sc, [])
    res = run_scenario(sc, fault_around=65536)
    assert len(made) == 1 and res.kernel_runs == {"plain": 1} and res.kernel_reruns == 0
    assert res.all_match and res.verdict == "ALL MATCH"
    assert all(r.kernel_seen == () and not r.noise for r in res.rows)
    assert "kernel runs: 1 for 1 scenario\n" in res.to_table() + "\n"


def test_a_stray_kernel_fault_once_is_rerun_and_settled(monkeypatch):
    """The first run counts one fault too many in step 1 (the audit's failure);
    two fresh runs agree on 0: the kernel's value is 0 and everything matches."""
    sc = _plain()
    made = _fake_kernel(monkeypatch, sc, [{STEP1: 1}])
    res = run_scenario(sc, fault_around=65536)
    assert len(made) == 3 and res.kernel_runs == {"plain": 3} and res.kernel_reruns == 2
    assert res.all_match and res.verdict == "ALL MATCH" and res.mismatches == [] and res.noise == []
    (row,) = _rows(res, STEP1)
    assert (row.kernel, row.cowsim, row.kernel_seen, row.noise, row.match) == (0, 0, (1, 0, 0), False, True)
    assert [r for r in res.rows if r.kernel_seen] == [row]
    table = res.to_table()
    assert "kernel side run 3 times (the first run disagreed): step 1 parent minflt gave 1, 0, 0 (settled 0)" in table
    assert "kernel runs: 3 for 1 scenario (re-run: plain x3)" in table
    d = res.to_dict()
    assert (d["kernel_runs"], d["kernel_reruns"], d["kernel_noise"], d["verdict"]) == ({"plain": 3}, 2, 0, "ALL MATCH")


def test_a_kernel_that_gives_the_same_other_value_twice_is_a_mismatch(monkeypatch):
    """Re-running never hides a real disagreement: the kernel repeats itself, cowsim differs."""
    sc = _plain()
    made = _fake_kernel(monkeypatch, sc, [{STEP1: 1}] * 10)
    res = run_scenario(sc, fault_around=65536)
    assert len(made) == 2 and res.kernel_runs == {"plain": 2}
    (row,) = res.mismatches
    assert (row.step, row.metric, row.kernel, row.cowsim, row.kernel_seen, row.noise) == (1, "minflt", 1, 0, (), False)
    assert res.verdict == "MISMATCH" and not res.all_match
    assert "K1|S0" in res.to_table() and "the re-runs gave the first run's values" in res.to_table()


def test_a_wrong_simulator_is_a_mismatch_after_reruns(monkeypatch):
    sc = _plain()
    made = _fake_kernel(monkeypatch, sc, [])

    def perturb(scenario, m):
        m[STEP2] += 4

    res = run_scenario(sc, fault_around=65536, perturb=perturb)
    assert len(made) == 2 and res.kernel_runs == {"plain": 2}
    assert [(r.step, r.metric, r.kernel, r.cowsim) for r in res.mismatches] == [(2, "Rss", 32, 36)]


def test_stray_values_in_different_runs_settle_value_by_value(monkeypatch):
    sc = _plain()
    made = _fake_kernel(monkeypatch, sc, [{STEP1: 1}, {STEP2: 36}])
    res = run_scenario(sc, fault_around=65536)
    assert len(made) == 3 and res.all_match
    assert [(r.step, r.metric, r.kernel, r.kernel_seen) for r in res.rows if r.kernel_seen] == \
        [(1, "minflt", 0, (1, 0, 0)), (2, "Rss", 32, (32, 36, 32))]


def test_kernel_runs_that_never_agree_are_kernel_noise(monkeypatch, tmp_path, capsys):
    sc = _plain()
    edits = [{STEP1: 1}, {STEP1: 0}, {STEP1: 2}, {STEP1: 3}]
    made = _fake_kernel(monkeypatch, sc, edits)
    res = run_scenario(sc, fault_around=65536)
    assert len(made) == 4 and res.kernel_runs == {"plain": 4} and res.kernel_reruns == 3
    (row,) = res.noise
    assert (row.step, row.metric, row.kernel, row.cowsim, row.kernel_seen, row.match) == \
        (1, "minflt", None, 0, (1, 0, 2, 3), None)
    assert res.mismatches == [] and not res.all_match and res.verdict == "KERNEL NOISE"
    table = res.to_table()
    assert "K~1/0/2/3|S0" in table and "1 kernel noise: KERNEL NOISE" in table
    assert "step 1 parent minflt gave 1, 0, 2, 3 (noise)" in table
    # the CLI: exit status 3 (the host side gave no settled answer), distinct from a mismatch (1)
    made.clear()
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(sc.to_dict()))
    rc, out, _ = _cli(["validate", "--scenario", str(path), "--sim-fault-around", "65536"], capsys)
    assert rc == 3 and "KERNEL NOISE" in out and len(made) == 4


def test_kernel_reruns_zero_lets_the_first_run_decide(monkeypatch, tmp_path, capsys):
    sc = _plain()
    made = _fake_kernel(monkeypatch, sc, [{STEP1: 1}])
    res = run_scenario(sc, fault_around=65536, kernel_reruns=0)
    assert len(made) == 1 and res.kernel_runs == {"plain": 1}
    assert [(r.step, r.metric, r.kernel, r.cowsim) for r in res.mismatches] == [(1, "minflt", 1, 0)]
    made.clear()
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(sc.to_dict()))
    rc, out, _ = _cli(["validate", "--scenario", str(path), "--sim-fault-around", "65536",
                       "--kernel-reruns", "0", "--json"], capsys)
    data = json.loads(out)
    assert rc == 1 and len(made) == 1 and data["kernel_runs"] == {"plain": 1} and data["verdict"] == "MISMATCH"
    rc, _, err = _cli(["validate", "--scenario", str(path), "--kernel-reruns", "-1"], capsys)
    assert rc == 2 and "--kernel-reruns must not be negative" in err


def test_a_given_kernel_run_is_never_rerun():
    sc = _plain()
    fake = simulate(sc)
    fake[STEP1] = 1
    res = run_scenario(sc, kernel=host_side.HostRun(sc.name, fake, {"page_size": "4096"}, []), fault_around=65536)
    assert res.kernel_runs == {"plain": 1}
    assert [(r.metric, r.kernel, r.cowsim) for r in res.mismatches] == [("minflt", 1, 0)]


def test_bad_kernel_reruns():
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(cowsim.InvalidArgument, match="kernel_reruns"):
            run_scenario(_plain(), kernel=False, kernel_reruns=bad)


def test_settle_kernel_runs():
    k = STEP1
    assert settle_kernel_runs([{k: 5}]) == ({k: 5}, {}, [])
    assert settle_kernel_runs([{k: 1}, {k: 0}]) == ({k: None}, {k: (1, 0)}, [k])
    assert settle_kernel_runs([{k: 1}, {k: 1}]) == ({k: 1}, {}, [])
    assert settle_kernel_runs([{k: 1}, {k: 0}, {k: 1}]) == ({k: 1}, {k: (1, 0, 1)}, [])
    assert settle_kernel_runs([{k: 1}, {k: 0}, {k: 1}, {k: 0}]) == ({k: None}, {k: (1, 0, 1, 0)}, [k])
    assert settle_kernel_runs([{k: None}, {k: None}]) == ({k: None}, {}, [])
    assert settle_kernel_runs([{k: 2}, {k: None}, {k: None}]) == ({k: None}, {k: (2, None, None)}, [])
    with pytest.raises(cowsim.InvalidArgument):
        settle_kernel_runs([])


# ------------------------------------------------------------------ THP, anywhere
def test_thp_scenarios_are_in_the_suite_and_hold_in_cowsim():
    assert set(THP_NAMES) <= set(SUITE_NAMES)
    scs = builtin_suite(list(THP_NAMES))
    assert all(sc.uses_thp for sc in scs)
    assert not any(sc.uses_thp for sc in builtin_suite() if sc.name not in THP_NAMES)
    # stated for 4 KiB pages whatever the host's page size
    assert [sc.to_dict() for sc in builtin_suite(list(THP_NAMES), page_size=65536)] == [sc.to_dict() for sc in scs]
    res = run_suite(scs, kernel=False)
    assert res.all_match, res.to_table()
    sim = {sc.name: simulate(sc) for sc in scs}
    w = sim["thp_write_fault"]
    assert (w[(3, "parent", "", "minflt")], w[(3, "parent", "a", "Rss")], w[(3, "parent", "a", "AnonHugePages")]) \
        == (1, 2048, 2048)
    assert w[(4, "parent", "", "minflt")] == 0
    z = sim["thp_zero_page"]
    assert (z[(2, "parent", "", "minflt")], z[(2, "parent", "a", "Rss")], z[(3, "parent", "", "minflt")]) == (1, 0, 0)
    f = sim["thp_fork_split"]
    assert f[(3, "child", "a", "Pss")] == f[(3, "parent", "a", "Pss")] == 1024
    child = {m: f[(4, "child", "a", m)] for m in ("AnonHugePages", "Rss", "Private_Dirty", "Pss")}
    assert child == {"AnonHugePages": 0, "Rss": 2048, "Private_Dirty": 4, "Pss": 1026}
    assert f[(4, "child", "", "copied")] == 1 and f[(5, "parent", "a", "AnonHugePages")] == 2048
    r = sim["thp_reuse_after_child_exit"]
    assert (r[(6, "parent", "", "minflt")], r[(6, "parent", "", "copied")], r[(6, "parent", "a", "AnonHugePages")]) \
        == (1, 0, 2048)
    m = sim["thp_partial_munmap"]
    assert (m[(5, "parent", "a", "Rss")], m[(5, "parent", "a", "AnonHugePages")]) == (2044, 0)
    table = res.to_table()
    assert "AnHuge" in table and "private huge" in table


def test_anon_huge_pages_is_compared_for_every_region():
    (sc,) = builtin_suite(["cow_fork_pss"])
    res = run_scenario(sc, kernel=False)
    rows = [r for r in res.rows if r.metric == "AnonHugePages"]
    assert rows and all(r.cowsim == 0 for r in rows)


def _fake_thp_sysfs(root, enabled="always [madvise] never", pmd="always [inherit] madvise never",
                    others="always inherit madvise [never]", zero="1"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "enabled").write_text(enabled + "\n")
    (root / "use_zero_page").write_text(zero + "\n")
    for size, value in (("hugepages-2048kB", pmd), ("hugepages-64kB", others)):
        (root / size).mkdir(exist_ok=True)
        (root / size / "enabled").write_text(value + "\n")
    return str(root)


def test_thp_skip_reasons(tmp_path):
    write, zero = builtin_suite(["thp_write_fault", "thp_zero_page"])
    (plain,) = builtin_suite(["cow_fork_pss"])
    ok = _fake_thp_sysfs(tmp_path / "ok")
    assert thp_skip_reason(write, 4096, ok) is None and thp_skip_reason(zero, 4096, ok) is None
    assert thp_skip_reason(plain, 65536, str(tmp_path / "none")) is None  # no huge region: nothing to skip
    assert "4 KiB pages only" in thp_skip_reason(write, 16384, ok)
    assert "missing" in thp_skip_reason(write, 4096, str(tmp_path / "none"))
    never = _fake_thp_sysfs(tmp_path / "never", enabled="always madvise [never]")
    assert "enabled = never" in thp_skip_reason(write, 4096, never)
    pmd_off = _fake_thp_sysfs(tmp_path / "pmd", pmd="always inherit madvise [never]")
    assert "hugepages-2048kB/enabled = never" in thp_skip_reason(write, 4096, pmd_off)
    mthp = _fake_thp_sysfs(tmp_path / "mthp", others="always inherit [madvise] never")
    assert "multi-size THP" in thp_skip_reason(write, 4096, mthp)
    no_zero = _fake_thp_sysfs(tmp_path / "nozero", zero="0")
    assert thp_skip_reason(write, 4096, no_zero) is None  # writes first: the huge zero page is not used
    assert "use_zero_page = 0" in thp_skip_reason(zero, 4096, no_zero)


def test_thp_scenario_skipped_on_the_kernel_side_is_not_a_failure(monkeypatch):
    import cowsim.validation.run as validate

    monkeypatch.setattr(kernel, "unavailable_reason", lambda: None)
    monkeypatch.setattr(validate, "thp_skip_reason", lambda sc: "THP is off here" if sc.uses_thp else None)
    monkeypatch.setattr(validate, "kernel_run", lambda sc, timeout=60.0: pytest.fail("must not run the probe"))
    (sc,) = builtin_suite(["thp_fork_split"])
    res = run_scenario(sc, kernel=True)
    assert res.skipped == {"thp_fork_split": "THP is off here"} and res.kernel_skipped is None
    assert res.all_match and all(r.kernel is None for r in res.rows)
    assert any(r.expected is not None and r.match for r in res.rows)  # cowsim still meets the predictions
    table = res.to_table()
    assert "kernel side skipped: THP is off here" in table and "ALL MATCH" in table
    assert res.to_dict()["skipped"] == {"thp_fork_split": "THP is off here"}


def test_thp_scenario_without_a_huge_page_is_inconclusive():
    """The kernel could not allocate the huge page at the first write: inconclusive, not a mismatch."""
    (sc,) = builtin_suite(["thp_fork_split"])
    fake = simulate(sc)
    for key in list(fake):
        if key[2] == "a" and key[3] == "AnonHugePages":
            fake[key] = 0  # 4 KiB pages everywhere
    run = host_side.HostRun(sc.name, fake, {"page_size": "4096"}, [])
    res = run_scenario(sc, kernel=run)
    assert "did not allocate a huge page" in res.skipped["thp_fork_split"]
    assert "step 2" in res.skipped["thp_fork_split"]
    assert res.all_match and all(r.kernel is None for r in res.rows)
    # a real disagreement after the first write is still a mismatch
    fake2 = simulate(sc)
    fake2[(4, "child", "a", "AnonHugePages")] = 2048
    res2 = run_scenario(sc, kernel=host_side.HostRun(sc.name, fake2, {"page_size": "4096"}, []))
    assert not res2.skipped and [(r.step, r.proc, r.metric) for r in res2.mismatches] == \
        [(4, "child", "AnonHugePages")]


def test_probe_input_marks_huge_maps():
    sc = Scenario.from_dict({"name": "h", "steps": [
        {"op": "map", "region": "a", "pages": 8},
        {"op": "map", "region": "h", "pages": 512, "huge": True},
        {"op": "write", "region": "h", "count": 1}]})
    lines = host_side._encode(sc, 4096).splitlines()
    maps = [line for line in lines if line.split()[:1] == ["step"] and line.split()[2] == "map"]
    assert maps == ["step 1 map 0 0 3 0 0", "step 2 map 0 1 3 0 1"]
    assert any(line.startswith("step 3 write 0 1 0 1 ") for line in lines)


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
    # every scenario run on the kernel says how often; values seen only where it ran again
    assert set(res.kernel_runs) == {r.scenario for r in kernel_rows}
    assert all(1 <= n <= 4 for n in res.kernel_runs.values())
    assert all(res.kernel_runs[r.scenario] > 1 for r in res.rows if r.kernel_seen)
    assert res.noise == [] and res.verdict == "ALL MATCH"


@needs_kernel
def test_probe_maps_its_own_pages_before_every_step():
    """The root of the audit's stray fault: before each step (in the parent and
    in each child after a fork) every page of the probe's own readable mappings
    is mapped, so nothing but the scenario can fault inside a measured step."""
    (sc,) = builtin_suite(["fork_chain"], page_size=kernel.host_page_size(), fault_around=kernel.fault_around_bytes()[0])
    run = host_side.run_scenario(sc)
    assert run.info["unmapped_own_pages"] == "0"
    assert [w for w in run.warnings if "not mapped" in w] == []


@needs_kernel
def test_kernel_reports_host_facts(kernel_suite_result):
    info = kernel_suite_result.kernel_info
    assert info["system"] == "Linux" and info["release"] and info["page_size"].isdigit()


@needs_thp
def test_thp_scenarios_were_compared_with_the_kernel(kernel_suite_result):
    res = kernel_suite_result
    huge = []
    for name in THP_NAMES:
        rows = [r for r in res.rows if r.scenario == name]
        assert rows
        if name in res.skipped:  # the kernel found no free huge page: inconclusive
            assert "did not allocate a huge page" in res.skipped[name]
            continue
        assert all(r.kernel is not None for r in rows if r.metric not in ("copied",))
        huge += [r for r in rows if r.metric == "AnonHugePages" and r.kernel]
    if len(res.skipped) < len(THP_NAMES) - 1:
        assert huge and all(r.kernel == r.cowsim == 2048 for r in huge)


@needs_thp
def test_huge_zero_page_write_allocates_a_huge_page():
    """Linux >= 6.13 (do_huge_zero_wp_pmd@mm/huge_memory.c) replaces the huge zero page
    with a new huge page at a write fault.  cowsim first split it and zero-filled 4 KiB
    (found by this test; fixed, see VALIDATION.md "Disagreements found")."""
    sc = Scenario.from_dict({"name": "huge_zero_write", "steps": [
        {"op": "map", "region": "a", "pages": 512, "huge": True},
        {"op": "read", "region": "a", "count": 1, "expect": {"minflt": 1, "a.Rss": 0}},
        {"op": "write", "region": "a", "first": 5, "count": 1, "expect": {"minflt": 1, "copied": 0}},
        {"op": "read", "region": "a", "first": 1, "count": 8, "expect": {"minflt": 0}}]})
    res = run_scenario(sc)
    if res.skipped:
        pytest.skip(res.skipped[sc.name])
    assert res.all_match, res.to_table()


@needs_thp
def test_last_mapped_subpage_is_copied():
    """__wp_can_reuse_large_anon_folio@mm/memory.c: "Let's just free up a large folio if
    only a single page is mapped" -- the kernel copies a non-exclusive subpage whose huge
    page has no other mapped subpage.  cowsim reused it (found by this test; fixed)."""
    sc = Scenario.from_dict({"name": "last_subpage", "steps": [
        {"op": "map", "region": "a", "pages": 512, "huge": True},
        {"op": "write", "region": "a"},
        {"op": "fork", "child": "child"},
        {"op": "munmap", "region": "a", "first": 1, "expect": {"a.Rss": 4}},
        {"op": "exit", "proc": "child", "expect": {"a.Pss": 4}},
        {"op": "write", "region": "a", "count": 1, "value": 2, "expect": {"minflt": 1}}]})
    res = run_scenario(sc)
    if res.skipped:
        pytest.skip(res.skipped[sc.name])
    assert res.all_match, res.to_table()
    (copied,) = [r for r in res.rows if (r.step, r.metric) == (6, "copied")]
    assert copied.cowsim == 1


@needs_kernel
def test_wrong_fault_around_is_detected():
    """The deliberately mis-configured simulator: no shmem fault-around in cowsim."""
    (sc,) = builtin_suite(["shmem_fault_around"], page_size=kernel.host_page_size(),
                          fault_around=kernel.fault_around_bytes()[0])
    run = host_side.run_scenario(sc)
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
    run = host_side.run_scenario(sc)

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
    run = host_side.run_scenario(sc)

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
    with pytest.raises(kernel.HostProbeError, match="unknown input line"):
        kernel.run_probe(["run"], "cowsim-probe 1\nprocs 1\nbogus\nend\n", 10)
    with pytest.raises(kernel.HostProbeError, match="incomplete input"):
        kernel.run_probe(["run"], "", 10)


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
    assert "kernel side run " in out  # the first run disagreed: the kernel ran again and repeated itself


def test_row_is_frozen():
    row = Row("s", 1, "a", "p", "", "minflt", 1, 1, None, 0, True)
    with pytest.raises(Exception):
        row.kernel = 2  # type: ignore[misc]
    assert row.as_dict()["note"] == ""


def test_damon_state_is_reported(tmp_path):
    root = tmp_path / "kdamonds"
    assert kernel._damon_state(str(root)) == ""  # no DAMON in the kernel
    for d, state, ops, action in (("0", "on", "paddr", "pageout"), ("1", "off", "vaddr", "stat")):
        ctx = root / d / "contexts" / "0"
        (ctx / "schemes" / "0").mkdir(parents=True)
        (root / d / "state").write_text(state + "\n")
        (ctx / "operations").write_text(ops + "\n")
        (ctx / "schemes" / "0" / "action").write_text(action + "\n")
    assert kernel._damon_state(str(root)) == "paddr: pageout"
    (root / "1" / "state").write_text("on\n")
    assert kernel._damon_state(str(root)) == "paddr: pageout; vaddr: stat"
