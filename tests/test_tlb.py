"""The software TLB: exact hit/miss/flush counts at the kernel's flush points,
and results that never depend on it."""
import numpy as np
import pytest

import cowsim

PS = 4096


def tlb(p):
    s = p.stats
    return (s.accesses, s.tlb_hits, s.tlb_misses, s.tlb_flushes)


def test_hits_misses_and_cow_flush():
    m = cowsim.Machine(memory="1MiB", tlb_entries=64)
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.touch(a)                       # F2 zero page: miss, then filled
    assert tlb(p) == (1, 0, 1, 0)
    p.touch(a)                       # hit
    assert tlb(p) == (2, 1, 1, 0)
    p.touch(a, write=True)           # cached entry is read-only: miss, F4, ptep_clear_flush
    assert tlb(p) == (3, 1, 2, 1)
    p.touch(a, write=True)           # refilled, writable: hit
    assert tlb(p) == (4, 2, 2, 1)
    c = p.fork()                     # dup_mmap: flush_tlb_mm(parent)
    assert tlb(p) == (4, 2, 2, 2)
    assert tlb(c) == (0, 0, 0, 0)
    p.touch(a)                       # flushed: miss (no fault: entry present)
    assert tlb(p) == (5, 2, 3, 2)
    assert p.stats.minflt == 2
    p.touch(a, write=True)           # read-only after fork: miss, CoW copy, flush
    assert tlb(p) == (6, 2, 4, 3)
    assert p.stats.faults_cow_copy == 1
    c.touch(a, write=True)           # child: sole reference now: reuse (no flush)
    assert tlb(c) == (1, 0, 1, 0)
    assert c.stats.faults_cow_reuse == 1
    m.check()


def test_range_flushes_and_no_flush_for_nothing():
    m = cowsim.Machine(memory="1MiB", tlb_entries=64)
    p = m.spawn()
    a = p.mmap(8 * PS)
    p.write(a, b"x" * 8 * PS)
    assert p.stats.tlb_flushes == 0
    p.mprotect(a, 2 * PS, "r")
    assert p.stats.tlb_flushes == 1
    p.mprotect(a, 2 * PS, "r")       # unchanged: no split, no flush
    assert p.stats.tlb_flushes == 1
    p.madvise(a + 4 * PS, PS, "dontneed")
    assert p.stats.tlb_flushes == 2
    p.madvise(a, PS, "dontfork")     # flags only: no flush
    assert p.stats.tlb_flushes == 2
    p.munmap(a + 6 * PS, 2 * PS)
    assert p.stats.tlb_flushes == 3
    p.munmap(a + 6 * PS, 2 * PS)     # nothing there: no flush
    assert p.stats.tlb_flushes == 3
    p.touch(a + 4 * PS)              # zapped by dontneed: zero page again
    assert p.stats.faults_zero_page == 1
    m.check()


def test_conflict_eviction_direct_mapped():
    m = cowsim.Machine(memory="1MiB", tlb_entries=1)
    p = m.spawn()
    a = p.mmap(2 * PS)
    p.touch(a)
    p.touch(a + PS)                  # same slot: evicts a
    p.touch(a)
    assert tlb(p) == (3, 0, 3, 0)
    p.touch(a)
    assert tlb(p) == (4, 1, 3, 0)


def test_tlb_off_counts_nothing_but_accesses():
    m = cowsim.Machine(memory="1MiB", tlb_entries=0)
    p = m.spawn()
    a = p.mmap(2 * PS)
    for _ in range(3):
        p.touch(a, write=True)
    p.fork()
    assert tlb(p) == (3, 0, 0, 0)


@pytest.mark.parametrize("bad", [3, -1, 6, 1 << 21])
def test_tlb_entries_must_be_power_of_two(bad):
    with pytest.raises(cowsim.InvalidArgument, match="tlb_entries"):
        cowsim.Machine(memory="1MiB", tlb_entries=bad)


def _workload(tlb_entries, store_data):
    """A random mix of accesses, forks, mprotect and munmap; returns everything observable."""
    m = cowsim.Machine(memory="2MiB", tlb_entries=tlb_entries, store_data=store_data)
    rng = np.random.default_rng(7)
    procs = [m.spawn()]
    a = procs[0].mmap(32 * PS)
    out = []
    for step in range(400):
        p = procs[rng.integers(len(procs))]
        r = rng.random()
        try:
            if r < 0.7:
                out.append(int(p.touch(a + int(rng.integers(32)) * PS, write=bool(rng.random() < 0.5))))
            elif r < 0.78 and len(procs) < 5:
                procs.append(p.fork())
            elif r < 0.84:
                p.mprotect(a + int(rng.integers(8)) * PS, PS, ["r", "rw"][int(rng.integers(2))])
            elif r < 0.88 and len(procs) > 1:
                p.exit()
                procs.remove(p)
            elif r < 0.92:
                p.madvise(a + int(rng.integers(32)) * PS, PS, "dontneed")
        except cowsim.CowsimError as e:
            out.append(type(e).__name__)
        m.check()
    state = [(p.pid, p.page_table().tolist(), p.smaps(),
              {k: v for k, v in p.stats.as_dict().items() if not k.startswith("tlb_")}) for p in procs]
    return out, state, m.stats, m.frames().tolist()


@pytest.mark.parametrize("store_data", [True, False])
def test_results_do_not_depend_on_the_tlb(store_data):
    base = _workload(0, store_data)
    for entries in (1, 4, 64, 1024):
        assert _workload(entries, store_data) == base
