"""Batched accesses (Process.access) and trace replay (Machine.replay)."""
import numpy as np
import pytest

import cowsim
from cowsim import Outcome

PS = 4096


def addrs(base, pages):
    return base + np.asarray(pages, dtype=np.uint64) * PS


def test_batch_counts_and_outcomes_exact():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(4 * PS)
    r = p.access(addrs(a, [0, 0, 1, 1, 2]), write=np.array([False, True, True, False, False]), outcomes=True)
    assert r.outcomes.dtype == np.uint8
    assert r.outcomes.tolist() == [Outcome.ZERO_PAGE, Outcome.ZERO_FILL, Outcome.ZERO_FILL, Outcome.HIT,
                                   Outcome.ZERO_PAGE]
    assert (r.hits, r.zero_page, r.zero_fill, r.cow_copy, r.cow_reuse, r.shared, r.segfaults, r.done) == \
        (1, 2, 2, 0, 0, 0, 0, 5)
    assert r.faults == 4
    c = p.fork()
    r = c.access(addrs(a, [0, 1, 0]), write=True)
    assert (r.cow_copy, r.hits, r.done) == (2, 1, 3)
    r = p.access(addrs(a, [0, 1]), write=True)
    assert (r.cow_reuse, r.cow_copy) == (2, 0)
    assert p.stats.minflt == 6 and c.stats.minflt == 2
    m.check()


@pytest.mark.parametrize("store_data", [True, False])
def test_batch_equals_single_touches(store_data):
    rng = np.random.default_rng(5)
    pages = rng.integers(0, 40, 3000)
    writes = rng.random(3000) < 0.4
    results = []
    for batched in (True, False):
        m = cowsim.Machine(memory="1MiB", store_data=store_data)
        p = m.spawn()
        a = p.mmap(32 * PS)   # pages 32..39 fall outside: segfaults
        p.write(a, b"z" * PS)
        c = p.fork()
        if batched:
            out = c.access(addrs(a, pages), write=writes, outcomes=True).outcomes.tolist()
        else:
            out = []
            for pg, w in zip(pages.tolist(), writes.tolist()):
                try:
                    out.append(int(c.touch(a + pg * PS, write=w)))
                except cowsim.SegmentationFault:
                    out.append(int(Outcome.SEGFAULT))
        st = {k: v for k, v in c.stats.as_dict().items() if not k.startswith("tlb_")}
        results.append((out, st, c.page_table().tolist(), m.stats))
        m.check()
    assert results[0] == results[1]


def test_segfault_continue_and_raise():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(2 * PS)
    bad = np.array([a, 0x1000, a + PS, a + 2 * PS], dtype=np.uint64)
    r = p.access(bad, write=True)
    assert (r.segfaults, r.zero_fill, r.hits, r.done) == (2, 2, 0, 4)
    with pytest.raises(cowsim.SegmentationFault) as ei:
        p.access(np.array([a, 0x1000, a + PS], dtype=np.uint64), write=True, on_segfault="raise")
    e = ei.value
    assert (e.index, e.address, e.access, e.reason) == (1, 0x1000, "write", "unmapped")
    assert (e.result.hits, e.result.segfaults, e.result.done) == (1, 1, 2)
    assert p.stats.segfaults == 3
    p.mprotect(a, PS, "r")
    with pytest.raises(cowsim.SegmentationFault) as ei:
        p.access(np.array([a, a], dtype=np.uint64), write=np.array([False, True]), on_segfault="raise")
    assert (ei.value.index, ei.value.reason, ei.value.access) == (1, "protection", "write")
    m.check()


def test_out_of_memory_mid_batch_keeps_what_was_done():
    m = cowsim.Machine(memory=8 * PS)   # 7 frames: root + 3 tables + 3 data
    p = m.spawn()
    a = p.mmap(6 * PS)
    with pytest.raises(cowsim.OutOfMemory) as ei:
        p.access(addrs(a, range(6)), write=True)
    assert ei.value.index == 3
    assert (ei.value.result.zero_fill, ei.value.result.done) == (3, 3)
    assert p.stats.faults_zero_fill == 3 and p.stats.accesses == 3
    assert m.stats.frames_free == 0
    m.check()
    p.munmap(a, PS)
    r = p.access(addrs(a, [3]), write=True)
    assert r.zero_fill == 1
    m.check()


def test_replay_across_processes_in_order():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(2 * PS)
    p.write(a, b"r" * 2 * PS)
    c = p.fork()
    pids = np.array([c.pid, p.pid, p.pid, c.pid], dtype=np.int32)
    r = m.replay(pids, addrs(a, [0, 0, 1, 1]), write=True, outcomes=True)
    assert r.outcomes.tolist() == [Outcome.COW_COPY, Outcome.COW_REUSE, Outcome.COW_COPY, Outcome.COW_REUSE]
    assert (c.stats.faults_cow_copy, c.stats.faults_cow_reuse) == (1, 1)
    assert (p.stats.faults_cow_copy, p.stats.faults_cow_reuse) == (1, 1)
    c.exit()
    with pytest.raises(cowsim.ProcessExited, match="index 1"):
        m.replay(np.array([p.pid, c.pid], dtype=np.int32), addrs(a, [0, 0]))
    assert p.stats.accesses == 2 + 2 + 1   # write, replay, and the access before the exited pid
    m.check()


@pytest.mark.parametrize("arr, exc, match", [
    ([1, 2], TypeError, "NumPy array"),
    (np.array([1, 2], dtype=np.int64), TypeError, "dtype uint64"),
    (np.zeros((2, 2), dtype=np.uint64), cowsim.InvalidArgument, "1-D"),
    (np.zeros(8, dtype=np.uint64)[::2], cowsim.InvalidArgument, "contiguous"),
])
def test_bad_address_arrays(arr, exc, match):
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    with pytest.raises(exc, match=match):
        p.access(arr)
    m.check()


def test_bad_write_and_options():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = np.zeros(3, dtype=np.uint64)
    with pytest.raises(cowsim.InvalidArgument, match="length"):
        p.access(a, write=np.array([True, False]))
    with pytest.raises(TypeError, match="dtype bool"):
        p.access(a, write=np.array([1, 0, 1], dtype=np.uint8))
    with pytest.raises(cowsim.InvalidArgument, match="on_segfault"):
        p.access(a, on_segfault="ignore")
    with pytest.raises(TypeError, match="dtype int32"):
        m.replay(np.array([1, 1, 1], dtype=np.int64), a)
    with pytest.raises(cowsim.InvalidArgument, match="length"):
        m.replay(np.array([1], dtype=np.int32), a)
    assert p.stats.accesses == 0
    m.check()


def test_empty_batch():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    r = p.access(np.zeros(0, dtype=np.uint64), outcomes=True)
    assert r.done == 0 and r.outcomes.shape == (0,)
