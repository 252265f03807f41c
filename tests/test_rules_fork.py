"""Fork rules K1-K5 and DESIGN.md section 3's observable checks, exact counts.

4 KiB pages, 4 levels: a process's first walk owns root + 3 tables.  A child
gets its own root plus one table for every table of the parent that overlaps
a region whose entries are copied (private with anon_vma).
"""
import pytest

from cowsim import InvalidArgument, OutOfMemory, Outcome
from rulehelpers import (
    ANON, EXCL, KB, PS, SHMEM, DIRTY, TOP,
    anon_private_dirty, anon_shared_dirty, data_frames, entries, frame_row,
    mstat, pstats, regs, smaps, tr,
)


def _writer(m, npages, fill=b"P"):
    p = m.spawn()
    a = p.mmap(npages * PS)
    p.write(a, fill * (npages * PS))
    return p, a


# ------------------------------------------------ DESIGN.md 3: observable checks

def test_write_n_then_fork(machine, fork_mode):
    N = 8
    m = machine()
    p, a = _writer(m, N)                      # root + 3 tables + N data frames
    assert mstat(m, "frames_used", "data_frames") == (4 + N, N)
    c = p.fork(fork_mode)
    vp = a >> 12
    if fork_mode == "cow":
        # 0 new data frames; the child only gets root + 3 tables
        assert mstat(m, "frames_used", "data_frames", "page_table_frames",
                     "pages_copied") == (4 + N + 4, N, 8, 0)
        assert data_frames(m) == {5 + i: (2, 2, ANON) for i in range(N)}
        # write-protected on both sides, dirty kept
        ro = [(vp + i, 5 + i, False, True) for i in range(N)]
        assert entries(p) == ro and entries(c) == ro
        # Pss = N/2 pages on each side: 8 pages * 4 kB / 2 = 16 kB
        assert p.smaps() == anon_shared_dirty(N * KB, N * KB // 2)
        assert c.smaps() == anon_shared_dirty(N * KB, N * KB // 2)
        assert c.stats == pstats(tables=4)
    else:
        # N copies (and the child's root + 3 tables): the copies are new
        # exclusive frames, none of the parent's.
        assert mstat(m, "frames_used", "data_frames", "page_table_frames",
                     "pages_copied") == (4 + N + 4 + N, 2 * N, 8, N)
        assert entries(p) == [(vp + i, 5 + i, True, True) for i in range(N)]
        child = entries(c)
        assert [(v, w, d) for v, f, w, d in child] == [(vp + i, True, True) for i in range(N)]
        child_frames = {f for v, f, w, d in child}
        assert len(child_frames) == N and not child_frames & set(range(5, 5 + N))
        assert data_frames(m) == {f: (1, 1, ANON | EXCL) for f in list(range(5, 5 + N)) + sorted(child_frames)}
        assert p.smaps() == anon_private_dirty(N * KB)
        assert c.smaps() == anon_private_dirty(N * KB)
        assert c.stats == pstats(copied=N, tables=4)
    assert p.stats == pstats(zf=N, tables=4)
    assert mstat(m, "forks", "processes", "minflt") == (1, 2, N)
    if m.store_data:
        assert c.read(a, N * PS) == b"P" * (N * PS)


def test_child_writes_k_then_parent_writes_same_k(machine, fork_mode):
    N, k = 8, 3
    m = machine()
    p, a = _writer(m, N)
    c = p.fork(fork_mode)
    child_out = [c.touch(a + i * PS, write=True) for i in range(k)]
    if m.store_data:
        c.write(a, b"C" * (k * PS))           # hits now
    parent_out = [p.touch(a + i * PS, write=True) for i in range(k)]
    if fork_mode == "cow":
        assert child_out == [Outcome.COW_COPY] * k          # k faults, k copies
        assert parent_out == [Outcome.COW_REUSE] * k        # k faults, 0 copies
        assert c.stats == pstats(copy=k, copied=k, tables=4)
        assert p.stats == pstats(zf=N, reuse=k, tables=4)
        assert mstat(m, "data_frames", "pages_copied", "minflt") == (N + k, k, N + 2 * k)
        # k private pages (4 kB) + (N - k) pages shared by 2 (2 kB):
        # Pss = 3 * 4 + 5 * 2 = 22 kB, Rss 32 kB, Private 12, Shared 20
        expect = smaps(Rss=32, Pss=22, Pss_Dirty=22, Pss_Anon=22, Shared_Dirty=20,
                       Private_Dirty=12, Anonymous=32)
        assert p.smaps() == expect and c.smaps() == expect
        # the k pages the parent reused are its original frames, exclusive again
        assert [tr(p, a + i * PS) for i in range(k)] == [(5 + i, True, True) for i in range(k)]
        assert [frame_row(m, 5 + i) for i in range(N)] == \
            [(1, 1, ANON | EXCL)] * k + [(2, 2, ANON)] * (N - k)
    else:
        assert child_out == [Outcome.HIT] * k and parent_out == [Outcome.HIT] * k
        assert c.stats == pstats(copied=N, tables=4)
        assert p.stats == pstats(zf=N, tables=4)
        assert mstat(m, "data_frames", "pages_copied", "minflt") == (2 * N, N, N)
        assert p.smaps() == anon_private_dirty(32) and c.smaps() == anon_private_dirty(32)
    if m.store_data:
        assert c.read(a, N * PS) == b"C" * (k * PS) + b"P" * ((N - k) * PS)
        assert p.read(a, N * PS) == b"P" * (N * PS)


def test_read_only_region_then_fork_child_faults_again(machine, fork_mode):
    N = 8
    m = machine()
    p = m.spawn()
    a = p.mmap(N * PS)
    assert [p.touch(a + i * PS) for i in range(N)] == [Outcome.ZERO_PAGE] * N
    c = p.fork(fork_mode)
    assert regs(c) == [(a, a + N * PS, "rw", False, False, False, False)]
    assert entries(c) == []                           # K1: no anon_vma, nothing copied
    assert c.stats == pstats(tables=1)                 # the root only
    assert mstat(m, "frames_used", "pages_copied") == (4 + 1, 0)
    assert [c.touch(a + i * PS) for i in range(N)] == [Outcome.ZERO_PAGE] * N
    assert c.stats == pstats(zp=N, tables=4)
    assert p.stats == pstats(zp=N, tables=4)
    assert mstat(m, "frames_used", "data_frames", "minflt") == (8, 0, 2 * N)


def test_zero_page_entries_are_copied_as_is(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.touch(a, write=True)                             # frame 5; region written
    for i in (1, 2, 3):
        p.touch(a + i * PS)                            # zero page
    c = p.fork(fork_mode)
    vp = a >> 12
    zero = [(vp + i, 0, False, False) for i in (1, 2, 3)]
    assert entries(c)[1:] == zero and entries(p)[1:] == zero
    assert [c.touch(a + i * PS) for i in (1, 2, 3)] == [Outcome.HIT] * 3
    assert c.touch(a + PS, write=True) == Outcome.ZERO_FILL      # F4, not a copy
    copied = 1 if fork_mode == "eager" else 0          # only the one real page
    assert c.stats == pstats(zf=1, copied=copied, tables=4)
    assert mstat(m, "pages_copied", "data_frames") == (copied, 2 + copied)


# ---------------------------------------------------------------- K1 tables

def test_k1_tables_copied_even_without_present_entries(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.touch(a, write=True)
    p.madvise(a, PS, "dontneed")                       # entry gone, tables and anon_vma kept
    assert entries(p) == [] and p.stats.page_table_frames == 4
    c = p.fork(fork_mode)
    assert c.stats == pstats(tables=4)                 # root + the 3 overlapping tables
    assert entries(c) == []
    assert mstat(m, "frames_used", "data_frames", "page_table_frames") == (8, 0, 8)


def test_k1_only_tables_of_written_regions_are_copied(machine, fork_mode):
    m = machine()
    p = m.spawn()
    w = p.mmap(2 * PS)                                  # at the top: root index 255
    r = p.mmap(2 * PS, addr=2**30)                      # root index 0: its own 3 tables
    p.touch(w, write=True)
    p.touch(r)
    p.touch(r + PS)
    assert p.stats == pstats(zf=1, zp=2, tables=7)     # root + 3 + 3
    c = p.fork(fork_mode)
    assert c.stats == pstats(copied=1 if fork_mode == "eager" else 0, tables=4)
    # 7 tables + 1 data, then root + 3 tables (+ 1 copy when eager)
    assert m.stats.frames_used == 8 + 4 + (1 if fork_mode == "eager" else 0)
    assert [v for v, *_ in entries(c)] == [w >> 12]


def test_k1_a_table_shared_by_two_written_regions_is_copied_once(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    b = p.mmap(2 * PS)                                  # same last-level table as a
    p.touch(a, write=True)
    p.touch(b + PS, write=True)
    c = p.fork(fork_mode)
    assert c.stats == pstats(copied=2 if fork_mode == "eager" else 0, tables=4)
    assert len(entries(c)) == 2


def test_k1_tables_spanning_two_last_level_tables(machine, fork_mode):
    # 1024 pages at the top span two last-level tables (512 pages each)
    m = machine()
    p = m.spawn()
    a = p.mmap(1024 * PS)
    p.touch(a + 1023 * PS, write=True)                  # upper table only
    assert p.stats.page_table_frames == 4
    c = p.fork(fork_mode)
    assert c.stats.page_table_frames == 4               # the parent has no lower table
    p.touch(a, write=True)                              # now the lower table too
    assert p.stats.page_table_frames == 5
    c2 = p.fork(fork_mode)
    assert c2.stats.page_table_frames == 5
    assert len(entries(c2)) == 2


# ---------------------------------------------------------------------- K2

def test_k2_cow_fork_write_protects_and_keeps_dirty(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.write(a, b"d" * (4 * PS))                       # frames 5..8
    p.mprotect(a + 2 * PS, 2 * PS, "r")               # pages 2, 3 read-only already
    c = p.fork()
    vp = a >> 12
    ro = [(vp + i, 5 + i, False, True) for i in range(4)]
    assert entries(p) == ro and entries(c) == ro
    assert data_frames(m) == {5 + i: (2, 2, ANON) for i in range(4)}
    # the child's copy of the split regions has anon_vma too
    assert regs(c) == regs(p) == [(a, a + 2 * PS, "rw", False, False, False, True),
                                  (a + 2 * PS, a + 4 * PS, "r", False, False, False, True)]


def test_k2_grandchild_raises_mapcount_to_3(machine):
    m = machine()
    p, a = _writer(m, 2)
    c = p.fork()
    g = c.fork()
    assert data_frames(m) == {5: (3, 3, ANON), 6: (3, 3, ANON)}
    assert g.parent.pid == c.pid and c.parent.pid == p.pid
    assert g.touch(a, write=True) == Outcome.COW_COPY
    assert c.touch(a, write=True) == Outcome.COW_COPY   # refcount still 2
    assert p.touch(a, write=True) == Outcome.COW_REUSE  # now sole owner
    assert m.stats.pages_copied == 2


def test_k2_eager_fork_copies_with_region_protection(machine):
    m = machine()
    p, a = _writer(m, 2, b"e")
    p.mprotect(a, 2 * PS, "r")
    c = p.fork("eager")
    # child entry writable iff region rw: read-only here; frames exclusive
    assert [(w, d) for v, f, w, d in entries(c)] == [(False, True)] * 2
    assert [(w, d) for v, f, w, d in entries(p)] == [(False, True)] * 2
    assert {fl for rc, mc, fl in data_frames(m).values()} == {ANON | EXCL}
    c.mprotect(a, 2 * PS, "rw")
    p.mprotect(a, 2 * PS, "rw")
    # M1: exclusive frames become writable again on both sides
    assert [w for v, f, w, d in entries(c)] == [True, True]
    assert [w for v, f, w, d in entries(p)] == [True, True]
    assert c.touch(a, write=True) == Outcome.HIT
    assert c.stats == pstats(copied=2, tables=4)
    if m.store_data:
        assert c.read(a, 2 * PS) == b"e" * (2 * PS)


# ---------------------------------------------------------------------- K3

def test_k3_dontfork_region_is_absent_in_child(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    p.write(a, b"x" * (2 * PS))
    p.madvise(a, 2 * PS, "dontfork")
    assert regs(p) == [(a, a + 2 * PS, "rw", False, True, False, True)]
    c = p.fork(fork_mode)
    assert regs(c) == []
    assert c.stats == pstats(tables=1)                 # nothing copied, no tables
    # the parent's pages are untouched: writable, exclusive, refcount 1
    assert entries(p) == [((a >> 12) + i, 5 + i, True, True) for i in range(2)]
    assert data_frames(m) == {5: (1, 1, ANON | EXCL), 6: (1, 1, ANON | EXCL)}
    assert mstat(m, "frames_used", "pages_copied") == (6 + 1, 0)
    assert p.touch(a, write=True) == Outcome.HIT
    # dofork: the next fork copies the region again
    p.madvise(a, 2 * PS, "dofork")
    c2 = p.fork(fork_mode)
    assert regs(c2) == [(a, a + 2 * PS, "rw", False, False, False, True)]
    assert c2.stats == pstats(copied=2 if fork_mode == "eager" else 0, tables=4)


def test_k3_dontfork_next_to_a_written_region(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(PS)
    d = p.mmap(PS)                                      # same last-level table
    p.touch(a, write=True)
    p.touch(d, write=True)
    p.madvise(d, PS, "dontfork")
    c = p.fork(fork_mode)
    assert [r[0] for r in regs(c)] == [a]
    assert [v for v, *_ in entries(c)] == [a >> 12]
    assert c.stats == pstats(copied=1 if fork_mode == "eager" else 0, tables=4)
    assert tr(p, d) == (6, True, True)                  # not write-protected


def test_k3_wipeonfork_region_is_present_but_empty(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    p.write(a, b"w" * (2 * PS))
    p.madvise(a, 2 * PS, "wipeonfork")
    c = p.fork(fork_mode)
    # same flags, no anon_vma, no entries, no tables
    assert regs(c) == [(a, a + 2 * PS, "rw", False, False, True, False)]
    assert entries(c) == []
    assert c.stats == pstats(tables=1)
    assert entries(p) == [((a >> 12) + i, 5 + i, True, True) for i in range(2)]
    assert data_frames(m) == {5: (1, 1, ANON | EXCL), 6: (1, 1, ANON | EXCL)}
    assert c.touch(a) == Outcome.ZERO_PAGE
    assert c.touch(a + PS, write=True) == Outcome.ZERO_FILL
    assert c.stats == pstats(zp=1, zf=1, tables=4)
    assert regs(c)[0][-1] is True
    if m.store_data:
        assert c.read(a, 2 * PS) == bytes(2 * PS)
        assert p.read(a, 2 * PS) == b"w" * (2 * PS)
    # the grandchild of a wipe-on-fork region is wiped again
    g = c.fork(fork_mode)
    assert regs(g) == [(a, a + 2 * PS, "rw", False, False, True, False)]
    assert entries(g) == []
    # keeponfork: copied again
    p.madvise(a, 2 * PS, "keeponfork")
    c2 = p.fork(fork_mode)
    assert regs(c2) == [(a, a + 2 * PS, "rw", False, False, False, True)]
    assert len(entries(c2)) == 2


def test_k3_wipeonfork_on_shared_region_is_invalid(machine, snapshot):
    m = machine()
    p = m.spawn()
    s = p.mmap(2 * PS, shared=True)
    p.touch(s, write=True)
    before = snapshot(m, p)
    with pytest.raises(InvalidArgument):
        p.madvise(s, 2 * PS, "wipeonfork")
    assert snapshot(m, p) == before


def test_k3_dontfork_shared_region(machine, fork_mode):
    m = machine()
    p = m.spawn()
    s = p.mmap(2 * PS, shared=True)
    p.write(s, b"s" * (2 * PS))
    p.madvise(s, 2 * PS, "dontfork")
    c = p.fork(fork_mode)
    assert regs(c) == []
    assert data_frames(m) == {5: (2, 1, SHMEM | DIRTY), 6: (2, 1, SHMEM | DIRTY)}
    p.munmap(s, 2 * PS)                                  # the last region of the object
    assert mstat(m, "shared_objects", "data_frames") == (0, 0)


# ---------------------------------------------------------------------- K4

def test_k4_fork_counts_no_fault(machine, fork_mode):
    m = machine()
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.write(a, b"k" * (3 * PS))
    p.touch(a + 3 * PS)
    p_before = p.stats
    m_before = mstat(m, "minflt", "segfaults")
    c = p.fork(fork_mode)
    assert p.stats == pstats(zf=3, zp=1, tables=4) == p_before
    assert c.stats == pstats(copied=3 if fork_mode == "eager" else 0, tables=4)
    # the parent's TLB is flushed by a CoW fork (dup_mmap -> flush_tlb_mm), not by eager
    assert p.stats.tlb_flushes - p_before.tlb_flushes == (1 if fork_mode == "cow" else 0)
    assert mstat(m, "minflt", "segfaults") == m_before == (4, 0)
    assert mstat(m, "forks", "processes") == (1, 2)
    assert c.pid == p.pid + 1 and c.parent.pid == p.pid


# ---------------------------------------------------------------------- K5

def test_k5_eager_fork_of_more_than_half_of_memory_fails_cow_succeeds(machine, snapshot):
    # 64 frames, 63 allocatable; the parent holds root + 3 tables + 40 pages
    # = 44 > 32.  Eager needs root + 3 tables + 40 copies = 44 > 19 free;
    # cow needs 4.
    m = machine(memory=64 * PS)
    p, a = _writer(m, 40, b"h")
    assert mstat(m, "frames_used", "frames_free") == (44, 19)
    before = snapshot(m, p)
    with pytest.raises(OutOfMemory):
        p.fork("eager")
    assert snapshot(m, p) == before                      # stats, frames, entries, smaps
    assert len(m.processes) == 1
    c = p.fork("cow")
    assert c.pid == p.pid + 1                            # the failed fork used no pid
    assert mstat(m, "frames_used", "frames_free", "forks", "pages_copied") == (48, 15, 1, 0)
    assert c.stats == pstats(tables=4)
    if m.store_data:
        assert c.read(a, 40 * PS) == b"h" * (40 * PS)


@pytest.mark.parametrize("spare", [0, -1])
def test_k5_fork_at_the_exact_frame_boundary(machine, snapshot, fork_mode, spare):
    # parent: root + 3 tables + 5 pages = 9 frames; the child needs root +
    # 3 tables (cow) or that plus 5 copies (eager).
    N = 5
    need = 4 + (N if fork_mode == "eager" else 0)
    total = 9 + need + spare                             # allocatable frames
    m = machine(memory=(total + 1) * PS)
    p, a = _writer(m, N)
    before = snapshot(m, p)
    if spare < 0:
        with pytest.raises(OutOfMemory):
            p.fork(fork_mode)
        assert snapshot(m, p) == before
        assert m.stats.forks == 0
    else:
        c = p.fork(fork_mode)
        assert mstat(m, "frames_free", "frames_used", "forks") == (0, total, 1)
        assert c.stats.page_table_frames == 4


@pytest.mark.parametrize("spare", [0, -1])
def test_k5_boundary_with_two_table_paths(machine, snapshot, fork_mode, spare):
    # Two written regions under different root entries: the parent holds
    # root + 3 + 3 tables + 2 pages = 9 frames; the child needs root + 6
    # tables = 7 (cow) or 7 + 2 copies = 9 (eager).
    need = 7 + (2 if fork_mode == "eager" else 0)
    total = 9 + need + spare
    m = machine(memory=(total + 1) * PS)
    p = m.spawn()
    w = p.mmap(PS)
    r = p.mmap(PS, addr=2**30)
    p.touch(w, write=True)
    p.touch(r, write=True)
    assert mstat(m, "frames_used", "page_table_frames") == (9, 7)
    before = snapshot(m, p)
    if spare < 0:
        with pytest.raises(OutOfMemory):
            p.fork(fork_mode)
        assert snapshot(m, p) == before
    else:
        c = p.fork(fork_mode)
        assert c.stats == pstats(copied=2 if fork_mode == "eager" else 0, tables=7)
        assert mstat(m, "frames_free", "frames_used") == (0, total)


def test_k5_failed_cow_fork_leaves_parent_writable(machine, snapshot):
    # 8 allocatable frames: parent uses 5, a cow fork needs 4
    m = machine(memory=9 * PS)
    p, a = _writer(m, 1)
    before = snapshot(m, p)
    with pytest.raises(OutOfMemory):
        p.fork("cow")
    assert snapshot(m, p) == before
    assert tr(p, a) == (5, True, True)
    assert frame_row(m, 5) == (1, 1, ANON | EXCL)
    assert p.touch(a, write=True) == Outcome.HIT


# ------------------------------------------------------- classic 3 processes

def test_three_processes_keep_their_own_data(machine, fork_mode):
    N = 6
    m = machine()
    p, a = _writer(m, N, b"0")
    base_used = m.stats.frames_used                      # 4 + N
    c1 = p.fork(fork_mode)
    c2 = p.fork(fork_mode)
    if fork_mode == "cow":
        assert data_frames(m) == {5 + i: (3, 3, ANON) for i in range(N)}
    for proc, fill in ((c1, b"1"), (c2, b"2"), (p, b"P")):
        proc.write(a, fill * (N * PS))
    if fork_mode == "cow":
        # c1 copies N (refcount 3 -> 2), c2 copies N (2 -> 1), p reuses N
        assert c1.stats == pstats(copy=N, copied=N, tables=4)
        assert c2.stats == pstats(copy=N, copied=N, tables=4)
        assert p.stats == pstats(zf=N, reuse=N, tables=4)
    else:
        assert c1.stats == pstats(copied=N, tables=4)
        assert c2.stats == pstats(copied=N, tables=4)
        assert p.stats == pstats(zf=N, tables=4)
    assert mstat(m, "data_frames", "pages_copied", "frames_used") == (3 * N, 2 * N, base_used + 2 * (4 + N))
    assert {fl for rc, mc, fl in data_frames(m).values()} == {ANON | EXCL}
    assert {(rc, mc) for rc, mc, fl in data_frames(m).values()} == {(1, 1)}
    frames = [set(f for v, f, w, d in entries(x)) for x in (p, c1, c2)]
    assert not (frames[0] & frames[1] or frames[0] & frames[2] or frames[1] & frames[2])
    if m.store_data:
        assert p.read(a, N * PS) == b"P" * (N * PS)
        assert c1.read(a, N * PS) == b"1" * (N * PS)
        assert c2.read(a, N * PS) == b"2" * (N * PS)
    c1.exit()
    assert mstat(m, "frames_used", "data_frames") == (base_used + 4 + N, 2 * N)
    c2.exit()
    assert mstat(m, "frames_used", "data_frames") == (base_used, N)
    p.exit()
    assert mstat(m, "frames_used", "data_frames", "page_table_frames", "processes") == (0, 0, 0, 0)
    assert m.frames().size == 0


def test_child_exit_returns_its_frames(machine, fork_mode):
    N = 5
    m = machine()
    p, a = _writer(m, N)
    used = m.stats.frames_used
    c = p.fork(fork_mode)
    c.write(a, b"c" * PS)
    c.exit()
    assert mstat(m, "frames_used", "data_frames", "processes") == (used, N, 1)
    assert {rc for rc, mc, fl in data_frames(m).values()} == {1}


# ------------------------------------------------------ shared regions at fork

def test_fork_shared_region_takes_an_object_reference(machine, fork_mode):
    m = machine()
    p = m.spawn()
    s = p.mmap(2 * PS, shared=True)
    p.write(s, b"o" * (2 * PS))
    c = p.fork(fork_mode)
    assert regs(c) == [(s, s + 2 * PS, "rw", True, False, False, False)]
    assert entries(c) == [] and c.stats == pstats(tables=1)
    assert mstat(m, "shared_objects", "pages_copied") == (1, 0)
    p.munmap(s, 2 * PS)
    # the object lives on: its 2 pages stay, referenced by the object only
    assert mstat(m, "shared_objects", "data_frames") == (1, 2)
    assert data_frames(m) == {5: (1, 0, SHMEM | DIRTY), 6: (1, 0, SHMEM | DIRTY)}
    assert c.touch(s + PS) == Outcome.SHARED            # fault-around maps page 0 too
    assert len(entries(c)) == 2
    if m.store_data:
        assert c.read(s, 2 * PS) == b"o" * (2 * PS)
    c.exit()
    assert mstat(m, "shared_objects", "data_frames") == (0, 0)
