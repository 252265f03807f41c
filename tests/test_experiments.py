"""The experiments (``cowsim.experiments``) and the pricing of their events (``cowsim.cost``).

Each workload runs on small sizes and is checked against counts that follow
from docs/SEMANTICS.md: a cow fork takes exactly the child's table frames and
copies nothing, an eager fork copies every resident page, a snapshot with no
parent write costs no frame, the zygote's totals are closed formulas, and
xv6's cowtest passes under cow and fails at a known step under eager.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np
import pytest

import cowsim
from cowsim import process as cowsim_process
from cowsim.experiments import (
    FORK_MODES,
    concurrent_fork_modes,
    PREFORK_MODES,
    MissingDependency,
    cowtest,
    fork_cost,
    prefork,
    snapshot,
    snapshot_sweep,
    zygote,
)
from cowsim.cost import CostModel, exit_events, fork_events, resolve_cost_model, stats_delta

PS = 4096
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def table_frames(vpages, levels=4, bits=9):
    """Table frames (root included) a process needs to map ``vpages``."""
    v = np.asarray(vpages, dtype=np.uint64)
    return 1 + sum(len(np.unique(v >> np.uint64(bits * k))) for k in range(1, levels))


def leaf_tables(vpages, bits=9):
    return len(np.unique(np.asarray(vpages, dtype=np.uint64) >> np.uint64(bits)))


def populated(size_bytes):
    """A fresh metadata machine with one process holding size_bytes, every page written."""
    m = cowsim.Machine(memory=4 * size_bytes + (4 << 20), store_data=False)
    p = m.spawn()
    a = p.mmap(size_bytes)
    p.access(a + PS * np.arange(size_bytes // PS, dtype=np.uint64), write=True)
    return m, p, a


needs_vfork = pytest.mark.skipif("vfork" not in FORK_MODES, reason="this core has no vfork")


# -- FORK_MODES ---------------------------------------------------------------------------
def test_fork_modes_are_the_wrappers():
    assert FORK_MODES is cowsim.FORK_MODES
    assert set(FORK_MODES) == set(cowsim_process._FORK_MODES)  # every mode Process.fork accepts
    assert {"cow", "eager"} <= set(FORK_MODES)


def test_concurrent_fork_modes():
    modes = concurrent_fork_modes()
    assert {"cow", "eager"} <= set(modes) <= set(FORK_MODES)
    if "vfork" in FORK_MODES:
        assert "vfork" not in modes  # the vfork parent waits for its child


# -- fork-cost ------------------------------------------------------------------------------
SIZES = ["1MiB", "3MiB"]
FRACTIONS = [0.0, 0.1, 1.0]


@pytest.fixture(scope="module")
def fc():
    return fork_cost(sizes=SIZES, write_fractions=FRACTIONS, seed=3)


def test_fork_cost_rows_in_order(fc):
    rows = fc.records()
    assert [(r["size"], r["mode"], r["write_fraction"]) for r in rows] == [
        (s, m, f) for s in SIZES for m in FORK_MODES for f in FRACTIONS
    ]


@pytest.mark.parametrize("size", SIZES)
def test_fork_cost_exact_counts(fc, size):
    nbytes = cowsim.parse_size(size)
    n = nbytes // PS
    m, p, a = populated(nbytes)
    with m:
        vpages = (a // PS) + np.arange(n, dtype=np.uint64)
        tables = table_frames(vpages)
        assert p.stats.page_table_frames == tables
        base_frames = m.stats.frames_used  # n data + the parent's tables
    rows = {(r["mode"], r["write_fraction"]): r for r in fc.records() if r["size"] == size}
    for f in FRACTIONS:
        k = math.floor(f * n + 0.5)
        cow, eager = rows["cow", f], rows["eager", f]
        for r in (cow, eager):
            assert r["resident_pages"] == n and r["pages_written"] == k
            assert r["pt_parent"] == r["pt_child"] == tables
            assert r["ptes_copied"] == n
            assert r["leaf_tables"] == leaf_tables(vpages)
        # cow: the fork takes exactly the child's tables and copies nothing; each written page is copied once
        assert cow["frames_at_fork"] == cow["pt_child"]
        assert cow["copied_at_fork"] == 0
        assert cow["copied_after"] == k
        assert cow["peak_frames"] == base_frames + tables + k
        assert cow["saved_pages"] == n - k
        assert cow["saved_mib"] == pytest.approx((n - k) * PS / 2**20)
        # eager: every resident page copied at fork, none afterwards
        assert eager["copied_at_fork"] == n
        assert eager["frames_at_fork"] == tables + n
        assert eager["copied_after"] == 0
        assert eager["peak_frames"] == base_frames + tables + n
        assert eager["saved_pages"] == 0
        # memory saved = the difference of the peaks
        assert eager["peak_frames"] - cow["peak_frames"] == cow["saved_pages"]


def test_fork_cost_zero_writes_copies_nothing_under_cow_everything_under_eager(fc):
    for r in fc.records():
        if r["write_fraction"] == 0 and r["mode"] in ("cow", "eager"):
            copied = r["copied_at_fork"] + r["copied_after"]
            assert copied == (0 if r["mode"] == "cow" else r["resident_pages"])


@pytest.mark.parametrize("size", SIZES)
def test_fork_cost_odf_exact_counts(fc, size):
    nbytes = cowsim.parse_size(size)
    n = nbytes // PS
    m, p, a = populated(nbytes)
    with m:
        vpages = (a // PS) + np.arange(n, dtype=np.uint64)
        tables, leaves = table_frames(vpages), leaf_tables(vpages)
        base_frames = m.stats.frames_used
    order = np.random.default_rng([3, n]).permutation(n)
    rows = {r["write_fraction"]: r for r in fc.records() if r["size"] == size and r["mode"] == "odf"}
    for f in FRACTIONS:
        r = rows[f]
        k = math.floor(f * n + 0.5)
        spans = len(np.unique((vpages[0] + np.sort(order[:k]).astype(np.uint64)) >> np.uint64(9)))
        # the fork takes the child's root and upper tables only, and shares every leaf
        assert r["frames_at_fork"] == tables - leaves
        assert r["pt_parent"] == r["pt_child"] == tables
        assert (r["ptes_copied"], r["leaf_tables"], r["tables_shared"]) == (0, 0, leaves)
        # each written page is copied once; each span written gets one table copy
        assert (r["copied_at_fork"], r["copied_after"], r["table_copies_after"]) == (0, k, spans)
        assert r["peak_frames"] == base_frames + tables - leaves + spans + k
        assert r["saved_pages"] == n - k


def test_fork_cost_modelled_latency_follows_the_cost_model(fc):
    model = CostModel()
    for r in fc.records():
        expected = (
            model.fork_base_ns
            + r["ptes_copied"] * model.fork_per_pte_ns
            + r["leaf_tables"] * model.fork_per_table_ns
            + r["tables_shared"] * model.fork_per_shared_table_ns
            + r["copied_at_fork"] * model.copy_page_ns
        )
        assert r["fork_model_ms"] == pytest.approx(expected / 1e6)
        writes = r["copied_after"] * (model.fault_ns + model.copy_page_ns)
        if r["mode"] == "odf":
            writes += r["table_copies_after"] * model.table_copy_ns()
        if r["mode"] in ("cow", "odf"):
            assert r["writes_model_ms"] == pytest.approx(writes / 1e6)
        else:
            assert r["writes_model_ms"] == 0  # the child's own writable copies: hits


@needs_vfork
def test_fork_cost_vfork_copies_nothing(fc):
    model = CostModel()
    rows = [r for r in fc.records() if r["mode"] == "vfork"]
    assert rows
    for r in rows:
        assert r["frames_at_fork"] == r["ptes_copied"] == r["leaf_tables"] == r["copied_after"] == 0
        assert r["fork_model_ms"] == pytest.approx(model.fork_base_ns / 1e6)
        assert r["pt_parent"] == 0  # lent to the child
        assert r["saved_pages"] == r["resident_pages"]
        assert r["exit_model_ms"] == 0  # the child gives the space back, unmapping nothing


def test_fork_cost_reusing_the_parent_matches_a_fresh_parent():
    alone = fork_cost(sizes=["2MiB"], write_fractions=[0.5], seed=1).records(wallclock=False)
    together = fork_cost(sizes=["2MiB"], write_fractions=[0.0, 0.5, 1.0], seed=1).records(wallclock=False)
    assert alone == [r for r in together if r["write_fraction"] == 0.5]


def test_fork_cost_custom_cost_model_dict_and_file(tmp_path):
    prices = {"fork_base_ns": 1000.0, "fork_per_pte_ns": 1.0, "fork_per_table_ns": 10.0, "copy_page_ns": 100.0}
    r = fork_cost(sizes=["1MiB"], fork_modes=["cow", "eager"], write_fractions=[0.0], cost_model=prices)
    cow, eager = r.records()
    assert cow["fork_model_ms"] == pytest.approx((1000 + 256 * 1 + 1 * 10) / 1e6)
    assert eager["fork_model_ms"] == pytest.approx((1000 + 256 + 10 + 256 * 100) / 1e6)
    assert r.cost_model.fork_base_ns == 1000.0
    path = tmp_path / "profile.json"
    CostModel(**prices).save(path)
    from_file = fork_cost(sizes=["1MiB"], fork_modes=["cow", "eager"], write_fractions=[0.0], cost_model=str(path))
    assert from_file.records(wallclock=False) == r.records(wallclock=False)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(prices))
    from_plain = fork_cost(sizes=["1MiB"], fork_modes=["cow", "eager"], write_fractions=[0.0], cost_model=plain)
    assert from_plain.records(wallclock=False) == r.records(wallclock=False)


def test_fork_cost_result_conversions(fc):
    arr = fc.to_numpy()
    assert arr.dtype.names[:4] == ("size", "size_bytes", "resident_pages", "mode")
    assert len(arr) == len(SIZES) * len(FORK_MODES) * len(FRACTIONS)
    assert arr["copied_after"].dtype == np.int64
    assert "fork_wall_ms" not in fc.to_numpy(wallclock=False).dtype.names
    recs = fc.records()
    assert isinstance(recs[0], dict) and type(recs[0]["peak_frames"]) is int
    text = fc.to_table()
    for header in ("sim fork ms", "model fork ms", "frames@fork", "PT parent", "PT child", "saved MiB"):
        assert header in text
    assert "sim fork ms" not in fc.to_table(wallclock=False)
    assert fc.to_csv().splitlines()[0].startswith("size,size_bytes,resident_pages,mode,write_fraction")
    data = json.loads(fc.to_json())
    assert data["experiment"] == "fork-cost" and len(data["tables"]["forks"]) == len(arr)
    assert data["params"]["sizes"] == [1 << 20, 3 << 20]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fc.tables = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        fc.params["seed"] = 4  # type: ignore[index]


def test_fork_cost_deterministic():
    a = fork_cost(sizes=["2MiB"], write_fractions=[0.3], seed=7)
    b = fork_cost(sizes=["2MiB"], write_fractions=[0.3], seed=7)
    assert a.to_json(wallclock=False) == b.to_json(wallclock=False)
    assert a.to_table(wallclock=False) == b.to_table(wallclock=False)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"sizes": []}, "sizes"),
        ({"sizes": ["12XB"]}, "sizes[0]"),
        ({"sizes": ["1MiB", "1MiB"]}, "sizes"),
        ({"fork_modes": ["fast"]}, "fork_modes[0]"),
        ({"write_fractions": [1.5]}, "write_fractions[0]"),
        ({"write_fractions": [float("nan")]}, "write_fractions[0]"),
        ({"seed": -1}, "seed"),
        ({"cost_model": {"warp_ns": 1}}, "cost_model"),
        ({"cost_model": "/nonexistent/profile.json"}, "cost_model"),
    ],
)
def test_fork_cost_invalid_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(cowsim.InvalidArgument, match=name.replace("[", r"\[").replace("]", r"\]")):
        fork_cost(**{"sizes": ["1MiB"], **kwargs})


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError):
        fork_cost(sizes=["1MiB"], seed="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fork_cost(sizes=["1MiB"], cost_model=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        zygote(preload="1MiB", apps=2.5)  # type: ignore[arg-type]


# -- snapshot --------------------------------------------------------------------------------
def test_snapshot_zero_parent_writes_zero_cow_memory():
    r = snapshot(dataset="4MiB", steps=8, writes_per_step=0)
    n = 1024
    rows = r.records()
    assert [row["step"] for row in rows] == list(range(9))
    assert rows[-1]["pages_read"] == n
    tables = rows[0]["frames_used"] - n
    for row in rows:
        assert row["cow_pages"] == 0
        assert row["child_private_dirty_kb"] == 0 and row["parent_private_dirty_kb"] == 0
        assert row["child_shared_kb"] == row["parent_shared_kb"] == n * 4
        assert row["frames_used"] == rows[0]["frames_used"]
        assert row["data_frames"] == n
        assert row["memory_ratio"] == 1.0
        assert row["parent_fault_ms"] == 0
    assert r.summary["peak_ratio"] == 1.0 and r.summary["cow_pages_peak"] == 0
    assert r.summary["frames_after_exit"] == rows[0]["frames_used"] - tables // 2  # the child's tables freed


def test_snapshot_writes_copy_each_page_once_up_to_twice_the_data_set():
    n = 64
    r = snapshot(dataset=n * PS, steps=4, writes_per_step=5000)  # every page written in step 1
    rows = r.records()
    for row in rows[1:]:
        assert row["cow_pages"] == n
        assert row["child_private_dirty_kb"] == row["parent_private_dirty_kb"] == n * 4
        assert row["child_shared_kb"] == 0
        assert row["data_frames"] == 2 * n and row["memory_ratio"] == 2.0
    assert r.summary["peak_ratio"] == 2.0
    model = CostModel()
    assert rows[1]["parent_fault_ms"] == pytest.approx(n * (model.fault_ns + model.copy_page_ns) / 1e6)
    assert rows[2]["parent_fault_ms"] == 0  # later writes hit


def test_snapshot_series_is_consistent():
    r = snapshot(dataset="8MiB", steps=16, writes_per_step=100, seed=5)
    rows = r.records()
    cow = [row["cow_pages"] for row in rows]
    assert cow == sorted(cow) and 0 < cow[-1] <= 16 * 100
    for row in rows:
        assert row["child_private_dirty_kb"] == row["cow_pages"] * 4 == row["parent_private_dirty_kb"]
        assert row["child_shared_kb"] + row["child_private_dirty_kb"] == 2048 * 4
        assert row["memory_ratio"] == pytest.approx(1 + row["cow_pages"] / 2048)
        assert row["parent_writes"] == row["step"] * 100


def test_snapshot_zipf_skew_copies_fewer_pages_than_uniform():
    uniform = snapshot(dataset="16MiB", steps=8, writes_per_step=2000, skew=0.0, seed=1)
    skewed = snapshot(dataset="16MiB", steps=8, writes_per_step=2000, skew=1.2, seed=1)
    assert skewed.summary["cow_pages_peak"] < uniform.summary["cow_pages_peak"] / 2


def test_snapshot_eager_fork_doubles_memory_at_once():
    r = snapshot(dataset="1MiB", steps=2, writes_per_step=10, fork_mode="eager")
    assert all(row["memory_ratio"] == 2.0 and row["cow_pages"] == 0 for row in r.records())


def test_snapshot_deterministic_and_seed_matters():
    a = snapshot(dataset="4MiB", steps=4, writes_per_step=300, seed=1)
    b = snapshot(dataset="4MiB", steps=4, writes_per_step=300, seed=1)
    c = snapshot(dataset="4MiB", steps=4, writes_per_step=300, seed=2)
    assert a.to_json() == b.to_json()
    assert a.records() != c.records()


def test_snapshot_sweep():
    r = snapshot_sweep(writes_per_step=[0, 64, 4096], skews=[0.0, 1.0], dataset="1MiB", steps=4)
    rows = r.records()
    assert [(row["skew"], row["writes_per_step"]) for row in rows] == [
        (s, w) for s in (0.0, 1.0) for w in (0, 64, 4096)
    ]
    for row in rows:
        if row["writes_per_step"] == 0:
            assert row["cow_pages"] == 0 and row["peak_ratio"] == 1.0
        assert 1.0 <= row["peak_ratio"] <= 2.0
        assert row["total_writes"] == 4 * row["writes_per_step"]
    assert rows[2]["peak_ratio"] == 2.0  # 16384 uniform writes over 256 pages


@needs_vfork
def test_workloads_whose_parent_runs_on_reject_vfork():
    with pytest.raises(cowsim.InvalidArgument, match="fork_mode"):
        snapshot(dataset="1MiB", fork_mode="vfork")
    with pytest.raises(cowsim.InvalidArgument, match="fork_mode"):
        zygote(preload="1MiB", fork_mode="vfork")
    with pytest.raises(cowsim.InvalidArgument, match="fork_mode"):
        prefork(objects=10, fork_mode="vfork")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"steps": 0}, "steps"),
        ({"writes_per_step": -1}, "writes_per_step"),
        ({"skew": -0.5}, "skew"),
        ({"fork_mode": "lazy"}, "fork_mode"),
        ({"dataset": "lots"}, "dataset"),
    ],
)
def test_snapshot_invalid_arguments(kwargs, name):
    with pytest.raises(cowsim.InvalidArgument, match=name):
        snapshot(**{"dataset": "1MiB", "steps": 2, **kwargs})


# -- prefork ---------------------------------------------------------------------------------
PREFORK = dict(objects=65536, object_size=64, workers=2, requests=100, objects_per_request=5, gc_every=50,
               samples=4, skew=1.0, seed=2)
HEAP_KB = 65536 * 64 // 1024


@pytest.fixture(scope="module")
def pf():
    return prefork(**PREFORK)


def test_prefork_initial_state(pf):
    first = [r for r in pf.records("workers") if r["requests"] == 0]
    assert len(first) == len(PREFORK_MODES) * 2
    for r in first:
        assert r["Rss"] == r["Shared_Dirty"] == HEAP_KB
        assert r["Private_Dirty"] == r["Private_Clean"] == 0
        assert r["Pss"] == HEAP_KB // 3 or r["Pss"] == HEAP_KB // 3 - 1  # master + 2 workers share it


def test_prefork_accounting_is_exact(pf):
    for r in pf.records("workers"):
        assert r["Shared_Clean"] + r["Shared_Dirty"] + r["Private_Clean"] + r["Private_Dirty"] == r["Rss"] == HEAP_KB
        assert r["Private_Dirty"] == 4 * r["cow_copies"]  # each refcount write copies its page once


def test_prefork_gc_makes_every_page_private(pf):
    for r in pf.records("workers"):
        if r["mode"] == "gc" and r["requests"] >= 50:
            assert r["Shared_Clean"] + r["Shared_Dirty"] == 0
            assert r["cow_copies"] == HEAP_KB // 4
    summary = {r["mode"]: r for r in pf.records("summary")}
    assert summary["gc"]["shared_kb"] == 0
    assert summary["nogc"]["shared_kb"] > 0
    assert summary["gc"]["gc_passes"] == summary["freeze"]["gc_passes"] == 2
    assert summary["nogc"]["gc_passes"] == 0


def test_prefork_freeze_shares_like_nogc(pf):
    def memory(mode):
        return [
            {k: v for k, v in r.items() if k not in ("mode", "gc_passes")}
            for r in pf.records("workers")
            if r["mode"] == mode
        ]

    assert memory("freeze") == memory("nogc")


def test_prefork_mean_table_and_text(pf):
    mean = pf.to_numpy("mean")
    assert len(mean) == len(PREFORK_MODES) * 5
    assert mean["shared_fraction"][0] == 1.0
    text = pf.to_table()
    assert "Shared kB" in text and "Shared_Dirty kB" not in text  # the per-worker table is not printed
    assert pf.to_csv().splitlines()[0].startswith("mode,requests,worker,Rss,Pss")


def test_prefork_invalid_arguments():
    with pytest.raises(cowsim.InvalidArgument, match="object_size"):
        prefork(object_size=8)
    with pytest.raises(cowsim.InvalidArgument, match="gc_modes"):
        prefork(gc_modes=["gc", "sometimes"])
    with pytest.raises(cowsim.InvalidArgument, match="samples"):
        prefork(objects=100, requests=5, samples=6)
    with pytest.raises(cowsim.InvalidArgument, match="workers"):
        prefork(workers=0)


# -- zygote ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fork_mode", ["cow", "eager"])
def test_zygote_totals_exact(fork_mode):
    preload, apps, fraction = 2 << 20, 5, 0.1
    n = preload // PS
    k = math.floor(fraction * n + 0.5)
    m, p, _ = populated(preload)
    with m:
        t = p.stats.page_table_frames
    r = zygote(preload=preload, apps=apps, dirty_fraction=fraction, fork_mode=fork_mode)
    rows = r.records()
    assert [row["apps"] for row in rows] == list(range(apps + 1))
    per_app = t + (k if fork_mode == "cow" else n)
    for row in rows:
        i = row["apps"]
        assert row["frames_zygote"] == n + t + i * per_app
        assert row["frames_alone"] == i * (n + t)
        assert row["saved_frames"] == row["frames_alone"] - row["frames_zygote"]
    assert r.summary["dirty_pages_per_app"] == k


def test_zygote_startup_is_priced():
    model = CostModel()
    r = zygote(preload="1MiB", apps=1, dirty_fraction=0.5)
    row = r.records()[1]
    fork = model.fork_ns(256, 1)
    assert row["startup_zygote_ms"] == pytest.approx((fork + 128 * (model.fault_ns + model.copy_page_ns)) / 1e6)
    assert row["startup_alone_ms"] == pytest.approx(256 * (model.fault_ns + model.zero_fill_ns) / 1e6)


def test_zygote_invalid_arguments():
    with pytest.raises(cowsim.InvalidArgument, match="dirty_fraction"):
        zygote(dirty_fraction=2)
    with pytest.raises(cowsim.InvalidArgument, match="apps"):
        zygote(apps=0)
    with pytest.raises(cowsim.InvalidArgument, match="fork_mode"):
        zygote(fork_mode="spawn")


# -- cowtest -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ct():
    return cowtest()


def test_cowtest_passes_under_cow(ct):
    assert ct.passed("cow")
    assert ct.first_failure("cow") is None
    cow_steps = [r for r in ct.records("steps") if r["mode"] == "cow"]
    assert all(r["status"] == "ok" for r in cow_steps)
    assert sum(r["step"] == "no frame leaked" for r in cow_steps) == 6
    assert any(r["step"] == "grandchild verifies its pid" for r in cow_steps)


def test_cowtest_eager_fails_at_the_documented_steps(ct):
    assert not ct.passed("eager")
    assert ct.first_failure("eager") == ("simple #1", "fork")
    tests = {r["test"]: r for r in ct.records() if r["mode"] == "eager"}
    assert tests["simple #1"]["failed_step"] == tests["simple #2"]["failed_step"] == "fork"
    assert tests["forkloop #1"]["failed_step"] == "round 1: child forks grandchild"
    for name in ("simple #1", "simple #2", "forkloop #1"):
        assert tests[name]["status"] == "FAILED" and tests[name]["error"].startswith("OutOfMemory")
    for name in ("three #1", "three #2", "three #3"):
        assert tests[name]["status"] == "ok"  # three copies of a quarter of memory fit
    assert ct.summary["passed_cow"] is True and ct.summary["passed_eager"] is False
    assert "eager: FAILED" in ct.to_table() and "cow: ALL COW TESTS PASSED" in ct.to_table()


@pytest.mark.parametrize("mode", ["cow", "eager"])
def test_cowtest_three_copies_exactly(mode):
    r = cowtest(memory="4MiB", fork_modes=[mode], rounds=2)
    frames_total = r.params["frames_total"]
    assert frames_total == 1023
    sz = frames_total * PS // 4 // PS  # the region's pages
    g_len = (sz * PS // 5) * 4 // PS  # the grandchild writes 4/5, the child 1/2 (inside the grandchild's part)
    # cow, page by page: the parent writes first and copies (3 sharers), the grandchild copies
    # (2 sharers), the child is left alone with the original frame and reuses it.
    # eager: each fork copies the whole region, every later write hits or reuses.
    expected = sz + g_len if mode == "cow" else 2 * sz
    for row in r.records():
        if row["test"].startswith("three"):
            assert row["status"] == "ok"
            assert row["pages_copied"] == expected


@needs_vfork
def test_cowtest_vfork_is_not_fork(ct):
    tests = {r["test"]: r for r in ct.records() if r["mode"] == "vfork"}
    assert tests["simple #1"]["status"] == "ok"  # fork then exit: vfork's own use
    assert tests["three #1"]["status"] == "FAILED"  # the parent cannot run beside its child
    assert tests["forkloop #1"]["status"] == "FAILED"  # the child's write lands in the parent's memory
    assert tests["forkloop #1"]["error"].startswith("wrong content")


def test_cowtest_invalid_arguments():
    with pytest.raises(cowsim.InvalidArgument, match="memory"):
        cowtest(memory="64KiB")
    with pytest.raises(cowsim.InvalidArgument, match="memory"):
        cowtest(memory="2GiB")
    with pytest.raises(cowsim.InvalidArgument, match="rounds"):
        cowtest(rounds=0)


# -- pricing ---------------------------------------------------------------------------------------
def test_resolve_cost_model():
    assert resolve_cost_model(None) == CostModel()
    model = CostModel(fault_ns=1)
    assert resolve_cost_model(model) is model
    assert resolve_cost_model({"fault_ns": 2}).fault_ns == 2.0
    with pytest.raises(cowsim.InvalidArgument, match="cost_model"):
        resolve_cost_model({"fault_ns": -1})
    with pytest.raises(TypeError):
        resolve_cost_model(3.5)  # type: ignore[arg-type]


def test_fork_events_with_zero_page_entries_and_unwritten_regions():
    with cowsim.Machine(memory="8MiB", store_data=False) as m:
        p = m.spawn()
        a = p.mmap(1024 * PS)  # two leaf tables' worth, written: entries copied
        b = p.mmap(16 * PS)  # read only: no anon_vma, not copied (K1)
        p.access(a + PS * np.arange(0, 1024, 2, dtype=np.uint64), write=True)
        p.access(a + PS * np.arange(1, 1024, 2, dtype=np.uint64), write=False)  # zero-page entries
        p.access(b + PS * np.arange(16, dtype=np.uint64), write=False)
        before = m.stats
        c = p.fork()
        ev = fork_events(c, before, m.stats)
        vpages = (a // PS) + np.arange(1024, dtype=np.uint64)
        assert ev.ptes == 1024  # 512 frames + 512 zero-page entries; region b not copied
        assert ev.tables == leaf_tables(vpages)
        assert ev.table_frames == c.stats.page_table_frames == table_frames(vpages)
        assert ev.pages_copied == 0 and ev.frames_allocated == ev.table_frames
        model = CostModel()
        assert model.price_fork(ev) == model.fork_ns(1024, ev.tables)


def test_exit_events_are_read_before_the_exit_and_change_nothing():
    with cowsim.Machine(memory="1MiB", store_data=False) as m:
        p = m.spawn()
        a = p.mmap(8 * PS)
        p.access(a + PS * np.arange(6, dtype=np.uint64), write=True)
        c = p.fork()
        v = c.fork("vfork")  # runs on c's space until it execs or exits
        before = (m.stats, p.stats, c.stats, v.stats)
        assert exit_events(v).pages_unmapped == 0  # gives the borrowed space back
        assert exit_events(p).pages_unmapped == 6
        assert (m.stats, p.stats, c.stats, v.stats) == before  # reads only
        v.exit()
        assert exit_events(c).pages_unmapped == 6
        model = CostModel(exit_per_page_ns=10)
        ev = exit_events(c)
        c.exit()
        assert model.price_exit(ev) == 60.0


def test_stats_delta():
    with cowsim.Machine(memory="1MiB", store_data=False) as m:
        p = m.spawn()
        a = p.mmap(4 * PS)
        s0 = p.stats
        p.access(a + PS * np.arange(4, dtype=np.uint64), write=True)
        d = stats_delta(p.stats, s0)
        assert d.faults_zero_fill == 4 and d.minflt == 4
        assert d.page_table_frames == p.stats.page_table_frames
        assert stats_delta(p.stats) == p.stats


# -- plots ----------------------------------------------------------------------------------------
def small_results():
    return {
        "fork-cost": fork_cost(sizes=["1MiB", "2MiB"], write_fractions=[0, 0.5]),
        "snapshot": snapshot(dataset="1MiB", steps=4, writes_per_step=20),
        "snapshot-sweep": snapshot_sweep(writes_per_step=[0, 10], skews=[0, 1], dataset="1MiB", steps=2),
        "prefork": prefork(objects=1024, requests=20, gc_every=10, samples=2, workers=2),
        "zygote": zygote(preload="1MiB", apps=3),
        "cowtest": cowtest(memory="4MiB", rounds=1),
    }


def test_plots_are_png(tmp_path):
    pytest.importorskip("matplotlib")
    for name, result in small_results().items():
        path = result.plot(tmp_path / f"{name}.png")
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert 5_000 < len(data) < 100_000, name


def test_plot_without_matplotlib_is_a_clear_cowsim_error(tmp_path, monkeypatch):
    result = zygote(preload="1MiB", apps=1)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingDependency, match="matplotlib") as info:
        result.plot(tmp_path / "z.png")
    assert isinstance(info.value, cowsim.CowsimError)
    assert not (tmp_path / "z.png").exists()


def test_plot_bad_suffix(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(cowsim.InvalidArgument, match="plot"):
        zygote(preload="1MiB", apps=1).plot(tmp_path / "figure.nosuchformat")


# -- snapshot with transparent huge pages: the Redis case ------------------------------------
@pytest.mark.parametrize("thp", ["split", "copy-huge"])
def test_snapshot_huge_pages_split_copies_4k_copy_huge_copies_2m(thp):
    from cowsim.experiments._snapshot import KeySampler

    pages, k = (8 << 20) // PS, 40                     # 4 huge pages, 40 parent writes
    r = snapshot(dataset="8MiB", steps=1, writes_per_step=k, seed=5, thp=thp)
    keys = KeySampler(np.random.default_rng([5, pages]), pages, 0.0).draw(k)
    written, huge_touched = len(set(keys.tolist())), len(set((keys // 512).tolist()))
    assert huge_touched == 4 and written == 40
    last = r.records()[-1]
    if thp == "split":
        # each first write to a shared huge page splits the parent's mapping; only 4 KiB copied
        assert (last["cow_pages"], r.summary["thp_splits"]) == (written, huge_touched)
        assert last["parent_anon_huge_kb"] == 0
    else:
        # pre-5.8: every first write to a shared huge page copies all 2 MiB of it
        assert (last["cow_pages"], r.summary["thp_splits"]) == (512 * huge_touched, 0)
        assert last["parent_anon_huge_kb"] == 8 << 10
    assert r.summary["parent_anon_huge_kb_at_fork"] == 8 << 10
    assert r.params["thp"] == thp


def test_snapshot_thp_off_is_the_4k_run_and_bad_thp_is_rejected():
    a = snapshot(dataset="4MiB", steps=2, writes_per_step=10, seed=1).records(wallclock=False)
    b = snapshot(dataset="4MiB", steps=2, writes_per_step=10, seed=1, thp="off").records(wallclock=False)
    assert a == b and a[-1]["parent_anon_huge_kb"] == 0
    with pytest.raises(cowsim.InvalidArgument, match="thp"):
        snapshot(dataset="4MiB", thp="huge")


def test_fork_cost_thp_shares_one_entry_per_huge_page():
    n = (4 << 20) // PS                                 # 2 huge pages
    r = fork_cost(sizes=["4MiB"], fork_modes=["cow", "odf"], write_fractions=[0.0, 1.0], seed=3, thp="split")
    assert r.params["thp"] == "split"
    for row in r.records():
        # root + 2 upper tables + 2 deposited tables; one entry per huge page, no copy at fork
        assert (row["frames_at_fork"], row["pt_child"], row["ptes_copied"], row["leaf_tables"]) == (5, 5, 2, 2)
        assert row["tables_shared"] == 0 and row["copied_at_fork"] == 0   # odf never shares huge entries
        k = n if row["write_fraction"] == 1.0 else 0
        assert row["copied_after"] == k and row["saved_pages"] == n - k
    with pytest.raises(cowsim.InvalidArgument, match="thp"):   # thp is a str now ("off", "split", "copy-huge")
        fork_cost(sizes=["4MiB"], thp="yes")
    with pytest.raises(TypeError, match="thp"):
        fork_cost(sizes=["4MiB"], thp=2)


def test_fork_cost_spawn_table_prices_fork_plus_exec(fc):
    model = CostModel()
    rows = fc.table("spawn").records()
    assert [(r["size"], r["mode"]) for r in rows] == [(s, m) for s in SIZES for m in FORK_MODES]
    forks = {(r["size"], r["mode"]): r for r in fc.records() if r["write_fraction"] == 0}
    for r in rows:
        f = forks[r["size"], r["mode"]]
        n = f["resident_pages"]
        # the exec unmaps exactly the entries the fork gave the child: all of them after cow
        # and eager, none after vfork (the space goes back) or odf (its tables were shared)
        assert r["entries_unmapped"] == (n if r["mode"] in ("cow", "eager") else 0)
        assert r["frames_at_fork"] == f["frames_at_fork"]
        assert r["fork_model_ms"] == pytest.approx(f["fork_model_ms"])
        exec_ns = model.exec_ns + r["entries_unmapped"] * model.exit_per_page_ns
        assert r["exec_model_ms"] == pytest.approx(exec_ns / 1e6)
        assert r["spawn_model_ms"] == pytest.approx(r["fork_model_ms"] + r["exec_model_ms"])
    vfork = [r["spawn_model_ms"] for r in rows if r["mode"] == "vfork"]
    assert vfork and all(v == pytest.approx(0.497) for v in vfork)   # posix_spawn: ~0.5 ms, flat
