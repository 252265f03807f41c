"""Transparent huge pages (mmap(huge=True)): exact counts, docs/SEMANTICS.md.

4 KiB pages, 4 levels.  A huge region chosen by the core is 2 MiB aligned at
the top of user space, so its first write fault allocates the level-2 and
level-1 tables (2 frames), a 512-frame block and the deposited table (1
frame).  On a fresh machine the tables are frames 2, 3; the first aligned
block above bump is 512..1023, and the frames it skipped (4..511) go onto
the free list lowest first, so the deposited table is frame 4.
"""
import random

import numpy as np
import pytest

import cowsim
from cowsim import InvalidArgument, Outcome
from rulehelpers import (ANON, EXCL, HUGE, KB, PS, data_frames, entries, frame_row, pstats, smaps,
                         table_frames, tr)

H = 2 << 20                     # huge page size
NR = 512                        # frames per huge page
B1 = 512                        # first huge block on a fresh machine
HUGE_ANON = ANON | EXCL | HUGE


def _thp(p):
    s = p.stats
    return (s.thp_faults, s.thp_splits)


def _huge_writer(m, spans=1):
    p = m.spawn()
    a = p.mmap(spans * H, huge=True)
    for i in range(spans):
        assert p.touch(a + i * H + 5 * PS, write=True) == Outcome.ZERO_FILL
    return p, a


def huge_private(kb, huge_kb=None):
    return smaps(Rss=kb, Pss=kb, Pss_Dirty=kb, Pss_Anon=kb, Private_Dirty=kb, Anonymous=kb,
                 AnonHugePages=kb if huge_kb is None else huge_kb)


# ------------------------------------------------------------ regions

def test_huge_region_is_2mib_aligned_and_flagged(machine):
    m = machine()
    p = m.spawn()
    small = p.mmap(3 * PS)                       # top of user space, not aligned
    a = p.mmap(H + 8 * PS, huge=True)
    assert a % H == 0 and a + H + 8 * PS <= small
    assert [r.huge for r in p.regions] == [True, False]
    assert p.regions[0].start == a


def test_bad_huge_arguments():
    m = cowsim.Machine(memory="4MiB")
    p = m.spawn()
    with pytest.raises(InvalidArgument):
        p.mmap(H, shared=True, huge=True)
    with pytest.raises(TypeError):
        p.mmap(H, huge="yes")
    with pytest.raises(InvalidArgument):
        cowsim.Machine(memory="4MiB", page_size=16384).spawn().mmap(H, huge=True)
    with pytest.raises(InvalidArgument):
        cowsim.Machine(memory="4MiB", thp_cow="sometimes")
    with pytest.raises(TypeError):
        cowsim.Machine(memory="4MiB", thp_cow=1)
    # the core refuses the same on its own
    from cowsim._ffi import ffi, lib
    out = ffi.new("uint64_t *")
    assert lib.cs_mmap(m.ptr, p.pid, 0, H, 3, lib.CS_VMA_HUGE | lib.CS_MAP_SHARED, out) == lib.CS_EINVAL
    assert lib.cs_mmap(m.ptr, p.pid, 0, H, 3, 64, out) == lib.CS_EINVAL
    cfg = ffi.new("cs_config *", {"memory": 1 << 22, "page_size": 4096, "va_bits": 48, "thp_cow": 2})
    assert lib.cs_machine_new(cfg, ffi.new("cs_machine **")) == lib.CS_EINVAL
    assert p.regions == [] and m.stats.frames_used == 1
    m.check()


# ------------------------------------------------------------ faults

def test_huge_write_fault_takes_512_plus_1_frames_and_one_fault(machine):
    m = machine()
    p, a = _huge_writer(m)
    s = m.stats
    assert (s.frames_used, s.page_table_frames, s.data_frames) == (1 + 2 + 1 + NR, 4, NR)
    assert (s.minflt, s.thp_faults, s.thp_splits) == (1, 1, 0)
    assert p.stats == pstats(zf=1, tables=4)
    assert _thp(p) == (1, 0)
    assert table_frames(m) == [1, 2, 3, 4]
    assert data_frames(m) == {B1 + k: (1, 1, HUGE_ANON) for k in range(NR)}
    assert entries(p) == [(a // PS + k, B1 + k, True, True) for k in range(NR)]
    assert tr(p, a + 7 * PS + 5) == (B1 + 7, True, True)
    assert p.smaps() == huge_private(2048)
    assert p.smaps(a) == huge_private(2048)
    r = p.access(np.arange(a, a + H, PS, dtype=np.uint64), write=True)
    assert (r.hits, r.faults) == (NR, 0)


def test_huge_read_fault_maps_the_huge_zero_page(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(H, huge=True)
    assert p.touch(a + 3 * PS) == Outcome.ZERO_PAGE
    s = m.stats
    assert (s.frames_used, s.page_table_frames, s.data_frames) == (4, 4, 0)
    assert p.stats == pstats(zp=1, tables=4)
    assert tr(p, a + 100 * PS) == (0, False, False)
    assert entries(p) == [(a // PS + k, 0, False, False) for k in range(NR)]
    assert p.smaps() == smaps()
    assert p.regions[0].written is False
    # a write replaces it with a new huge page (Linux >= 6.13 do_huge_zero_wp_pmd), in the
    # same deposited table: 512 frames more, one zero-fill fault, no split
    assert p.touch(a + 9 * PS, write=True) == Outcome.ZERO_FILL
    assert m.stats.frames_used == 4 + NR and _thp(p) == (1, 0)
    assert p.stats == pstats(zp=1, zf=1, tables=4)
    assert tr(p, a + 9 * PS) == (B1 + 9, True, True)
    assert tr(p, a + 8 * PS) == (B1 + 8, True, True)
    assert p.smaps()["AnonHugePages"] == 2048 and p.regions[0].written is True
    assert frame_row(m, B1 + 9) == (1, 1, HUGE_ANON)


def test_huge_zero_page_write_without_a_free_block_splits_then_fills_4k(machine):
    m = machine(memory="4MiB")                     # block 1 taken by q: none left
    q = m.spawn()
    q.touch(q.mmap(H, huge=True), write=True)
    p = m.spawn()
    a = p.mmap(H, huge=True)
    assert p.touch(a) == Outcome.ZERO_PAGE
    used = m.stats.frames_used
    assert p.touch(a + 9 * PS, write=True) == Outcome.ZERO_FILL
    assert m.stats.frames_used == used + 1 and _thp(p) == (0, 1)
    assert tr(p, a + 9 * PS)[1:] == (True, True) and tr(p, a + 8 * PS) == (0, False, False)
    assert len(entries(p)) == NR


def test_fallback_to_4k_when_no_aligned_block_is_free(machine):
    m = machine(memory="4MiB")                     # blocks 0 (zero page) and 1 only
    p = m.spawn()
    b = p.mmap(600 * PS)
    p.access(np.arange(b, b + 600 * PS, PS, dtype=np.uint64), write=True)
    p.munmap(b, 599 * PS)                          # the last page (frame 605) pins block 1
    assert tr(p, b + 599 * PS) == (605, True, True)
    used = m.stats.frames_used
    a = p.mmap(H, huge=True)
    assert p.touch(a, write=True) == Outcome.ZERO_FILL
    assert m.stats.frames_used == used + 2         # a level-0 table and one 4 KiB page
    assert _thp(p) == (0, 0) and m.stats.thp_faults == 0
    f = tr(p, a)[0]
    assert frame_row(m, f) == (1, 1, ANON | EXCL)
    assert tr(p, a + PS) is None
    assert p.smaps(a)["AnonHugePages"] == 0


def test_lowest_fully_free_block_is_reused_after_frame_by_frame_frees(machine):
    m = machine()
    p, a = _huge_writer(m, spans=2)                # blocks 512 and 1024
    assert tr(p, a + H) == (1024, True, True)
    p.munmap(a + 4 * PS, PS)                       # split, one subpage freed
    p.munmap(a, H)                                 # the rest, page by page: block 512 is free again
    assert m.stats.frames_used == 1 + 2 + NR + 1
    c = p.mmap(H, huge=True)                       # same level-1 table: only the deposit is new
    assert c == a                                  # the hole left by the munmap
    p.touch(c, write=True)
    assert tr(p, c)[0] == B1
    assert m.stats.frames_used == 1 + 2 + 2 * (NR + 1)


# ------------------------------------------------------------ fork

def test_fork_shares_the_huge_entry_then_child_write_splits_and_copies_4k(machine):
    m = machine()
    p, a = _huge_writer(m)
    c = p.fork()
    s = m.stats
    # the child: root, level-2, level-1 and its own deposited table; nothing copied
    assert (s.frames_used, s.pages_copied, s.page_table_frames) == (1 + 2 + 1 + NR + 4, 0, 8)
    assert c.stats == pstats(tables=4)
    assert (c.stats.fork_ptes, c.stats.fork_tables) == (1, 1)
    assert data_frames(m) == {B1 + k: (2, 2, ANON | HUGE) for k in range(NR)}
    assert tr(p, a) == tr(c, a) == (B1, False, True)
    shared = smaps(Rss=2048, Pss=1024, Pss_Dirty=1024, Pss_Anon=1024, Shared_Dirty=2048,
                   Anonymous=2048, AnonHugePages=2048)
    assert p.smaps() == c.smaps() == shared
    # the child's write: split in the child (no new table), one 4 KiB copy
    assert c.touch(a + 7 * PS, write=True) == Outcome.COW_COPY
    assert m.stats.frames_used == 1 + 2 + 1 + NR + 4 + 1
    assert (m.stats.pages_copied, m.stats.thp_splits) == (1, 1)
    assert c.stats == pstats(copy=1, copied=1, tables=4)
    assert _thp(c) == (0, 1) and _thp(p) == (1, 0)
    assert tr(c, a + 7 * PS) == (9, True, True)     # free list: 5..8 went to the child's tables
    assert tr(c, a + 8 * PS) == (B1 + 8, False, True)
    assert tr(p, a + 7 * PS) == (B1 + 7, False, True)
    assert frame_row(m, B1 + 7) == (1, 1, ANON | HUGE)
    assert frame_row(m, B1 + 8) == (2, 2, ANON | HUGE)
    # 511 subpages mapped twice (2 kB of Pss each), one once
    assert p.smaps() == smaps(Rss=2048, Pss=1026, Pss_Dirty=1026, Pss_Anon=1026, Shared_Dirty=2044,
                              Private_Dirty=4, Anonymous=2048, AnonHugePages=2048)
    assert c.smaps() == smaps(Rss=2048, Pss=1026, Pss_Dirty=1026, Pss_Anon=1026, Shared_Dirty=2044,
                              Private_Dirty=4, Anonymous=2048)
    # the parent's write splits its own mapping and copies too
    assert p.touch(a + 8 * PS, write=True) == Outcome.COW_COPY
    assert m.stats.pages_copied == 2 and _thp(p) == (1, 1)
    # the child's subpage that only it maps now: not reused while the parent maps the folio
    assert c.touch(a + 8 * PS, write=True) == Outcome.COW_COPY
    assert frame_row(m, B1 + 8) is None            # both mappings gone: freed at once


def test_copy_huge_copies_2mib_then_parent_reuses(machine):
    m = machine(thp_cow="copy-huge")
    p, a = _huge_writer(m)
    c = p.fork()
    assert c.touch(a + 7 * PS, write=True) == Outcome.COW_COPY
    assert c.stats == pstats(copy=1, copied=NR, tables=4)
    assert _thp(c) == (1, 0) and m.stats.thp_faults == 2
    assert m.stats.frames_used == 1 + 2 + 1 + NR + 4 + NR
    assert tr(c, a + 7 * PS) == (1024 + 7, True, True)
    assert data_frames(m) == {**{B1 + k: (1, 1, ANON | HUGE) for k in range(NR)},
                              **{1024 + k: (1, 1, HUGE_ANON) for k in range(NR)}}
    assert c.smaps() == huge_private(2048)
    assert p.touch(a, write=True) == Outcome.COW_REUSE      # sole mapping: the whole page
    assert tr(p, a + 3 * PS) == (B1 + 3, True, True)
    assert data_frames(m)[B1] == (1, 1, HUGE_ANON)
    assert m.stats.thp_splits == 0


def test_copy_huge_splits_without_a_free_block_or_512_free_frames(machine):
    m = machine(memory="4MiB", thp_cow="copy-huge")
    p, a = _huge_writer(m)
    c = p.fork()
    assert c.touch(a, write=True) == Outcome.COW_COPY
    assert c.stats.pages_copied == 1 and _thp(c) == (0, 1)


def test_whole_huge_page_reused_after_the_child_exits(machine):
    m = machine()
    p, a = _huge_writer(m)
    c = p.fork()
    c.exit()
    assert p.touch(a + PS, write=True) == Outcome.COW_REUSE
    assert p.stats == pstats(zf=1, reuse=1, tables=4)
    assert _thp(p) == (1, 0)
    assert data_frames(m) == {B1 + k: (1, 1, HUGE_ANON) for k in range(NR)}
    assert tr(p, a + 100 * PS) == (B1 + 100, True, True)


def test_split_subpage_reused_once_the_other_side_is_gone(machine):
    m = machine()
    p, a = _huge_writer(m)
    c = p.fork()
    assert c.touch(a, write=True) == Outcome.COW_COPY     # child split
    p.exit()
    assert c.touch(a + PS, write=True) == Outcome.COW_REUSE
    assert c.stats.pages_copied == 1


def test_eager_fork_copies_a_huge_page_as_512_pages(machine):
    m = machine()
    p, a = _huge_writer(m)
    c = p.fork("eager")
    assert m.stats.frames_used == 1 + 2 + 1 + NR + 4 + NR
    assert c.stats == pstats(copied=NR, tables=4)
    assert tr(p, a) == (B1, True, True)
    assert all(w and d for _, _, w, d in entries(c)) and len(entries(c)) == NR
    assert c.smaps()["AnonHugePages"] == 0 and p.smaps() == huge_private(2048)


def test_odf_fork_copies_huge_entries_as_cow_does(machine):
    m = machine()
    p, a = _huge_writer(m)
    c = p.fork("odf")
    assert m.stats.page_tables_shared == 0
    assert c.stats == pstats(tables=4)
    assert tr(c, a) == (B1, False, True)
    assert c.touch(a + PS, write=True) == Outcome.COW_COPY


def test_fork_shares_the_huge_zero_page(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * H, huge=True)
    p.touch(a, write=True)
    p.touch(a + H)                                   # huge zero page
    c = p.fork()
    assert c.stats == pstats(tables=5)               # root, level-2, level-1, two deposited
    assert tr(c, a + H) == (0, False, False)
    assert c.touch(a + H + PS, write=True) == Outcome.ZERO_FILL
    assert tr(p, a + H + PS) == (0, False, False)


def test_fork_runs_out_of_frames_and_changes_nothing(machine, snapshot):
    m = machine(memory="4MiB")
    p, a = _huge_writer(m)
    used = m.stats.frames_used                       # 516 of 1023
    q = m.spawn()
    b = q.mmap((1023 - used - 1 - 3) * PS)
    q.access(np.arange(b, b + (1023 - used - 1 - 3) * PS, PS, dtype=np.uint64), write=True)
    free = m.stats.frames_free
    assert free < 4
    before = snapshot(m, p)
    with pytest.raises(cowsim.OutOfMemory):
        p.fork()
    assert snapshot(m, p) == before


# ------------------------------------------------------------ munmap, madvise, mprotect

def test_partial_munmap_splits_without_a_frame(machine):
    m = machine()
    p, a = _huge_writer(m)
    used = m.stats.frames_used
    p.munmap(a + 4 * PS, 2 * PS)
    assert m.stats.frames_used == used - 2
    assert _thp(p) == (1, 1)
    assert [(r.start - a, r.end - a, r.huge) for r in p.regions] == [(0, 4 * PS, True), (6 * PS, H, True)]
    assert len(entries(p)) == NR - 2 and tr(p, a + 4 * PS) is None
    assert tr(p, a + 6 * PS) == (B1 + 6, True, True)
    assert p.smaps() == huge_private(2040, 0)
    assert p.stats.page_table_frames == 4


def test_whole_span_munmap_frees_512_frames_and_the_deposited_table(machine):
    m = machine()
    p, a = _huge_writer(m, spans=2)
    s = m.stats
    assert s.frames_used == 1 + 2 + 2 * (NR + 1)
    p.munmap(a, H)
    assert (m.stats.frames_used, m.stats.frames_freed - s.frames_freed) == (s.frames_used - NR - 1, NR + 1)
    assert _thp(p) == (2, 0) and p.stats.page_table_frames == 4
    assert tr(p, a) is None and tr(p, a + H) == (1024, True, True)


def test_dontneed_of_the_whole_span_then_a_new_huge_fault(machine):
    m = machine()
    p, a = _huge_writer(m)
    p.madvise(a, H, "dontneed")
    assert m.stats.frames_used == 3 and p.stats.page_table_frames == 3
    assert p.touch(a, write=True) == Outcome.ZERO_FILL and _thp(p) == (2, 0)
    p.madvise(a + PS, PS, "dontneed")                # part of it: split, one page gone
    assert _thp(p) == (2, 1) and m.stats.frames_used == 3 + NR + 1 - 1


def test_mprotect_of_the_whole_span_keeps_the_huge_entry(machine):
    m = machine()
    p, a = _huge_writer(m)
    p.mprotect(a, H, "r")
    assert tr(p, a + PS) == (B1 + 1, False, True) and _thp(p) == (1, 0)
    p.mprotect(a, H, "rw")
    assert tr(p, a + PS) == (B1 + 1, True, True)
    p.mprotect(a + 3 * PS, PS, "r")                  # a region boundary inside: split
    assert _thp(p) == (1, 1)
    assert tr(p, a + 3 * PS) == (B1 + 3, False, True) and tr(p, a + 4 * PS) == (B1 + 4, True, True)
    assert m.stats.frames_used == 1 + 2 + 1 + NR


def test_madvise_dontfork_boundary_splits(machine):
    m = machine()
    p, a = _huge_writer(m)
    p.madvise(a, 8 * PS, "dontfork")
    assert _thp(p) == (1, 1) and len(p.regions) == 2
    c = p.fork()
    assert len(entries(c)) == NR - 8


def test_tlb_write_hits_set_the_huge_entrys_dirty_bit():
    m = cowsim.Machine(memory="16MiB", tlb_entries=64)
    p = m.spawn()
    a = p.mmap(H, huge=True)
    p.touch(a)                                       # huge zero page
    assert p.touch(a + PS, write=True) == Outcome.ZERO_FILL
    p.munmap(a, H)
    a = p.mmap(H, huge=True)
    p.touch(a, write=True)
    p.mprotect(a, H, "r")
    p.mprotect(a, H, "rw")
    assert tr(p, a) == (B1, True, True)
    hits = p.stats.tlb_hits
    assert p.touch(a + 2 * PS, write=True) == Outcome.HIT
    assert p.touch(a + 2 * PS, write=True) == Outcome.HIT
    assert p.stats.tlb_hits == hits + 1
    c = p.fork()                                     # flushes the parent's TLB
    assert p.touch(a + 2 * PS, write=True) == Outcome.COW_COPY
    assert c.touch(a + 2 * PS, write=False) == Outcome.HIT
    m.check()


# ------------------------------------------------------------ the Redis case

def _redis(thp_cow, n_mib=8, k=3, seed=1):
    m = cowsim.Machine(memory="32MiB", store_data=False, thp_cow=thp_cow)
    p = m.spawn()
    a = p.mmap(n_mib << 20, huge=True)
    p.access(np.arange(a, a + (n_mib << 20), H, dtype=np.uint64), write=True)
    assert p.stats.thp_faults == n_mib // 2
    c = p.fork()
    pages = random.Random(seed).sample(range((n_mib << 20) // PS), k)
    c.access(np.array([a + pg * PS for pg in pages], dtype=np.uint64), write=True)
    m.check()
    return pages, c.stats.pages_copied, m.stats.frames_used


def test_redis_copy_huge_copies_2mib_per_write_split_copies_4kib():
    pages, copied_huge, used_huge = _redis("copy-huge")
    assert sorted({pg // NR for pg in pages}) == [0, 1, 2]   # three of the four huge pages
    assert copied_huge == 3 * NR                             # 6 MiB copied for 3 writes
    pages2, copied_split, used_split = _redis("split")
    assert pages2 == pages
    assert copied_split == 3                                  # 12 KiB
    assert used_huge - used_split == 3 * NR - 3


def test_out_of_frames_under_a_huge_entry_changes_nothing(machine, snapshot):
    m = machine(memory="4MiB")                       # 1023 frames
    p, a = _huge_writer(m)
    c = p.fork()                                     # 516 + 4 used
    q = m.spawn()
    n = 1023 - 520 - 1 - 3                           # q: root, 3 tables, n pages
    b = q.mmap(n * PS)
    q.access(np.arange(b, b + n * PS, PS, dtype=np.uint64), write=True)
    assert m.stats.frames_free == 0
    before = snapshot(m, p, c)
    with pytest.raises(cowsim.OutOfMemory):
        c.touch(a + PS, write=True)                  # split + copy needs one frame
    with pytest.raises(cowsim.OutOfMemory):
        c.touch(a + PS, write=True)
    d = p.mmap(H, huge=True)
    with pytest.raises(cowsim.OutOfMemory):
        p.touch(d)                                   # the deposited table
    after = snapshot(m, p, c)
    before["proc1"]["regions"] = after["proc1"]["regions"]   # only the new region differs
    assert after == before
    assert c.touch(a + PS) == Outcome.HIT
    q.exit()
    assert c.touch(a + PS, write=True) == Outcome.COW_COPY
