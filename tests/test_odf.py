"""On-demand fork (mode="odf"): shared last-level tables, exact counts.

4 KiB pages, 4 levels.  Regions are placed at 1 GiB-aligned addresses, so a
process's tree is root + one level-2 table + one level-1 table + one level-0
table per 2 MiB span (PTE_SPAN) touched.  An odf child allocates its own root,
level-2 and level-1 tables and shares the level-0 ones.
"""
import numpy as np
import pytest

import cowsim
from cowsim import OutOfMemory, Outcome
from rulehelpers import ANON, EXCL, KB, PS, PTE_SPAN, data_frames, entries, mstat, pstats, tr

A = 1 << 30                      # 1 GiB aligned: one level-2 and one level-1 table
UPPER = 3                        # root + level-2 + level-1 tables


def _odf_stats(copies=0, reuses=0, shared=0):
    return {"table_copies": copies, "table_reuses": reuses, "page_tables_shared": shared}


def _odf(p):
    s = p.stats
    return {"table_copies": s.table_copies, "table_reuses": s.table_reuses,
            "page_tables_shared": s.page_tables_shared}


def _writer(m, npages, addr=A):
    p = m.spawn()
    a = p.mmap(npages * PS, addr=addr)
    p.access(np.arange(a, a + npages * PS, PS, dtype=np.uint64), write=True)
    return p, a


# ------------------------------------------------------------ fork itself

def test_odf_fork_of_1gib_copies_no_last_level_table():
    n = (1 << 30) // PS                                   # 262,144 pages: 512 tables
    m = cowsim.Machine(memory="1040MiB", store_data=False)
    p, a = _writer(m, n)
    assert mstat(m, "frames_used", "page_table_frames") == (n + UPPER + 512, UPPER + 512)
    c = p.fork("odf")
    # only the child's root, level-2 and level-1 tables are new; no page is touched
    assert mstat(m, "frames_used", "page_table_frames", "data_frames", "pages_copied",
                 "page_tables_shared") == (n + 2 * UPPER + 512, 2 * UPPER + 512, n, 0, 512)
    assert c.stats.page_table_frames == p.stats.page_table_frames == UPPER + 512
    assert _odf(c) == _odf(p) == _odf_stats(shared=512)
    assert c.stats.minflt == 0
    # data pages are mapped once, by the shared tables: refcount 1, mapcount 1
    rows = m.frames()
    data = rows[(rows["flags"] & 8) == 0]
    assert len(data) == n and set(data["refcount"]) == {1} and set(data["mapcount"]) == {1}
    # ... yet each process maps every page: Rss whole, Pss halved
    assert c.smaps()["Rss"] == p.smaps()["Rss"] == n * KB
    assert c.smaps()["Pss"] == p.smaps()["Pss"] == n * KB // 2
    # the level-1 entries write-protect everything below them
    assert tr(c, a) == tr(p, a) == (p.translate(a).frame, False, True)
    m.check()

    # a cow fork of the same parent copies all 512 tables, and shares no table
    before = m.stats.frames_used
    c2 = p.fork("cow")
    assert m.stats.frames_used == before + UPPER + 512 and _odf(c2) == _odf_stats()
    m.check()


def test_first_write_in_a_span_copies_one_table_then_cow_proceeds():
    n = 4 * 512                                          # 8 MiB: 4 spans
    m = cowsim.Machine(memory="16MiB", store_data=False)
    p, a = _writer(m, n)
    c = p.fork("odf")
    used = m.stats.frames_used
    assert c.touch(a + 5 * PS) == Outcome.HIT            # reads never copy tables
    assert c.touch(a + 5 * PS, write=True) == Outcome.COW_COPY
    assert _odf(c) == _odf_stats(copies=1, shared=3) and _odf(p) == _odf_stats(shared=3)
    assert mstat(m, "frames_used", "pages_copied", "table_copies", "page_tables_shared") == (
        used + 2, 1, 1, 3)                               # one table, one page
    assert c.touch(a + 6 * PS, write=True) == Outcome.COW_COPY      # same span: no table
    assert c.touch(a + PTE_SPAN, write=True) == Outcome.COW_COPY    # next span: one more
    assert _odf(c) == _odf_stats(copies=2, shared=2)
    assert c.stats == pstats(copy=3, copied=3, tables=UPPER + 4)
    # the parent is now the sole holder of the first span's old table: it takes it
    # over; page 5 went to the child, so the parent reuses it, page 7 is shared
    assert p.touch(a + 5 * PS, write=True) == Outcome.COW_REUSE
    assert _odf(p) == _odf_stats(reuses=1, shared=2)
    assert p.touch(a + 7 * PS, write=True) == Outcome.COW_COPY
    assert p.stats == pstats(zf=n, reuse=1, copy=1, copied=1, tables=UPPER + 4)
    m.check()
    c.exit()
    assert mstat(m, "frames_used", "page_tables_shared") == (n + UPPER + 4, 0)
    assert _odf(p) == _odf_stats(reuses=1)
    m.check()


def test_write_that_only_takes_the_table_over_is_a_reuse_fault(machine):
    m = machine(memory="1MiB")
    p, a = _writer(m, 2)
    c = p.fork("odf")
    c.exit()                                             # the table has one holder again
    assert _odf(p) == _odf_stats() and tr(p, a)[1] is False
    # the entry itself is still writable: the only work is the table's
    assert p.touch(a, write=True) == Outcome.COW_REUSE
    assert _odf(p) == _odf_stats(reuses=1) and tr(p, a)[1] is True
    assert p.touch(a + PS, write=True) == Outcome.HIT
    assert p.stats == pstats(zf=2, reuse=1, tables=UPPER + 1)
    assert data_frames(m) == {5: (1, 1, ANON | EXCL), 6: (1, 1, ANON | EXCL)}


def test_read_faults_fill_the_shared_table_for_every_holder(machine):
    m = machine(memory="1MiB")
    p, a = _writer(m, 1)
    p.mmap(3 * PS, addr=a + PS)                          # untouched, same span
    p.touch(a + PS + PS)                                 # not written: no anon_vma ...
    p.touch(a + 3 * PS, write=True)                      # ... now it has one
    c = p.fork("odf")
    assert _odf(c) == _odf_stats(shared=1)
    assert c.touch(a + 2 * PS) == Outcome.HIT            # the parent's zero-page entry
    assert c.touch(a + 3 * PS + 0) == Outcome.HIT
    assert c.touch(a + PS) == Outcome.ZERO_PAGE          # fills the shared table ...
    assert p.touch(a + PS) == Outcome.HIT                # ... so the parent hits
    assert _odf(c) == _odf_stats(shared=1) and m.stats.table_copies == 0
    assert c.touch(a + PS, write=True) == Outcome.ZERO_FILL   # copy the table, F4
    assert _odf(c) == _odf_stats(copies=1) and _odf(p) == _odf_stats()
    assert entries(p)[1] == ((a >> 12) + 1, 0, False, False)  # the parent keeps the zero page
    m.check()


def test_three_holders_share_one_table_and_split_pss(machine):
    results = {}
    for mode in ("cow", "odf"):
        m = machine(memory="1MiB")
        p, a = _writer(m, 12)
        c1 = p.fork(mode)
        c2 = c1.fork(mode)
        results[mode] = [x.smaps() for x in (p, c1, c2)]
        if mode == "odf":
            assert m.stats.page_tables_shared == 1
            assert [_odf(x) for x in (p, c1, c2)] == [_odf_stats(shared=1)] * 3
            assert set(data_frames(m).values()) == {(1, 1, ANON | EXCL)}
            assert m.stats.frames_used == 12 + 3 * UPPER + 1
    # Pss and the rest of smaps are those of the same cow forks: 12 pages, 3 ways
    assert results["odf"] == results["cow"]
    assert results["odf"][0]["Pss"] == 15   # 16 kB less the per-page rounding (A1)


def test_span_with_a_region_fork_does_not_copy_is_copied_entry_by_entry(machine):
    m = machine(memory="1MiB")
    p, a = _writer(m, 2)
    b = p.mmap(2 * PS, addr=a + 4 * PS)
    p.touch(b, write=True)
    p.madvise(b, 2 * PS, "dontfork")                    # the child must not see b
    before = m.stats.frames_used
    c = p.fork("odf")
    assert _odf(c) == _odf_stats() and m.stats.frames_used == before + UPPER + 1
    assert [e[0] for e in entries(c)] == [a >> 12, (a >> 12) + 1]
    assert set(data_frames(m).values()) == {(2, 2, ANON), (1, 1, ANON | EXCL)}
    m.check()


# ------------------------------------------------------------ changes unshare

def test_munmap_of_the_whole_span_drops_the_reference(machine):
    m = machine(memory="1MiB")
    p, a = _writer(m, 4)
    c = p.fork("odf")
    used = m.stats.frames_used
    c.munmap(a, 4 * PS)
    # no copy: the child lets go of the table, then frees its now empty levels 2 and 1
    assert _odf(c) == _odf_stats() and c.stats.page_table_frames == 1
    assert m.stats.frames_used == used - 2 and m.stats.table_copies == 0
    assert p.touch(a, write=True) == Outcome.COW_REUSE  # sole holder again
    assert _odf(p) == _odf_stats(reuses=1)
    m.check()


def test_partial_munmap_mprotect_and_dontneed_copy_the_table(machine):
    for op in ("munmap", "mprotect", "dontneed", "mmap"):
        m = machine(memory="1MiB")
        p, a = _writer(m, 4)
        c = p.fork("odf")
        used = m.stats.frames_used
        if op == "munmap":
            c.munmap(a, PS)
        elif op == "mprotect":
            c.mprotect(a, PS, "r")
        elif op == "dontneed":
            c.madvise(a, PS, "dontneed")
        else:
            c.mmap(PS, addr=a + 8 * PS)                  # a new region in the span
        assert _odf(c) == _odf_stats(copies=1), op
        assert _odf(p) == _odf_stats(), op
        # the copy shares the 4 pages (refcount 2), the zap drops one again
        zapped = op in ("munmap", "dontneed")
        assert m.stats.frames_used == used + 1, op
        assert sorted(data_frames(m).values()) == [(1, 1, ANON)] * zapped + [(2, 2, ANON)] * (4 - zapped), op
        m.check()


def test_mprotect_of_an_unchanged_region_keeps_sharing(machine):
    m = machine(memory="1MiB")
    p, a = _writer(m, 4)
    c = p.fork("odf")
    c.mprotect(a, 4 * PS, "rw")                          # no protection changes
    assert _odf(c) == _odf_stats(shared=1)


def test_parent_exit_leaves_the_child_sole_holder(machine):
    m = machine(memory="1MiB")
    p, a = _writer(m, 3)
    c = p.fork("odf")
    p.exit()
    assert _odf(c) == _odf_stats() and m.stats.frames_used == 3 + UPPER + 1
    assert c.touch(a, write=True) == Outcome.COW_REUSE
    assert c.touch(a + PS, write=True) == Outcome.HIT
    assert _odf(c) == _odf_stats(reuses=1)
    c.exec()
    assert m.stats.frames_used == 1
    m.check()


def test_child_bytes_stay_separate(data_machine):
    m = data_machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(3 * PS, addr=A)
    p.write(a, b"parent" * 1000)
    c = p.fork("odf")
    assert c.read(a, 6) == b"parent"
    c.write(a + 1, b"C")
    p.write(a + 2 * PS, b"P")
    assert c.read(a, 3) == b"pCr" and p.read(a, 3) == b"par"
    assert c.read(a + 2 * PS, 1) == b"\0" and p.read(a + 2 * PS, 1) == b"P"
    assert _odf(c) == _odf_stats(copies=1) and _odf(p) == _odf_stats(reuses=1)


def test_a_write_without_the_frames_for_table_and_page_changes_nothing(machine, snapshot):
    m = machine(memory=13 * PS)                          # 12 frames
    p, a = _writer(m, 4)                                 # 4 pages + 4 tables
    c = p.fork("odf")                                    # + 3 tables: one frame free
    assert m.stats.frames_free == 1
    before = snapshot(m, p, c)
    with pytest.raises(OutOfMemory):
        c.touch(a, write=True)                           # the table's copy and a page
    assert snapshot(m, p, c) == before
    c.munmap(a, PS)                                      # a copy: exactly fits
    assert _odf(c) == _odf_stats(copies=1) and m.stats.frames_free == 0
    before = snapshot(m, p, c)
    with pytest.raises(OutOfMemory):
        p.touch(a + PS, write=True)                      # sole holder, but the page is shared
    assert snapshot(m, p, c) == before and _odf(p) == _odf_stats()
    c.exit()
    assert p.touch(a + PS, write=True) == Outcome.COW_REUSE


@pytest.mark.parametrize("tlb", [0, 1, 64])
def test_tlb_never_lets_a_write_past_a_write_protected_table(tlb):
    m = cowsim.Machine(memory="1MiB", store_data=False, tlb_entries=tlb)
    p, a = _writer(m, 2)
    p.touch(a, write=True)                               # in the parent's TLB, writable
    c = p.fork("odf")
    c.touch(a)                                           # in the child's TLB, read-only
    assert p.touch(a, write=True) == Outcome.COW_COPY   # parent's TLB flushed at fork
    assert c.touch(a, write=True) == Outcome.COW_REUSE
    res = c.access(np.array([a + PS] * 3, dtype=np.uint64), write=True)
    assert (res.cow_copy, res.hits) == (1, 2)
    assert _odf(p) == _odf_stats(copies=1) and _odf(c) == _odf_stats(reuses=1)
    m.check()
