"""File scenarios: the scenario format's file steps, the probe's real files, and the built-in
file scenarios' predictions on the host kernel (docs/FILE_MEASUREMENTS.md)."""
from __future__ import annotations

import copy
import os

import pytest

import cowsim
from cowsim.host import probe as kernel
from cowsim.validation import host_side
from cowsim.validation.compare import Row, ValidationResult, settle_kernel_runs
from cowsim.validation.file_suite import FILE_SUITE_NAMES, file_dicts
from cowsim.validation.scenario import Scenario
from cowsim.validation.suite import builtin_suite, files_supported

REASON = kernel.unavailable_reason() or kernel.files_unavailable_reason()
needs_files = pytest.mark.skipif(REASON is not None, reason=f"kernel file side unavailable: {REASON}")
needs_core_files = pytest.mark.skipif(not files_supported(), reason="the core has no files yet (Machine.file)")

BASE = {
    "name": "files",
    "steps": [
        {"op": "file", "file": "f", "pages": 10, "cached": True, "last_bytes": 100},
        {"op": "map", "region": "a", "pages": 16, "prot": "r", "file": "f", "offset": 2},
        {"op": "read", "region": "a", "first": 12, "count": 1,
         "expect": {"sigbus": 1, "majflt": 0, "a.Pss_File": 32, "f.cached": 10, "RssFile": 32}},
        {"op": "madvise", "region": "a", "advice": "random"},
        {"op": "fwrite", "file": "f", "first": 1, "count": 2, "value": 5},
        {"op": "fread", "file": "f", "first": 1, "count": 2, "expect": {"data_sum": 10}},
        {"op": "fsync", "file": "f"},
        {"op": "evict", "file": "f"},
        {"op": "folios", "file": "f", "expect": {"f.folios": 0, "f.dirty": 0, "f.large": 0}},
    ],
}


def _bad(patch, msg):
    d = copy.deepcopy(BASE)
    patch(d)
    with pytest.raises(cowsim.InvalidArgument, match=msg):
        Scenario.from_dict(d)


# ----------------------------------------------------------------- the format
def test_file_steps_parse_and_describe():
    sc = Scenario.from_dict(BASE)
    assert sc.uses_files and list(sc.files) == ["f"]
    spec = sc.files["f"]
    assert (spec.pages, spec.fill, spec.cached, spec.last_bytes, spec.step) == (10, "pages", "yes", 100, 1)
    assert spec.size(4096) == 9 * 4096 + 100
    assert sc.regions["a"].file == "f" and sc.regions["a"].offset == 2
    assert [s.describe() for s in sc.steps] == [
        "file f (10 pages, fill pages, cached yes)", "map a (16 pages, r private of f@2)", "read a[12:13]",
        "madvise a[0:16] random", "fwrite f[1:3]=5", "fread f[1:3]", "fsync f", "evict f", "folios f"]
    assert sc.steps[2].expect[("parent", "a", "Pss_File")] == 32
    assert sc.steps[2].expect[("parent", "f", "cached")] == 10


def test_file_keys():
    sc = Scenario.from_dict(BASE)
    read, folios = sc.steps[2], sc.steps[8]
    keys = sc.keys(read)
    assert [k[3] for k in keys if not k[2]] == ["minflt", "copied", "segv", "data_sum", "majflt", "sigbus",
                                               "RssFile", "RssAnon", "RssShmem"]
    assert (3, "parent", "a", "Pss_File") in keys
    assert [k[3] for k in keys if k[2] == "f"] == ["size", "cached"]
    assert [k[3] for k in sc.keys(folios) if k[2] == "f"] == ["size", "cached", "folios", "dirty", "large"]
    fread = sc.steps[5]
    assert [k[3] for k in sc.keys(fread) if not k[2]] == ["minflt", "data_sum", "majflt", "RssFile", "RssAnon",
                                                         "RssShmem"]


def test_anonymous_scenarios_measure_what_they_did():
    (sc,) = builtin_suite(["cow_fork_pss"])
    assert not sc.uses_files
    keys = sc.keys(sc.steps[1])
    assert [k[3] for k in keys if not k[2]] == ["minflt", "copied", "segv"]
    assert not any(k[3] == "Pss_File" for k in keys)


def test_file_metric_before_creation_is_absent():
    d = {"name": "x", "steps": [{"op": "map", "region": "a", "pages": 1}, {"op": "file", "file": "f", "pages": 1}]}
    sc = Scenario.from_dict(d)
    assert not any(k[2] == "f" for k in sc.keys(sc.steps[0]))
    assert any(k[2] == "f" for k in sc.keys(sc.steps[1]))


@pytest.mark.parametrize("patch, msg", [
    (lambda d: d["steps"][1].update(file="g"), "unknown file 'g'"),
    (lambda d: d["steps"][1].update(huge=True), "file mappings cannot be huge"),
    (lambda d: d["steps"][1].pop("file"), "'offset' needs 'file'"),
    (lambda d: d["steps"][0].update(fill="zeros"), "field 'fill' must be one of"),
    (lambda d: d["steps"][0].update(fill="none"), "has nothing to cache"),
    (lambda d: d["steps"][0].update(cached="yes"), "field 'cached' must be true, false or"),
    (lambda d: d["steps"][0].update(pages=0), "field 'pages' must be in"),
    (lambda d: d["steps"][1].update(region="f"), "already used by a file"),
    (lambda d: d["steps"].insert(1, {"op": "file", "file": "f", "pages": 1}), "already used"),
    (lambda d: d["steps"][4].update(value=256), "field 'value' must be in"),
    (lambda d: d["steps"][2]["expect"].update({"f.folios": 1}), "unknown file metric 'folios'"),
    (lambda d: d["steps"][3].update(advice="sequential"), "field 'advice' must be one of"),
    (lambda d: d["steps"][6].update(first=1), "unknown field"),
])
def test_bad_file_steps(patch, msg):
    _bad(patch, msg)


def test_probe_input_of_file_steps():
    sc = Scenario.from_dict(BASE)
    lines = host_side._encode(sc, 4096).splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert steps[:6] == ["step 1 fcreate 0 0 10 1 1 100", "step 2 map 0 0 1 0 0 0 2", "step 3 read 0 0 12 1 0",
                         "step 4 madvise 0 0 0 16 5", "step 5 fwrite 0 0 1 2 5", "step 6 fread 0 0 1 2 0"]
    assert steps[6:] == ["step 7 fsync 0 0 0 0 0", "step 8 evict 0 0 0 0 0", "step 9 folios 0 0 0 0 0"]


def test_file_suite_states_its_predictions_for_every_page_size():
    for ps in (4096, 16384, 65536):
        for ra in (128, 8192):
            scs = [Scenario.from_dict(d) for d in file_dicts(ps, 65536, ra)]
            assert [s.name for s in scs] == list(FILE_SUITE_NAMES)
            assert all(any(st.expect for st in s.steps) for s in scs)
    with_files = [s.name for s in builtin_suite(files=True)]
    assert set(FILE_SUITE_NAMES) <= set(with_files)
    assert not set(FILE_SUITE_NAMES) & {s.name for s in builtin_suite(files=False)}


def test_table_shows_file_columns():
    rows = [Row("s", 1, "parent: read a[0:1]", "parent", "", "majflt", 1, 1, 1, 0, True),
            Row("s", 1, "parent: read a[0:1]", "parent", "", "minflt", 0, 0, None, 0, True),
            Row("s", 1, "parent: read a[0:1]", "parent", "a", "Pss_File", 64, 64, None, 0, True),
            Row("s", 1, "parent: read a[0:1]", "parent", "f", "cached", 64, 32, None, 0, False)]
    text = ValidationResult(rows=rows).to_table()
    header = next(line for line in text.splitlines() if line.startswith("#"))
    assert "maj" in header and "PssFile" in header and "cached" in header and "bus" not in header
    assert "K64|S32" in text and "1*" in text


@pytest.mark.skipif(files_supported(), reason="the core has files")
def test_a_core_without_files_says_so():
    from cowsim.validation import simulate

    with pytest.raises(cowsim.InvalidArgument, match="uses files, which this cowsim core does not simulate"):
        simulate(Scenario.from_dict(BASE))


# ------------------------------------------------------------- the host kernel
def _kernel_values(sc, runs=3):
    """The kernel's settled values of a scenario: one run, or up to ``runs`` more when
    a prediction was missed (docs/VALIDATION.md's re-run rule)."""
    first = host_side.run_scenario(sc)
    got = [first.measurements]

    def missed(values):
        return [(st.number, key) for st in sc.reported_steps() for key, e in st.expect.items()
                if values.get((st.number, *key)) != e]

    values = first.measurements
    while missed(values) and len(got) <= runs:
        got.append(host_side.run_scenario(sc).measurements)
        values, _, unsettled = settle_kernel_runs(got)
        if not unsettled and len(got) >= 2:
            break
    return values, missed(values), first


@needs_files
@pytest.mark.parametrize("name", FILE_SUITE_NAMES)
def test_file_scenario_predictions_hold_on_the_kernel(name):
    ra = kernel.readahead_kb(kernel.probe_file_dir()) or 128
    d = next(d for d in file_dicts(kernel.host_page_size(), kernel.fault_around_bytes()[0], ra) if d["name"] == name)
    sc = Scenario.from_dict(d)
    values, missed, first = _kernel_values(sc)
    assert not missed, [(n, k, values.get((n, *k))) for n, k in missed]
    assert first.info["file_fs"] not in ("tmpfs", "?") and first.info["readahead_kb"] == str(ra)


@needs_files
def test_probe_removes_its_files():
    sc = Scenario.from_dict(BASE)
    run = host_side.run_scenario(sc)
    assert run.measurements[(9, "parent", "f", "size")] == 9 * kernel.host_page_size() + 100
    pid = run.info["probe_pid"]
    assert pid.isdigit()
    assert not [f for f in os.listdir(kernel.probe_file_dir()) if f.startswith(f"cowsim-probe-{pid}-")]


@needs_files
def test_probe_status_counters_exclude_its_own_memory():
    sc = Scenario.from_dict({"name": "status", "steps": [
        {"op": "map", "region": "a", "pages": 8},
        {"op": "write", "region": "a"},
        {"op": "map", "region": "s", "pages": 8, "shared": True},
        {"op": "write", "region": "s", "count": 3},
        {"op": "file", "file": "f", "pages": 16, "cached": True},
        {"op": "fork", "child": "c"},
        {"op": "map", "region": "m", "pages": 16, "prot": "r", "file": "f"},
        {"op": "read", "region": "m", "count": 1}]})
    v = host_side.run_scenario(sc).measurements
    ps = kernel.host_page_size() // 1024
    assert (v[(2, "parent", "", "RssAnon")], v[(4, "parent", "", "RssShmem")]) == (8 * ps, 3 * ps)
    assert v[(6, "c", "", "RssAnon")] == 8 * ps and v[(6, "c", "", "RssShmem")] == 0
    assert v[(8, "parent", "", "RssFile")] == 16 * ps and v[(8, "parent", "m", "Pss_File")] == 16 * ps


# ------------------------------------------------------------- both sides
# the core does not map whole large folios yet (FILE_MEASUREMENTS.md, FL): a read fault in a fresh
# table, a shared write fault
GAPS: dict = {}  # scenarios the core does not match yet (none)


@needs_core_files
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=GAPS[n])) if n in GAPS else n
    for n in FILE_SUITE_NAMES])
def test_file_scenario_holds_in_cowsim(name):
    from cowsim.validation import run_scenario

    (sc,) = builtin_suite([name])
    res = run_scenario(sc, kernel=False)
    assert res.all_match, res.to_table()


@needs_files
@needs_core_files
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=GAPS[n])) if n in GAPS else n
    for n in FILE_SUITE_NAMES])
def test_file_scenario_matches_the_kernel(name):
    from cowsim.validation import run_scenario
    from cowsim.validation.run import host_suite

    (sc,) = host_suite([name])
    res = run_scenario(sc, kernel=True)
    assert res.all_match, res.to_table()
    assert res.simulator["readahead_kb"] == kernel.readahead_kb(kernel.probe_file_dir())
