"""mprotect (M1), munmap / exit / table freeing (M2), madvise, exact counts.

4 KiB pages, 4 levels: root + 3 tables per walk; a fresh process holds 1 frame.
"""
import pytest

from cowsim import InvalidArgument, Outcome, ProcessExited, SegmentationFault
from rulehelpers import (
    ANON, DIRTY, EXCL, KB, PS, SHMEM, TOP,
    anon_private_dirty, data_frames, entries, frame_row, mstat, pstats, regs,
    smaps, table_frames, tr,
)


def _writer(m, npages, fill=b"P"):
    p = m.spawn()
    a = p.mmap(npages * PS)
    p.write(a, fill * (npages * PS))
    return p, a


# ------------------------------------------------------------------------ M1

def test_m1_mprotect_read_only_then_back(machine):
    m = machine()
    p, a = _writer(m, 3, b"m")
    vp = a >> 12
    p.mprotect(a, 3 * PS, "r")
    assert entries(p) == [(vp + i, 5 + i, False, True) for i in range(3)]   # dirty kept
    assert regs(p) == [(a, a + 3 * PS, "r", False, False, False, True)]
    with pytest.raises(SegmentationFault) as ei:
        p.touch(a + PS, write=True)
    assert ei.value.reason == "protection"
    assert p.touch(a) == Outcome.HIT
    p.mprotect(a, 3 * PS, "rw")
    # exclusive frames: writable again, so the next write is a hit, no fault
    assert entries(p) == [(vp + i, 5 + i, True, True) for i in range(3)]
    assert p.touch(a + 2 * PS, write=True) == Outcome.HIT
    assert p.stats == pstats(zf=3, segv=1, tables=4)
    assert p.smaps() == anon_private_dirty(3 * KB)
    if m.store_data:
        assert p.read(a, 3 * PS) == b"m" * (3 * PS)


def test_m1_zero_page_entries_stay_read_only(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    p.touch(a)
    p.mprotect(a, 2 * PS, "r")
    p.mprotect(a, 2 * PS, "rw")
    assert tr(p, a) == (0, False, False)
    assert p.touch(a, write=True) == Outcome.ZERO_FILL
    assert p.stats == pstats(zp=1, zf=1, tables=4)


def test_m1_mprotect_rw_after_fork_leaves_cow_entries_read_only(machine, fork_mode):
    m = machine()
    p, a = _writer(m, 4)
    c = p.fork(fork_mode)
    for x in (p, c):
        x.mprotect(a, 4 * PS, "r")
        x.mprotect(a, 4 * PS, "rw")
    if fork_mode == "cow":
        assert [w for v, f, w, d in entries(p)] == [False] * 4
        assert [w for v, f, w, d in entries(c)] == [False] * 4
        assert c.touch(a, write=True) == Outcome.COW_COPY
        assert p.touch(a, write=True) == Outcome.COW_REUSE
        assert c.stats == pstats(copy=1, copied=1, tables=4)
        assert p.stats == pstats(zf=4, reuse=1, tables=4)
    else:
        assert [w for v, f, w, d in entries(p)] == [True] * 4
        assert [w for v, f, w, d in entries(c)] == [True] * 4
        assert c.touch(a, write=True) == Outcome.HIT
        assert p.touch(a, write=True) == Outcome.HIT
        assert c.stats == pstats(copied=4, tables=4)
        assert p.stats == pstats(zf=4, tables=4)
    assert [d for v, f, w, d in entries(c)] == [True] * 4


def test_m1_refcount_one_but_not_exclusive_stays_read_only(machine):
    # After a cow fork and the child's exit the parent's frames have refcount
    # 1 but are not EXCLUSIVE: mprotect rw leaves them read-only (M1 looks at
    # the exclusive flag), and the next write is a reuse fault (F5).
    m = machine()
    p, a = _writer(m, 2)
    c = p.fork()
    c.exit()
    p.mprotect(a, 2 * PS, "r")
    p.mprotect(a, 2 * PS, "rw")
    assert entries(p) == [((a >> 12) + i, 5 + i, False, True) for i in range(2)]
    assert data_frames(m) == {5: (1, 1, ANON), 6: (1, 1, ANON)}
    assert p.touch(a, write=True) == Outcome.COW_REUSE
    assert p.stats == pstats(zf=2, reuse=1, tables=4)
    assert data_frames(m) == {5: (1, 1, ANON | EXCL), 6: (1, 1, ANON)}
    # now exclusive: a read-only / read-write round trip makes it writable
    p.mprotect(a, 2 * PS, "r")
    p.mprotect(a, 2 * PS, "rw")
    assert [w for v, f, w, d in entries(p)] == [True, False]


def test_m1_prot_none_keeps_pages_mapped(machine):
    m = machine()
    p, a = _writer(m, 2, b"n")
    p.mprotect(a, 2 * PS, "none")
    assert entries(p) == [((a >> 12) + i, 5 + i, False, True) for i in range(2)]
    assert p.smaps() == anon_private_dirty(2 * KB)     # still resident
    for write in (False, True):
        with pytest.raises(SegmentationFault) as ei:
            p.touch(a, write=write)
        assert ei.value.reason == "protection"
    p.mprotect(a, 2 * PS, "rw")
    assert p.touch(a + PS, write=True) == Outcome.HIT
    assert p.stats == pstats(zf=2, segv=2, tables=4)
    if m.store_data:
        assert p.read(a, 2 * PS) == b"n" * (2 * PS)


def test_m1_mprotect_splits_regions(machine):
    m = machine()
    p, a = _writer(m, 8)
    p.mprotect(a + 2 * PS, 3 * PS, "r")
    assert regs(p) == [(a, a + 2 * PS, "rw", False, False, False, True),
                       (a + 2 * PS, a + 5 * PS, "r", False, False, False, True),
                       (a + 5 * PS, a + 8 * PS, "rw", False, False, False, True)]
    assert [w for v, f, w, d in entries(p)] == [True, True, False, False, False, True, True, True]
    assert p.stats == pstats(zf=8, tables=4)              # mprotect is no fault
    assert m.stats.frames_used == 12


def test_m1_mprotect_across_adjacent_regions_does_not_merge(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    b = p.mmap(2 * PS)                       # adjacent, right below a
    p.write(b, b"x" * (4 * PS))
    p.mprotect(b + PS, 2 * PS, "r")          # b's 2nd page and a's 1st page
    assert regs(p) == [(b, b + PS, "rw", False, False, False, True),
                       (b + PS, b + 2 * PS, "r", False, False, False, True),
                       (a, a + PS, "r", False, False, False, True),
                       (a + PS, a + 2 * PS, "rw", False, False, False, True)]
    p.mprotect(b, 4 * PS, "rw")              # covers all four: still four regions
    assert [r[2] for r in regs(p)] == ["rw"] * 4
    assert [w for v, f, w, d in entries(p)] == [True] * 4


def test_m1_mprotect_unmapped_range_is_invalid_and_changes_nothing(machine, snapshot):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    b = p.mmap(2 * PS, addr=a - 3 * PS)                   # a one-page hole between
    p.write(a, b"x" * (2 * PS))
    before = snapshot(m, p)
    with pytest.raises(InvalidArgument):
        p.mprotect(b, 5 * PS, "r")                        # covers the hole
    with pytest.raises(InvalidArgument):
        p.mprotect(a + PS, 2 * PS, "r")                   # runs past the top region's end
    with pytest.raises(InvalidArgument):
        p.mprotect(a - PS, PS, "r")                       # the hole alone
    assert snapshot(m, p) == before                       # no split, no change


def test_m1_shared_region_mprotect_rw_makes_every_entry_writable(machine):
    m = machine()
    p = m.spawn()
    s = p.mmap(2 * PS, shared=True)
    p.write(s, b"s" * (2 * PS))
    c = p.fork()
    c.touch(s)                                          # fault-around maps both pages
    for x in (p, c):
        x.mprotect(s, 2 * PS, "r")
        assert [w for v, f, w, d in entries(x)] == [False, False]
        x.mprotect(s, 2 * PS, "rw")
        assert [w for v, f, w, d in entries(x)] == [True, True]
    assert c.touch(s + PS, write=True) == Outcome.HIT
    assert c.stats == pstats(shared=1, tables=4)


# ------------------------------------------------------------------ M2 munmap

def test_m2_munmap_returns_every_frame(machine):
    N = 8
    m = machine()
    p = m.spawn()
    start = m.stats.frames_used
    assert start == 1
    a = p.mmap(N * PS)
    p.write(a, b"u" * (N * PS))
    p.munmap(a, N * PS)
    assert regs(p) == [] and entries(p) == []
    assert tr(p, a) is None
    # back to the root alone; 1 + 3 + N allocated, 3 + N freed, peak 4 + N
    assert mstat(m, "frames_used", "page_table_frames", "data_frames",
                 "frames_allocated", "frames_freed", "frames_peak") == (start, 1, 0, 4 + N, 3 + N, 4 + N)
    assert p.stats == pstats(zf=N, tables=1)
    assert table_frames(m) == [1]
    assert p.smaps() == smaps()


def test_m2_munmap_middle_splits_and_keeps_tables(machine):
    m = machine()
    p, a = _writer(m, 8)
    p.munmap(a + 3 * PS, 2 * PS)
    assert regs(p) == [(a, a + 3 * PS, "rw", False, False, False, True),
                       (a + 5 * PS, a + 8 * PS, "rw", False, False, False, True)]
    assert [f for v, f, w, d in entries(p)] == [5, 6, 7, 10, 11, 12]
    assert mstat(m, "frames_used", "data_frames", "page_table_frames") == (4 + 6, 6, 4)
    # freed frames are reused LIFO: the last one freed (page 4's frame 9) first
    p.mmap(PS, addr=a + 4 * PS)
    p.touch(a + 4 * PS, write=True)
    assert tr(p, a + 4 * PS) == (9, True, True)


def test_m2_munmap_length_is_rounded_up_to_pages(machine):
    m = machine()
    p, a = _writer(m, 3)
    p.munmap(a, 1)
    assert regs(p)[0][:2] == (a + PS, a + 3 * PS)
    assert m.stats.data_frames == 2


def test_m2_munmap_of_nothing_is_a_no_op(machine, snapshot):
    m = machine()
    p, a = _writer(m, 2)
    before = snapshot(m, p)
    p.munmap(a - 16 * PS, 4 * PS)
    p.munmap(2**30, PS)
    assert snapshot(m, p) == before


def test_m2_munmap_across_regions_and_holes(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)                        # TOP - 2
    b = p.mmap(2 * PS, addr=a - 3 * PS)       # TOP - 5 .. TOP - 3, hole at TOP - 3
    c = p.mmap(PS)                            # top-down: the highest gap that fits is the hole
    assert c == a - PS
    p.write(b, b"x" * (5 * PS))               # b, c, a: 5 pages
    p.munmap(b + PS, 3 * PS)                  # b's 2nd page, c, a's 1st page
    assert regs(p) == [(b, b + PS, "rw", False, False, False, True),
                       (a + PS, a + 2 * PS, "rw", False, False, False, True)]
    assert m.stats.data_frames == 2
    p.munmap(b - 10 * PS, 15 * PS)           # up to the end of user space
    assert regs(p) == [] and mstat(m, "frames_used", "data_frames") == (1, 0)


def test_m2_tables_freed_when_their_span_has_no_region(machine):
    # 4 pages across the 1 GiB boundary at 2 GiB: 2 pages under one level-2
    # table, 2 under the next.  Tables: root, 1 level-3, 2 level-2, 2 PTE = 6.
    m = machine()
    p = m.spawn()
    g = 2**31
    a = p.mmap(4 * PS, addr=g - 2 * PS)
    p.write(a, b"t" * (4 * PS))
    assert p.stats.page_table_frames == 6
    assert mstat(m, "frames_used", "page_table_frames") == (10, 6)
    p.munmap(g, 2 * PS)                       # the upper level-2 and PTE table go
    assert p.stats.page_table_frames == 4
    assert mstat(m, "frames_used", "page_table_frames", "data_frames") == (6, 4, 2)
    p.munmap(a, 2 * PS)                       # everything but the root
    assert p.stats.page_table_frames == 1
    assert mstat(m, "frames_used", "page_table_frames") == (1, 1)


def test_m2_table_kept_while_another_region_overlaps_it(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    b = p.mmap(2 * PS)                        # same PTE table, never touched
    p.write(a, b"x" * (2 * PS))
    p.munmap(a, 2 * PS)
    assert p.stats.page_table_frames == 4     # b still overlaps all 3 tables
    assert mstat(m, "frames_used", "data_frames") == (4, 0)
    p.munmap(b, 2 * PS)
    assert mstat(m, "frames_used", "page_table_frames") == (1, 1)


def test_m2_munmap_in_cow_child_drops_references(machine, fork_mode):
    N = 4
    m = machine()
    p, a = _writer(m, N)
    c = p.fork(fork_mode)
    c.munmap(a, N * PS)
    assert c.stats.page_table_frames == 1
    assert mstat(m, "frames_used", "data_frames") == (4 + N + 1, N)
    if fork_mode == "cow":
        # refcount and mapcount back to 1; EXCLUSIVE is not restored
        assert data_frames(m) == {5 + i: (1, 1, ANON) for i in range(N)}
        assert p.touch(a, write=True) == Outcome.COW_REUSE
    else:
        assert data_frames(m) == {5 + i: (1, 1, ANON | EXCL) for i in range(N)}
        assert p.touch(a, write=True) == Outcome.HIT


def test_m2_munmap_partial_shared_region_keeps_object_pages(machine):
    m = machine()
    p = m.spawn()
    s = p.mmap(4 * PS, shared=True)
    p.write(s, b"s" * (4 * PS))
    p.munmap(s, 2 * PS)
    # the object still holds its 4 pages: 2 unmapped (mapcount 0)
    assert data_frames(m) == {5: (1, 0, SHMEM | DIRTY), 6: (1, 0, SHMEM | DIRTY),
                              7: (2, 1, SHMEM | DIRTY), 8: (2, 1, SHMEM | DIRTY)}
    assert mstat(m, "shared_objects", "data_frames") == (1, 4)
    p.munmap(s + 2 * PS, 2 * PS)               # last region of the object
    assert mstat(m, "shared_objects", "data_frames", "frames_used") == (0, 0, 1)


def test_m2_zap_marks_dirty_shmem_frames(machine):
    m = machine(fault_around=0)
    p = m.spawn()                              # root: frame 1
    s = p.mmap(PS, shared=True)
    c = p.fork()                               # child root: frame 2, nothing copied
    p.touch(s)                                 # read fault: tables 3, 4, 5; clean frame 6
    p.touch(s, write=True)                     # hit: only the entry gets dirty
    assert tr(p, s) == (6, True, True)
    assert data_frames(m) == {6: (2, 1, SHMEM)}
    p.munmap(s, PS)                            # zap moves the dirt to the frame
    assert data_frames(m) == {6: (1, 0, SHMEM | DIRTY)}
    assert c.touch(s) == Outcome.SHARED
    assert tr(c, s) == (6, True, False)
    # mapcount 1, frame DIRTY: private dirty although the entry is clean
    assert c.smaps() == smaps(Rss=KB, Pss=KB, Pss_Dirty=KB, Pss_Shmem=KB, Private_Dirty=KB)


# -------------------------------------------------------------------- exit

def test_exit_returns_every_frame(machine, fork_mode):
    m = machine()
    start = m.stats.frames_used
    p, a = _writer(m, 6)
    s = p.mmap(3 * PS, shared=True)
    p.write(s, b"s" * (3 * PS))
    c = p.fork(fork_mode)
    c.write(a, b"c" * PS)
    c.touch(s + PS)
    p.exit()
    assert not p.alive and c.alive
    assert [x.pid for x in m.processes] == [c.pid]
    c.exit()
    assert mstat(m, "frames_used", "page_table_frames", "data_frames",
                 "shared_objects", "processes") == (start, 0, 0, 0, 0)
    assert start == 0
    assert m.frames().size == 0
    assert mstat(m, "frames_allocated") == (m.stats.frames_freed,)


def test_exit_of_parent_drops_its_references(machine):
    m = machine()
    p, a = _writer(m, 3)
    c = p.fork()
    p.exit()
    assert data_frames(m) == {5 + i: (1, 1, ANON) for i in range(3)}
    assert [c.touch(a + i * PS, write=True) for i in range(3)] == [Outcome.COW_REUSE] * 3
    assert c.stats == pstats(reuse=3, tables=4)


def test_exited_process_raises_process_exited(machine):
    m = machine()
    p, a = _writer(m, 1)
    pid = p.pid
    p.exit()
    assert p.alive is False
    assert m.process(pid).alive is False
    assert m.stats.processes == 0
    calls = [lambda: p.exit(), lambda: p.touch(a), lambda: p.write(a, b"x"),
             lambda: p.mmap(PS), lambda: p.munmap(a, PS), lambda: p.mprotect(a, PS, "r"),
             lambda: p.madvise(a, PS, "dontneed"), lambda: p.fork(), lambda: p.fork("eager")]
    if m.store_data:
        calls.append(lambda: p.read(a, 1))
    for call in calls:
        with pytest.raises(ProcessExited):
            call()
    assert mstat(m, "frames_used", "forks", "segfaults") == (0, 0, 0)


# ----------------------------------------------------------------- madvise

def test_madvise_dontneed_frees_pages_keeps_region_and_tables(machine):
    m = machine()
    p, a = _writer(m, 4, b"z")
    p.madvise(a + PS, 2 * PS, "dontneed")
    assert regs(p) == [(a, a + 4 * PS, "rw", False, False, False, True)]
    assert [v - (a >> 12) for v, *_ in entries(p)] == [0, 3]
    assert mstat(m, "frames_used", "data_frames", "page_table_frames") == (4 + 2, 2, 4)
    assert p.touch(a + PS) == Outcome.ZERO_PAGE
    assert p.touch(a + 2 * PS, write=True) == Outcome.ZERO_FILL
    assert p.stats == pstats(zf=5, zp=1, tables=4)
    if m.store_data:
        assert p.read(a, 4 * PS) == b"z" * PS + bytes(2 * PS) + b"z" * PS
    p.madvise(a, 4 * PS, "dontneed")
    assert mstat(m, "frames_used", "data_frames") == (4, 0)


def test_madvise_dontneed_on_cow_pages(machine):
    m = machine()
    p, a = _writer(m, 2)
    c = p.fork()
    c.madvise(a, 2 * PS, "dontneed")
    assert data_frames(m) == {5: (1, 1, ANON), 6: (1, 1, ANON)}
    assert c.stats.page_table_frames == 4
    assert p.touch(a, write=True) == Outcome.COW_REUSE
    assert c.touch(a) == Outcome.ZERO_PAGE
    assert c.stats == pstats(zp=1, tables=4)


def test_madvise_dontneed_on_shared_region_keeps_object_pages(machine):
    m = machine()
    p = m.spawn()
    s = p.mmap(2 * PS, shared=True)
    p.write(s, b"d" * (2 * PS))
    p.madvise(s, 2 * PS, "dontneed")
    assert entries(p) == []
    assert data_frames(m) == {5: (1, 0, SHMEM | DIRTY), 6: (1, 0, SHMEM | DIRTY)}
    assert p.touch(s + PS) == Outcome.SHARED     # fault-around maps page 0 again
    assert entries(p) == [((s >> 12), 5, True, False), ((s >> 12) + 1, 6, True, False)]
    assert p.stats == pstats(shared=3, tables=4)
    if m.store_data:
        assert p.read(s, 2 * PS) == b"d" * (2 * PS)


def test_madvise_errors_change_nothing(machine, snapshot):
    m = machine()
    p, a = _writer(m, 2)
    before = snapshot(m, p)
    with pytest.raises(InvalidArgument):
        p.madvise(a - PS, 2 * PS, "dontfork")        # partly unmapped
    with pytest.raises(InvalidArgument):
        p.madvise(a + 2 * PS - PS, 2 * PS, "dontneed")  # past the end of user space
    with pytest.raises(ValueError):
        p.madvise(a, PS, "free")                     # not a known advice
    with pytest.raises(InvalidArgument):
        p.madvise(a + 1, PS, "dontneed")             # unaligned
    assert snapshot(m, p) == before


def test_madvise_splits_regions(machine):
    m = machine()
    p, a = _writer(m, 4)
    p.madvise(a + PS, PS, "dontfork")
    p.madvise(a + 2 * PS, PS, "wipeonfork")
    assert regs(p) == [(a, a + PS, "rw", False, False, False, True),
                       (a + PS, a + 2 * PS, "rw", False, True, False, True),
                       (a + 2 * PS, a + 3 * PS, "rw", False, False, True, True),
                       (a + 3 * PS, a + 4 * PS, "rw", False, False, False, True)]
    c = p.fork()
    assert regs(c) == [(a, a + PS, "rw", False, False, False, True),
                       (a + 2 * PS, a + 3 * PS, "rw", False, False, True, False),
                       (a + 3 * PS, a + 4 * PS, "rw", False, False, False, True)]
    assert [v - (a >> 12) for v, *_ in entries(c)] == [0, 3]
    assert data_frames(m) == {5: (2, 2, ANON), 6: (1, 1, ANON | EXCL),
                              7: (1, 1, ANON | EXCL), 8: (2, 2, ANON)}
