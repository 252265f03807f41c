"""Fault rules F1-F6 and A2 with exact counts (docs/SEMANTICS.md "Accesses").

Geometry used throughout (4 KiB pages, 48-bit VA): 4 levels, so a fresh
process owns 1 table (the root, allocated at spawn) and the first access below
it allocates 3 more (the tables on the way down): 4 table frames.  The first
mmap without addr is placed at the top of user space, TOP - len, so regions of
up to 512 pages lie in one last-level table.
"""
import pytest

import cowsim
from cowsim import OutOfMemory, Outcome, SegmentationFault
from rulehelpers import (
    ANON, DIRTY, EXCL, KB, PAGETABLE, PS, SHMEM, TOP,
    anon_private_dirty, data_frames, entries, frame_row, mstat, pstats, regs,
    smaps, table_frames, tr, without_segfaults,
)


# ---------------------------------------------------------------- F1 segfaults

def test_f1_unmapped_access_changes_only_segfault_counters(machine, snapshot):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    assert a == TOP - 4 * PS
    p.write(a, b"x" * (2 * PS))          # 2 zero fills, 3 tables
    c = p.fork()
    hole = a - PS                          # just below the only region
    before = without_segfaults(snapshot(m, p, c))

    with pytest.raises(SegmentationFault) as ei:
        p.touch(hole)
    assert (ei.value.address, ei.value.access, ei.value.reason) == (hole, "read", "unmapped")
    with pytest.raises(SegmentationFault) as ei:
        p.touch(hole + 5, write=True)
    assert (ei.value.address, ei.value.access, ei.value.reason) == (hole + 5, "write", "unmapped")
    with pytest.raises(SegmentationFault) as ei:
        c.touch(65536, write=True)         # user_start, nothing mapped there
    assert (ei.value.address, ei.value.access, ei.value.reason) == (65536, "write", "unmapped")

    assert without_segfaults(snapshot(m, p, c)) == before
    assert p.stats == pstats(zf=2, segv=2, tables=4)
    assert c.stats == pstats(segv=1, tables=4)
    assert m.stats.segfaults == 3
    assert m.stats.minflt == 2


def test_f1_protection(machine, snapshot):
    m = machine()
    p = m.spawn()
    r = p.mmap(2 * PS, prot="r")       # TOP - 2 pages
    n = p.mmap(2 * PS, prot="none")    # TOP - 4 pages
    assert (r, n) == (TOP - 2 * PS, TOP - 4 * PS)
    assert p.touch(r) == Outcome.ZERO_PAGE   # reading r is allowed (F2)
    before = without_segfaults(snapshot(m, p))

    cases = [(r, True, "write"), (r + PS + 7, True, "write"),
             (n, False, "read"), (n + PS, True, "write")]
    for addr, write, access in cases:
        with pytest.raises(SegmentationFault) as ei:
            p.touch(addr, write=write)
        assert (ei.value.address, ei.value.access, ei.value.reason) == (addr, access, "protection")

    assert without_segfaults(snapshot(m, p)) == before
    assert p.stats == pstats(zp=1, segv=4, tables=4)
    assert m.stats.segfaults == 4
    assert tr(p, r) == (0, False, False)      # still the zero page, read-only


def test_f1_multi_page_write_checks_every_page_first(machine, snapshot):
    m = machine()
    p = m.spawn()
    r = p.mmap(2 * PS, prot="r")             # TOP - 2 pages (read-only)
    w = p.mmap(2 * PS)                        # TOP - 4 pages (rw), right below r
    assert (r, w) == (TOP - 2 * PS, TOP - 4 * PS)
    lone = p.mmap(PS, addr=w - 2 * PS)       # rw, with a one-page hole above it
    before = without_segfaults(snapshot(m, p))

    # rw, rw, then the read-only page: nothing may be faulted in
    with pytest.raises(SegmentationFault) as ei:
        p.write(w, b"y" * (3 * PS))
    assert (ei.value.access, ei.value.reason) == ("write", "protection")
    assert ei.value.address // PS == r // PS
    # rw page, then the hole
    with pytest.raises(SegmentationFault) as ei:
        p.write(lone + PS - 1, b"zz")
    assert (ei.value.access, ei.value.reason) == ("write", "unmapped")
    assert ei.value.address // PS == (w - PS) // PS

    assert without_segfaults(snapshot(m, p)) == before
    assert entries(p) == []
    assert p.stats == pstats(segv=2, tables=1)
    assert mstat(m, "frames_used", "minflt", "segfaults") == (1, 0, 2)


def test_f1_multi_page_read_segfault_changes_nothing(data_machine, snapshot):
    m = data_machine()
    p = m.spawn()
    n = p.mmap(PS, prot="none")          # TOP - 1 page
    w = p.mmap(2 * PS)                   # TOP - 3 pages
    before = without_segfaults(snapshot(m, p))
    with pytest.raises(SegmentationFault) as ei:
        p.read(w, 3 * PS)
    assert (ei.value.access, ei.value.reason) == ("read", "protection")
    assert ei.value.address // PS == n // PS
    assert without_segfaults(snapshot(m, p)) == before
    assert p.stats == pstats(segv=1)


# ------------------------------------------------------------- F2, F3, F4

def test_f2_read_maps_the_zero_page(machine):
    m = machine()
    p = m.spawn()
    assert mstat(m, "frames_used", "page_table_frames") == (1, 1)   # root at spawn
    a = p.mmap(8 * PS)
    assert m.stats.frames_used == 1                                  # mmap touches nothing
    assert p.touch(a + 3 * PS + 100) == Outcome.ZERO_PAGE
    assert tr(p, a + 3 * PS) == (0, False, False)
    assert p.stats == pstats(zp=1, tables=4)
    # 1 root + 3 tables, no data frame: the zero page is not allocated
    assert mstat(m, "frames_used", "page_table_frames", "data_frames", "minflt") == (4, 4, 0, 1)
    assert data_frames(m) == {}
    assert p.smaps() == smaps()                   # zero page: not in Rss
    assert regs(p)[0][-1] is False                # a read gives no anon_vma
    assert p.touch(a + 3 * PS) == Outcome.HIT     # second read: hit, no fault
    assert p.stats == pstats(zp=1, tables=4)
    if m.store_data:
        assert p.read(a, 8 * PS) == bytes(8 * PS)
        # the read faulted in the 7 other pages: 8 zero-page faults in all
        assert p.stats == pstats(zp=8, tables=4)
        assert m.stats.data_frames == 0


def test_f3_write_allocates_an_exclusive_anonymous_frame(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(8 * PS)
    assert p.touch(a + 5, write=True) == Outcome.ZERO_FILL
    # Fresh machine: frames handed out 1, 2, 3, ...: root 1 at spawn, the
    # tables 2, 3, 4 on the way down, then the data frame 5.
    assert table_frames(m) == [1, 2, 3, 4]
    assert tr(p, a) == (5, True, True)
    assert frame_row(m, 5) == (1, 1, ANON | EXCL)
    assert data_frames(m) == {5: (1, 1, ANON | EXCL)}
    assert p.stats == pstats(zf=1, tables=4)
    assert mstat(m, "frames_used", "page_table_frames", "data_frames", "minflt") == (5, 4, 1, 1)
    assert regs(p) == [(a, a + 8 * PS, "rw", False, False, False, True)]   # anon_vma now
    assert p.smaps() == anon_private_dirty(KB)
    assert p.touch(a + 9, write=True) == Outcome.HIT
    assert p.touch(a) == Outcome.HIT
    assert p.stats == pstats(zf=1, tables=4)
    if m.store_data:
        assert p.read(a, PS) == bytes(PS)     # a zeroed frame


def test_f4_write_to_zero_page_entry_zero_fills(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    assert p.touch(a) == Outcome.ZERO_PAGE
    assert p.touch(a, write=True) == Outcome.ZERO_FILL
    assert tr(p, a) == (5, True, True)          # frames 1-4 are tables
    assert data_frames(m) == {5: (1, 1, ANON | EXCL)}
    assert p.stats == pstats(zp=1, zf=1, tables=4)
    assert mstat(m, "frames_used", "data_frames", "minflt", "pages_copied") == (5, 1, 2, 0)
    assert regs(p)[0][-1] is True
    if m.store_data:
        p.write(a + 10, b"abc")
        assert p.read(a, 16) == bytes(10) + b"abc" + bytes(3)


def test_write_spanning_pages_faults_each_page(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.write(a + PS - 2, b"WXYZ")      # last 2 bytes of page 0, first 2 of page 1
    assert p.stats == pstats(zf=2, tables=4)
    assert [tr(p, a + i * PS) for i in range(4)] == [(5, True, True), (6, True, True), None, None]
    if m.store_data:
        assert p.read(a + PS - 3, 6) == b"\0WXYZ\0"
        # read of pages 0..3: pages 2 and 3 are zero-page faults
        assert p.read(a, 4 * PS).count(0) == 4 * PS - 4
        assert p.stats == pstats(zp=2, zf=2, tables=4)


# ------------------------------------------------------------------------ F5

def test_f5_copy_then_reuse(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(PS)
    p.write(a, b"A" * PS)                     # frame 5 (tables 1-4)
    c = p.fork()                              # child root 6, tables 7, 8, 9
    assert table_frames(m) == [1, 2, 3, 4, 6, 7, 8, 9]
    assert tr(p, a) == (5, False, True) and tr(c, a) == (5, False, True)
    assert frame_row(m, 5) == (2, 2, ANON)    # EXCLUSIVE cleared by fork

    assert c.touch(a + 1, write=True) == Outcome.COW_COPY
    assert tr(c, a) == (10, True, True)       # the next never-used frame
    assert data_frames(m) == {5: (1, 1, ANON), 10: (1, 1, ANON | EXCL)}
    assert tr(p, a) == (5, False, True)       # parent untouched
    assert c.stats == pstats(copy=1, copied=1, tables=4)

    assert p.touch(a, write=True) == Outcome.COW_REUSE   # refcount 1: reuse
    assert tr(p, a) == (5, True, True)
    assert data_frames(m) == {5: (1, 1, ANON | EXCL), 10: (1, 1, ANON | EXCL)}
    assert p.stats == pstats(zf=1, reuse=1, tables=4)
    assert mstat(m, "pages_copied", "minflt", "data_frames", "frames_used") == (1, 3, 2, 10)
    if m.store_data:
        c.write(a, b"B")
        assert c.read(a, PS) == b"B" + b"A" * (PS - 1)
        assert p.read(a, PS) == b"A" * PS


def test_f5_copy_preserves_bytes(data_machine):
    m = data_machine()
    p = m.spawn()
    a = p.mmap(3 * PS)
    pattern = bytes(range(256)) * (3 * PS // 256)
    p.write(a, pattern)
    c = p.fork()
    c.write(a + PS + 17, b"!")                # copies page 1 only
    assert c.stats == pstats(copy=1, copied=1, tables=4)
    expect = bytearray(pattern)
    expect[PS + 17] = ord("!")
    assert c.read(a, 3 * PS) == bytes(expect)
    assert p.read(a, 3 * PS) == pattern
    assert c.stats == pstats(copy=1, copied=1, tables=4)  # reads of CoW pages are hits


def test_f5_reuse_after_the_other_side_exits(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.write(a, b"q" * (4 * PS))               # frames 5..8
    c = p.fork(fork_mode)
    c.exit()
    assert mstat(m, "frames_used", "data_frames", "processes") == (8, 4, 1)
    if fork_mode == "cow":
        # refcount back to 1, EXCLUSIVE still clear, entries still read-only
        assert data_frames(m) == {f: (1, 1, ANON) for f in (5, 6, 7, 8)}
        assert [tr(p, a + i * PS) for i in range(4)] == [(5 + i, False, True) for i in range(4)]
        outcomes = [p.touch(a + i * PS, write=True) for i in range(4)]
        assert outcomes == [Outcome.COW_REUSE] * 4
        assert p.stats == pstats(zf=4, reuse=4, tables=4)
    else:
        outcomes = [p.touch(a + i * PS, write=True) for i in range(4)]
        assert outcomes == [Outcome.HIT] * 4
        assert p.stats == pstats(zf=4, tables=4)
    assert data_frames(m) == {f: (1, 1, ANON | EXCL) for f in (5, 6, 7, 8)}
    assert [tr(p, a + i * PS) for i in range(4)] == [(5 + i, True, True) for i in range(4)]
    assert mstat(m, "frames_used", "pages_copied") == (8, 4 if fork_mode == "eager" else 0)


def test_f5_reads_of_cow_pages_are_hits(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.write(a, b"r" * (4 * PS))
    c = p.fork()
    assert [c.touch(a + i * PS) for i in range(4)] == [Outcome.HIT] * 4
    assert [p.touch(a + i * PS) for i in range(4)] == [Outcome.HIT] * 4
    assert c.stats == pstats(tables=4)
    assert p.stats == pstats(zf=4, tables=4)


# ------------------------------------------------------------------------ F6

def test_f6_shared_write_fault(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS, shared=True)
    assert m.stats.shared_objects == 1
    assert p.touch(a + PS, write=True) == Outcome.SHARED
    # the object holds 1 reference, the mapping 1: refcount 2, mapcount 1
    assert data_frames(m) == {5: (2, 1, SHMEM | DIRTY)}
    assert tr(p, a + PS) == (5, True, True)
    assert p.stats == pstats(shared=1, tables=4)
    assert regs(p) == [(a, a + 4 * PS, "rw", True, False, False, False)]
    assert p.smaps() == smaps(Rss=KB, Pss=KB, Pss_Dirty=KB, Pss_Shmem=KB, Private_Dirty=KB)
    assert p.touch(a + PS, write=True) == Outcome.HIT
    assert p.stats == pstats(shared=1, tables=4)


def test_f6_shared_read_fault_then_write_hit(machine):
    m = machine(fault_around=0)
    p = m.spawn()
    a = p.mmap(2 * PS, shared=True)
    assert p.touch(a) == Outcome.SHARED                 # allocates the object page
    assert data_frames(m) == {5: (2, 1, SHMEM)}          # clean
    assert tr(p, a) == (5, True, False)                  # writable: the region is rw
    assert p.smaps() == smaps(Rss=KB, Pss=KB, Pss_Shmem=KB, Private_Clean=KB)
    assert p.touch(a, write=True) == Outcome.HIT         # sets the entry's dirty bit only
    assert tr(p, a) == (5, True, True)
    assert data_frames(m) == {5: (2, 1, SHMEM)}
    assert p.smaps() == smaps(Rss=KB, Pss=KB, Pss_Dirty=KB, Pss_Shmem=KB, Private_Dirty=KB)
    assert p.stats == pstats(shared=1, tables=4)
    if m.store_data:
        assert p.read(a, PS) == bytes(PS)


def test_f6_read_only_shared_region(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(PS, prot="r", shared=True)
    assert p.touch(a) == Outcome.SHARED
    assert tr(p, a) == (5, False, False)
    with pytest.raises(SegmentationFault) as ei:
        p.touch(a, write=True)
    assert ei.value.reason == "protection"
    assert p.stats == pstats(shared=1, segv=1, tables=4)


def test_f6_writes_visible_across_fork(data_machine, fork_mode):
    m = data_machine()
    p = m.spawn()
    a = p.mmap(PS, shared=True)
    p.write(a, b"P" * 8)
    c = p.fork(fork_mode)
    assert entries(c) == []                               # K1: nothing copied
    assert c.read(a, 8) == b"P" * 8                       # 1 shared fault
    c.write(a, b"CC")                                     # hit
    assert p.read(a, 8) == b"CCPPPPPP"
    assert c.stats == pstats(shared=1, tables=4)
    assert p.stats == pstats(shared=1, tables=4)
    # object 1 + two mappings
    assert data_frames(m) == {5: (3, 2, SHMEM | DIRTY)}
    assert mstat(m, "pages_copied", "data_frames", "shared_objects") == (0, 1, 1)


def test_f6_shared_pages_never_copy_on_write(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS, shared=True)
    p.write(a, b"s" * (4 * PS))                            # 4 shared faults: frames 5..8
    c = p.fork(fork_mode)
    assert c.stats == pstats(tables=1)                     # no table copied for shared
    for i in range(4):                                     # write faults: no fault-around
        assert c.touch(a + i * PS, write=True) == Outcome.SHARED
    assert c.stats == pstats(shared=4, tables=4)
    assert [tr(c, a + i * PS) for i in range(4)] == [(5 + i, True, True) for i in range(4)]
    assert [tr(p, a + i * PS) for i in range(4)] == [(5 + i, True, True) for i in range(4)]
    assert data_frames(m) == {f: (3, 2, SHMEM | DIRTY) for f in (5, 6, 7, 8)}
    assert mstat(m, "pages_copied", "data_frames") == (0, 4)


def test_f6_fresh_shared_reads_fault_every_page(machine):
    # fault-around only maps pages that already exist in the object
    m = machine()
    p = m.spawn()
    a = p.mmap(16 * PS, shared=True)
    assert [p.touch(a + i * PS) for i in range(16)] == [Outcome.SHARED] * 16
    assert p.stats == pstats(shared=16, tables=4)
    assert data_frames(m) == {5 + i: (2, 1, SHMEM) for i in range(16)}


# ---------------------------------------------------------- F6 fault-around

def _shared_written_then_forked(m, npages, written=None, fork_mode="cow"):
    p = m.spawn()
    a = p.mmap(npages * PS, shared=True)
    for i in (range(npages) if written is None else written):
        p.touch(a + i * PS, write=True)
    return p, a, p.fork(fork_mode)


def test_fault_around_default_window_aligned_region(machine, fork_mode):
    # 64 pages at the top: table indexes 448..511, n = 65536 // 4096 = 16.
    # Read of page j=0 (i=448): from = max(448, 448 - 0) = 448, to = 464 -> 16
    # entries; the next fault is at j=16, 32, 48: 4 faults for 64 pages.
    m = machine()
    p, a, c = _shared_written_then_forked(m, 64, fork_mode=fork_mode)
    outcomes = [c.touch(a + j * PS) for j in range(64)]
    assert [j for j, o in enumerate(outcomes) if o == Outcome.SHARED] == [0, 16, 32, 48]
    assert all(o == Outcome.HIT for j, o in enumerate(outcomes) if j % 16)
    assert c.stats == pstats(shared=4, tables=4)
    # fault-around entries are writable (rw region) and clean
    assert entries(c) == [((a >> 12) + j, 5 + j, True, False) for j in range(64)]
    assert m.stats.minflt == 64 + 4
    assert data_frames(m) == {5 + j: (3, 2, SHMEM | DIRTY) for j in range(64)}


def test_fault_around_disabled(machine):
    m = machine(fault_around=0)
    p, a, c = _shared_written_then_forked(m, 64)
    assert [c.touch(a + j * PS) for j in range(64)] == [Outcome.SHARED] * 64
    assert c.stats == pstats(shared=64, tables=4)


def test_fault_around_16k_window(machine):
    # n = 16384 // 4096 = 4; 8 pages at indexes 504..511: faults at 504, 508
    m = machine(fault_around="16KiB")
    p, a, c = _shared_written_then_forked(m, 8)
    outcomes = [c.touch(a + j * PS) for j in range(8)]
    assert outcomes == [Outcome.SHARED] + [Outcome.HIT] * 3 + [Outcome.SHARED] + [Outcome.HIT] * 3
    assert c.stats == pstats(shared=2, tables=4)


def test_fault_around_unaligned_region(machine):
    # 40 pages at indexes 472..511 (v = j, r = 40).
    # j=0  (i=472): from = max(464, 472 - 0) = 472, to = min(488, 512, 512) = 488
    # j=16 (i=488): from = max(480, 488 - 16) = 480, to = 496 -> maps 488..495
    # j=24 (i=496): from = max(496, 496 - 24) = 496, to = 512 -> maps 496..511
    m = machine()
    p, a, c = _shared_written_then_forked(m, 40)
    outcomes = [c.touch(a + j * PS) for j in range(40)]
    assert [j for j, o in enumerate(outcomes) if o == Outcome.SHARED] == [0, 16, 24]
    assert c.stats == pstats(shared=3, tables=4)
    assert len(entries(c)) == 40


def test_fault_around_window_counts_from_the_middle(machine):
    # 40 pages at indexes 472..511. Read j=20 (i=492):
    #   from = max(480, 492 - 20) = 480, to = min(496, 512, 492 + 40 - 20) = 496
    #   -> 16 entries, j = 8..23.
    # Then read j=0 (i=472): from = 472, to = 488 -> j = 0..15, of which
    #   j = 0..7 are new: 24 entries.
    m = machine()
    p, a, c = _shared_written_then_forked(m, 40)
    vp0 = a >> 12
    assert c.touch(a + 20 * PS) == Outcome.SHARED
    assert [v - vp0 for v, *_ in entries(c)] == list(range(8, 24))
    assert c.touch(a) == Outcome.SHARED
    assert [v - vp0 for v, *_ in entries(c)] == list(range(0, 24))
    assert c.touch(a + 23 * PS) == Outcome.HIT
    assert c.touch(a + 24 * PS) == Outcome.SHARED
    assert c.stats == pstats(shared=3, tables=4)


def test_fault_around_maps_only_existing_object_pages(machine):
    # 40 pages at indexes 472..511; the parent wrote j = 0..9 only.
    m = machine()
    p, a, c = _shared_written_then_forked(m, 40, written=range(10))
    vp0 = a >> 12
    # j=5 (i=477): window from max(464, 477-5=472) = 472 to 488 -> j 0..15;
    # only j 0..9 exist in the object: 10 entries.
    assert c.touch(a + 5 * PS) == Outcome.SHARED
    assert [v - vp0 for v, *_ in entries(c)] == list(range(10))
    assert m.stats.data_frames == 10
    # j=12 (i=484) does not exist: a new zeroed object page is allocated;
    # window from max(480, 484-12=472) = 480 to 496 -> j 8..23: 8, 9 present
    # already, 12 is the faulting page: 11 entries in all.
    assert c.touch(a + 12 * PS) == Outcome.SHARED
    assert [v - vp0 for v, *_ in entries(c)] == list(range(10)) + [12]
    assert m.stats.data_frames == 11
    assert frame_row(m, tr(c, a + 12 * PS)[0]) == (2, 1, SHMEM)
    assert c.stats == pstats(shared=2, tables=4)
    assert entries(p) == [(vp0 + j, 5 + j, True, True) for j in range(10)]


def test_fault_around_clamped_to_the_region(machine):
    # A 4-page private region at the top (indexes 508..511), below it a
    # 20-page shared region B at indexes 488..507 (r = 20).
    # B's first 10 pages are then made read-only: B1 = 488..497 (r, 10 pages),
    # B2 = 498..507 (rw, 10 pages, offset 10 in the same object).
    m = machine()
    p = m.spawn()
    top = p.mmap(4 * PS)
    b = p.mmap(20 * PS, shared=True)
    assert (top, b) == (TOP - 4 * PS, TOP - 24 * PS)
    p.write(b, b"b" * (20 * PS))
    p.write(top, b"t" * (4 * PS))
    p.mprotect(b, 10 * PS, "r")
    c = p.fork()
    vb = b >> 12
    # C reads B2's first page j=0 (i=498, v=0, r=10):
    #   from = max(496, 498 - 0) = 498; to = min(512, 512, 498 + 10) = 508
    assert c.touch(b + 10 * PS) == Outcome.SHARED
    got = [(v - vb, w) for v, f, w, d in entries(c) if vb <= v < vb + 20]
    assert got == [(j, True) for j in range(10, 20)]
    # B1's last page (i=497, v=9, r=10): from = max(496, 497 - 9) = 496,
    #   to = min(512, 512, 497 + 10 - 9) = 498 -> B1 j = 8, 9, read-only
    assert c.touch(b + 9 * PS) == Outcome.SHARED
    got = [(v - vb, w) for v, f, w, d in entries(c) if vb <= v < vb + 20]
    assert got == [(8, False), (9, False)] + [(j, True) for j in range(10, 20)]
    # the right object pages (B2 starts at object offset 10): page j is frame 5 + j
    assert [(v - vb, f) for v, f, w, d in entries(c) if vb <= v < vb + 20] == \
        [(j, 5 + j) for j in range(8, 20)]
    # the private region's 4 entries were copied at fork (cow): 16 in all
    assert len(entries(c)) == 4 + 12
    assert c.stats == pstats(shared=2, tables=4)


def test_fault_around_with_64k_window_and_fault_counts_match_n_over_16(machine):
    # 256 shared pages = one aligned half of a table: 256 / 16 = 16 faults
    m = machine()
    p, a, c = _shared_written_then_forked(m, 256)
    for j in range(256):
        c.touch(a + j * PS)
    assert c.stats == pstats(shared=16, tables=4)


# ------------------------------------------------------------------ OOM (faults)

def test_oom_fault_counts_tables_first_and_changes_nothing(machine, snapshot):
    # 6 frames: zero page + 5 allocatable.  Q and P hold a root each: 3 free.
    m = machine(memory=6 * PS)
    q = m.spawn()
    p = m.spawn()
    a = p.mmap(2 * PS)
    assert mstat(m, "frames_total", "frames_free") == (5, 3)
    before = snapshot(m, p, q)
    with pytest.raises(OutOfMemory):
        p.touch(a, write=True)           # needs 3 tables + 1 data frame = 4 > 3
    assert snapshot(m, p, q) == before
    assert p.touch(a) == Outcome.ZERO_PAGE   # needs the 3 tables only
    assert mstat(m, "frames_used", "frames_free") == (5, 0)
    before = snapshot(m, p, q)
    with pytest.raises(OutOfMemory):
        p.touch(a, write=True)           # F4 needs 1 frame
    with pytest.raises(OutOfMemory):
        p.write(a + PS, b"x")            # F3 (tables present) needs 1 frame
    assert snapshot(m, p, q) == before
    q.exit()                             # frees Q's root
    assert m.stats.frames_free == 1
    assert p.touch(a, write=True) == Outcome.ZERO_FILL
    assert p.stats == pstats(zp=1, zf=1, tables=4)
    assert mstat(m, "frames_used", "frames_free", "minflt") == (5, 0, 2)


def test_oom_cow_copy_then_success_and_reuse_needs_no_frame(machine, snapshot):
    # 11 frames, 10 allocatable: Q root (1), P root + 3 tables + 1 data (5),
    # cow child root + 3 tables (4): 10 used, 0 free.
    m = machine(memory=11 * PS)
    q = m.spawn()
    p = m.spawn()
    a = p.mmap(PS)
    p.write(a, b"1" * 16)
    c = p.fork()
    assert mstat(m, "frames_used", "frames_free") == (10, 0)
    before = snapshot(m, p, c, q)
    with pytest.raises(OutOfMemory):
        c.touch(a, write=True)
    assert snapshot(m, p, c, q) == before
    assert tr(c, a)[1:] == (False, True)
    q.exit()
    assert c.touch(a, write=True) == Outcome.COW_COPY
    assert m.stats.frames_free == 0
    assert p.touch(a, write=True) == Outcome.COW_REUSE     # no frame needed
    assert c.stats == pstats(copy=1, copied=1, tables=4)
    assert p.stats == pstats(zf=1, reuse=1, tables=4)
    if m.store_data:
        assert c.read(a, 16) == b"1" * 16


def test_oom_shared_fault(machine, snapshot):
    # 7 frames, 6 allocatable: Q root, P root + 3 tables + 1 shmem page = 6.
    m = machine(memory=7 * PS)
    q = m.spawn()
    p = m.spawn()
    a = p.mmap(2 * PS, shared=True)
    assert p.touch(a, write=True) == Outcome.SHARED
    assert m.stats.frames_free == 0
    before = snapshot(m, p, q)
    with pytest.raises(OutOfMemory):
        p.touch(a + PS)                    # needs a new object page
    with pytest.raises(OutOfMemory):
        p.touch(a + PS, write=True)
    assert snapshot(m, p, q) == before
    q.exit()
    assert p.touch(a + PS) == Outcome.SHARED
    assert p.stats == pstats(shared=2, tables=4)
    assert mstat(m, "frames_free", "data_frames") == (0, 2)


def test_oom_shared_fault_needing_tables_only(machine, snapshot):
    # 10 frames, 9 allocatable: Q root; P root + 3 tables + 1 shmem page;
    # the child's root: 7 used, 2 free.  The child's first read of the
    # existing page needs 3 tables.
    m = machine(memory=10 * PS)
    q = m.spawn()
    p = m.spawn()
    s = p.mmap(PS, shared=True)
    p.write(s, b"o")
    c = p.fork()
    assert mstat(m, "frames_used", "frames_free") == (7, 2)
    before = snapshot(m, p, c, q)
    with pytest.raises(OutOfMemory):
        c.touch(s)
    assert snapshot(m, p, c, q) == before
    q.exit()
    assert c.touch(s) == Outcome.SHARED
    assert c.stats == pstats(shared=1, tables=4)
    assert mstat(m, "frames_used", "frames_free", "data_frames") == (9, 0, 1)
    if m.store_data:
        assert c.read(s, 1) == b"o"


def test_oom_then_munmap_frees_memory_for_the_same_access(machine, snapshot):
    # 8 frames, 7 allocatable: root + 3 tables + 3 data pages.
    m = machine(memory=8 * PS)
    p = m.spawn()
    a = p.mmap(2 * PS)
    b = p.mmap(2 * PS)                       # right below a: same tables
    p.write(a, b"a" * (2 * PS))
    p.write(b, b"b")
    assert m.stats.frames_free == 0
    before = snapshot(m, p)
    with pytest.raises(OutOfMemory):
        p.write(b + PS, b"b")
    assert snapshot(m, p) == before
    p.munmap(a + PS, PS)                     # frees one data frame, the tables stay
    assert mstat(m, "frames_free", "page_table_frames") == (1, 4)
    p.write(b + PS, b"b")
    assert p.stats == pstats(zf=4, tables=4)
    assert m.stats.frames_free == 0


# --------------------------------------------------------------------- A2

def test_minflt_is_the_sum_of_the_five_kinds(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    s = p.mmap(2 * PS, shared=True)
    p.touch(a)                 # zero page
    p.touch(a, write=True)     # zero fill (F4)
    p.touch(a + PS, write=True)   # zero fill (F3)
    p.touch(s, write=True)     # shared
    c = p.fork()
    c.touch(a, write=True)     # copy
    p.touch(a, write=True)     # reuse
    c.touch(s)                 # shared (fault-around maps nothing else: s+PS absent)
    with pytest.raises(SegmentationFault):
        c.touch(a - 3 * PS)    # below s: unmapped
    assert p.stats == pstats(zp=1, zf=2, reuse=1, shared=1, tables=4)
    assert c.stats == pstats(copy=1, shared=1, segv=1, copied=1, tables=4)
    assert mstat(m, "minflt", "segfaults", "pages_copied") == (7, 1, 1)
    c.exit()
    assert m.stats.minflt == 7     # every process ever
