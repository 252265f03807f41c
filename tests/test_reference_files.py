"""Exact tests of the reference model's file-backed memory (issue #13, DESIGN.md 3.F):
counts, smaps, frames and bytes for FR1-FR4, FK1, FA1, FB1, FD1, FC1 (readahead) and FL
(folio orders), on the model alone.  ``m.check()`` after every scenario."""
from __future__ import annotations

import pytest

from cowsim import InvalidArgument, OutOfMemory
from cowsim.reference import RefMachine
from cowsim.reference.internal import ANON, DIRTY, EXCLUSIVE, FILE, BusError, Outcome

PS = 4096
KB = PS // 1024


def machine(**kw):
    kw.setdefault("memory", "8MiB")
    return RefMachine(**kw)


def pattern(npages, seed=1):
    return bytes((i * 7 + seed) % 251 for i in range(npages * PS))


def cached_file(m, npages, data=True):
    """A file of npages pages, cached page by page and clean (as after readahead)."""
    f = m.file(npages * PS)
    if data:
        f.write(0, pattern(npages))   # large folios: rebuilt below as single pages
        f.evict()
    f.cache()
    return f


def frame_row(m, frame):
    rows = m.frames()
    return rows[rows["frame"] == frame][0]


# ------------------------------------------------------------------ files and the cache

def test_file_api_and_cache_counts():
    m = machine()
    f = m.file("40KiB")
    assert (f.id, f.size, f.pages) == (1, 40960, 10)
    assert f.stats().cached == 0 and m.stats.files == 1
    f.cache(PS, 2 * PS)
    assert f.folios() == [(1, 1, False), (2, 1, False)]
    assert m.stats.pages_read == 2 and m.stats.page_cache_frames == 2
    # frames in increasing page index
    assert [int(r["frame"]) for r in m.frames()] == [1, 2]
    assert all(int(r["flags"]) == FILE and (r["refcount"], r["mapcount"]) == (1, 0) for r in m.frames())
    m.check()
    m2 = machine(memory=f"{4 * PS}")
    with pytest.raises(OutOfMemory):
        m2.file(10 * PS, cached=True)
    assert m2.files == [] and m2.stats.frames_used == 0


def test_write_read_sync_evict_bytes():
    m = machine()
    f = m.file(0)
    f.write(100, b"hello")
    assert f.size == 105 and f.pages == 1
    assert f.read(98, 20) == b"\0\0hello"
    assert f.folios() == [(0, 1, True)] and m.stats.page_cache_dirty == 1
    f.sync()
    assert f.folios() == [(0, 1, False)] and m.stats.pages_written == 1
    f.evict()
    assert f.folios() == [] and m.stats.page_cache_frames == 0
    assert f.read(100, 5) == b"hello" and m.stats.pages_read == 1
    m.check()


def test_delete_frees_with_last_mapping_and_drop_caches():
    m = machine()
    f = cached_file(m, 4)
    g = cached_file(m, 2)
    p = m.spawn()
    a = p.mmap(4 * PS, "r", file=f)
    p.touch(a)
    f.delete()
    assert m.files == [g] and m.stats.files == 1 and m.stats.page_cache_frames == 6
    with pytest.raises(InvalidArgument):
        f.write(0, b"x")
    m.drop_caches()                   # g's pages go; f's unmapped pages too (clean)
    assert m.stats.page_cache_frames == 4 and g.folios() == []
    p.munmap(a, 4 * PS)               # the last mapping: f's cache goes
    assert m.stats.page_cache_frames == 0
    m.check()


# ------------------------------------------------------------------ FR1 fault-around

@pytest.mark.parametrize("shared", [False, True])
def test_fr1_read_fault_around(shared):
    m = machine()
    f = cached_file(m, 64)
    p = m.spawn()
    a = p.mmap(64 * PS, "r", shared=shared, file=f)
    kinds = [p.touch(a + i * PS) for i in range(64)]
    want = Outcome.SHARED if shared else Outcome.FILE
    assert kinds == ([want] + [Outcome.HIT] * 15) * 4
    s = p.stats
    assert (s.minflt, s.majflt, s.page_cache_hits) == (4, 0, 4)
    assert (s.faults_file, s.faults_shared) == ((0, 4) if shared else (4, 0))
    sm = p.smaps()
    assert (sm["Rss"], sm["Pss"], sm["Private_Clean"], sm["Anonymous"], sm["Pss_File"]) == (256, 256, 256, 0, 256)
    st = p.status()
    st = st if isinstance(st, dict) else st.as_dict() if hasattr(st, "as_dict") else vars(st)
    assert st == dict(VmRSS=256, RssAnon=0, RssFile=256, RssShmem=0, VmPTE=3 * KB)
    assert all(not row["writable"] for row in p.page_table())
    m.check()


def test_fr1_window_clipped_by_region_table_and_eof():
    m = machine()
    f = cached_file(m, 10)
    p = m.spawn()
    a = p.mmap(16 * PS, "r", file=f, offset=0)
    p.touch(a + 5 * PS)
    assert len(p.page_table()) == 10          # EOF cuts the window
    q = m.spawn()
    b = q.mmap(3 * PS, "r", file=f, offset=4 * PS)
    q.touch(b + PS)
    assert [int(r["vpage"]) - b // PS for r in q.page_table()] == [0, 1, 2]   # region
    m.check()


# ------------------------------------------------------------------ FR2/FR3 private writes

def test_fr2_private_write_copies_from_cache():
    m = machine()
    f = cached_file(m, 4)
    p = m.spawn()
    a = p.mmap(4 * PS, "rw", file=f)
    assert p.touch(a + PS, write=True) == Outcome.COW_COPY
    assert len(p.page_table()) == 1           # no fault-around
    s = p.stats
    assert (s.faults_cow_copy, s.pages_copied, s.minflt, s.page_cache_hits) == (1, 1, 1, 1)
    assert p.regions[0].written
    assert p.read(a + PS, 8) == pattern(4)[PS:PS + 8]
    p.write(a + PS, b"X")
    assert f.read(PS, 1) == pattern(4)[PS:PS + 1]     # the file is unchanged
    assert p.smaps()["Anonymous"] == 4 and p.smaps()["Pss_File"] == 0
    m.check()


def test_fr3_write_after_read_always_copies():
    m = machine()
    f = cached_file(m, 16)
    p = m.spawn()
    a = p.mmap(16 * PS, "rw", file=f)
    p.touch(a)
    before = p.smaps()
    cache = int(p.translate(a).frame)
    assert p.touch(a, write=True) == Outcome.COW_COPY
    after = p.smaps()
    assert after["Private_Clean"] == before["Private_Clean"] - 4
    assert after["Private_Dirty"] == before["Private_Dirty"] + 4
    assert after["Anonymous"] == before["Anonymous"] + 4
    row = frame_row(m, cache)
    assert (row["refcount"], row["mapcount"], row["flags"]) == (1, 0, FILE)
    new = frame_row(m, int(p.translate(a).frame))
    assert new["flags"] == ANON | EXCLUSIVE
    m.check()


# ------------------------------------------------------------------ FR4 shared mappings

def test_fr4_shared_write_and_write_after_read():
    m = machine()
    f = cached_file(m, 16)
    p = m.spawn()
    q = m.spawn()
    a = p.mmap(16 * PS, "rw", shared=True, file=f)
    b = q.mmap(16 * PS, "r", shared=True, file=f)
    assert p.touch(a + 2 * PS, write=True) == Outcome.SHARED
    assert len(p.page_table()) == 1 and p.translate(a + 2 * PS).dirty
    p.write(a + 2 * PS, b"shared!")
    assert f.read(2 * PS, 7) == b"shared!" and q.read(b + 2 * PS, 7) == b"shared!"
    assert f.folios()[2] == (2, 1, True)
    p.touch(a + 5 * PS)                     # read: read-only, clean, fault-around
    t = p.translate(a + 5 * PS)
    assert not t.writable and not t.dirty
    fr = t.frame
    assert p.touch(a + 5 * PS, write=True) == Outcome.SHARED
    t = p.translate(a + 5 * PS)
    assert (t.frame, t.writable, t.dirty) == (fr, True, True)
    assert p.stats.faults_shared == 3
    f.sync()                                # page_mkclean: clean and read-only again
    assert not p.translate(a + 5 * PS).writable and m.stats.page_cache_dirty == 0
    assert p.touch(a + 5 * PS, write=True) == Outcome.SHARED
    m.check()


def test_mprotect_shared_file_rw_only_dirty_entries_writable():
    m = machine()
    f = cached_file(m, 16)
    p = m.spawn()
    a = p.mmap(16 * PS, "rw", shared=True, file=f)
    p.touch(a)                              # 16 entries, clean
    p.touch(a + PS, write=True)
    p.mprotect(a, 16 * PS, "r")
    p.mprotect(a, 16 * PS, "rw")
    w = [bool(r["writable"]) for r in p.page_table()]
    assert w == [False, True] + [False] * 14
    m.check()


# ------------------------------------------------------------------ FK1 fork

def test_fk1_fork_of_written_private_file_region_copies_all():
    m = machine()
    f = cached_file(m, 16)
    p = m.spawn()
    a = p.mmap(16 * PS, "rw", file=f)
    p.touch(a)                              # 16 cache pages mapped
    p.touch(a + 3 * PS, write=True)         # one anonymous copy: anon_vma
    c = p.fork()
    assert c.smaps()["Rss"] == p.smaps()["Rss"] == 64
    sm = c.smaps()
    assert (sm["Shared_Clean"], sm["Shared_Dirty"], sm["Pss"]) == (60, 4, 32)
    assert c.stats.fork_ptes == 16
    assert c.touch(a + 3 * PS, write=True) == Outcome.COW_COPY
    assert p.touch(a + 3 * PS, write=True) == Outcome.COW_REUSE
    m.check()


@pytest.mark.parametrize("shared", [False, True])
def test_fk1_unwritten_or_shared_not_copied(shared):
    m = machine()
    f = cached_file(m, 16)
    p = m.spawn()
    a = p.mmap(16 * PS, "rw" if shared else "r", shared=shared, file=f)
    if shared:
        p.touch(a, write=True)
    p.touch(a + PS)
    c = p.fork()
    assert c.smaps()["Rss"] == 0
    assert c.touch(a + PS) in (Outcome.FILE, Outcome.SHARED) and c.stats.minflt == 1
    assert len(c.page_table()) == 16 - (1 if shared else 0) or len(c.page_table()) == 16
    m.check()


@pytest.mark.parametrize("mode", ["eager", "odf", "vfork"])
def test_fork_modes_share_cache_pages(mode):
    m = machine()
    f = cached_file(m, 16)
    p = m.spawn()
    a = p.mmap(16 * PS, "rw", file=f)
    p.touch(a)
    p.touch(a + PS, write=True)
    used = m.stats.frames_used
    c = p.fork(mode)
    if mode == "eager":                     # the anonymous page copied, cache pages shared
        assert m.stats.frames_used == used + 1 + 4 and c.stats.pages_copied == 1
    assert c.read(a + 2 * PS, 4) == pattern(16)[2 * PS:2 * PS + 4]
    if mode == "vfork":
        c.exit()
    m.check()


# ------------------------------------------------------------------ FA1

def test_fa1_two_processes_one_file():
    m = machine()
    f = cached_file(m, 64)
    ps = [m.spawn() for _ in range(2)]
    for p in ps:
        a = p.mmap(64 * PS, "r", file=f)
        for i in range(0, 64, 16):
            p.touch(a + i * PS)
    for p in ps:
        sm = p.smaps()
        assert (sm["Rss"], sm["Pss"], sm["Shared_Clean"], sm["Anonymous"], sm["Pss_File"]) == (256, 128, 256, 0, 128)
    rows = m.frames()
    cache = rows[rows["flags"] & FILE != 0]
    assert len(cache) == 64 and set(cache["refcount"]) == {3} and set(cache["mapcount"]) == {2}
    m.check()


# ------------------------------------------------------------------ FB1 past EOF

@pytest.mark.parametrize("shared", [False, True])
def test_fb1_sigbus_after_fault_around(shared):
    m = machine()
    f = cached_file(m, 10)
    p = m.spawn()
    a = p.mmap(16 * PS, "rw", shared=shared, file=f)
    with pytest.raises(BusError) as e:
        p.touch(a + 12 * PS)
    assert (e.value.address, e.value.access) == (a + 12 * PS, "read")
    assert p.smaps()["Rss"] == 40
    s = p.stats
    assert (s.minflt, s.majflt, s.sigbus, s.accesses) == (0, 0, 1, 1)
    with pytest.raises(BusError):
        p.touch(a + 11 * PS, write=True)
    assert p.stats.sigbus == 2 and m.stats.sigbus == 2 and p.smaps()["Rss"] == 40
    m.check()


def test_fb1_partial_last_page():
    m = machine()
    f = m.file(PS + 100)
    f.write(0, b"a" * (PS + 100))
    p = m.spawn()
    a = p.mmap(2 * PS, "rw", shared=True, file=f)
    assert p.read(a + PS + 98, 4) == b"aa\0\0"
    p.write(a + PS + 100, b"beyond")
    f.sync()
    assert f.size == PS + 100 and f.read(PS + 98, 10) == b"aa"
    m.check()


def test_sigbus_in_batch():
    import numpy as np
    m = machine()
    f = cached_file(m, 2)
    p = m.spawn()
    a = p.mmap(4 * PS, "r", file=f)
    addrs = np.array([a, a + 3 * PS, a + PS], dtype=np.uint64)
    r = p.access(addrs, outcomes=True)
    assert list(r.outcomes) == [Outcome.FILE, Outcome.SIGBUS, Outcome.HIT]
    assert (r.file, r.sigbus, r.hits, r.done) == (1, 1, 1, 3)
    with pytest.raises(BusError) as e:
        p.access(addrs, on_segfault="raise")
    assert e.value.index == 1
    m.check()


# ------------------------------------------------------------------ FD1 dontneed

def test_fd1_dontneed_restores_file_bytes():
    m = machine()
    f = cached_file(m, 16)
    p = m.spawn()
    a = p.mmap(16 * PS, "rw", file=f)
    p.write(a + PS, b"private")
    assert p.read(a + PS, 7) == b"private"
    used = m.stats.frames_used
    p.madvise(a, 16 * PS, "dontneed")
    assert m.stats.frames_used == used - 1 and p.smaps()["Rss"] == 0
    assert m.stats.page_cache_frames == 16
    assert p.read(a + PS, 7) == pattern(16)[PS:PS + 7]
    assert p.stats.faults_file == 1 and len(p.page_table()) == 16
    m.check()


# ------------------------------------------------------------------ FC1 cold cache

def test_fc1_major_fault_and_readahead():
    m = machine(memory="64MiB", readahead_kb=8192)
    f = m.file(4096 * PS)
    p = m.spawn()
    a = p.mmap(4096 * PS, "r", file=f)
    assert p.touch(a + 3000 * PS) == Outcome.FILE
    s = p.stats
    assert (s.minflt, s.majflt, s.faults_file, s.page_cache_hits) == (0, 1, 1, 0)
    # window: max(0, 3000 - 1024) = 1976 .. 1976 + 2048, cut at EOF: 1976..4023
    assert f.stats().cached == 2048 and m.stats.pages_read == 2048
    assert f.folios()[0] == (1976, 1, False) and f.folios()[-1] == (4023, 1, False)
    assert [int(r["vpage"]) - a // PS for r in p.page_table()] == list(range(2992, 3008))
    assert p.touch(a + 2990 * PS) == Outcome.FILE and p.stats.page_cache_hits == 1
    assert m.stats.majflt == 1 and m.stats.minflt == 1
    m.check()


def test_fc1_readahead_window_mark_and_async():
    m = machine(readahead_kb=128)           # 32 pages: mark at start + nr - 8
    f = m.file(100 * PS)
    p = m.spawn()
    a = p.mmap(100 * PS, "r", file=f, addr=1 << 30)
    p.touch(a + 20 * PS)                    # window 4..35, mark at 28
    assert f.stats().cached == 32 and f.marks == {28}
    # the fault-around window 16..31 skips the marked page
    assert [int(r["vpage"]) - a // PS for r in p.page_table()] == [16, 17, 18, 19, 20, 21, 22, 23, 24,
                                                                  25, 26, 27, 29, 30, 31]
    assert p.touch(a + 28 * PS) == Outcome.FILE     # minor, async readahead of 36..67
    assert p.stats.majflt == 1 and p.stats.page_cache_hits == 1
    assert f.stats().cached == 64 and f.marks == {36}
    m.check()


def test_fc1_random_reads_one_page():
    m = machine()
    f = m.file(64 * PS)
    p = m.spawn()
    a = p.mmap(64 * PS, "r", file=f)
    p.madvise(a, 64 * PS, "random")
    p.touch(a + 5 * PS)
    assert f.stats().cached == 1 and p.stats.majflt == 1 and len(p.page_table()) == 1
    p.madvise(a, 64 * PS, "normal")
    p.touch(a + 40 * PS)
    assert f.stats().cached == 33
    m.check()


def test_fc1_readahead_takes_what_is_left():
    m = machine(memory=f"{24 * PS}")       # 22 frames free after spawn
    f = m.file(64 * PS)
    p = m.spawn()
    a = p.mmap(64 * PS, "r", file=f, addr=1 << 30)
    p.touch(a)      # 2 upper tables; readahead keeps the leaf's frame: pages 0..18; then the leaf
    assert [h for h, _n, _d in f.folios()] == list(range(19)) and f.marks == set()
    assert m.stats.frames_free == 0 and len(p.page_table()) == 16 and p.stats.majflt == 1
    m.check()


def test_fc1_out_of_memory_changes_nothing():
    m = machine(memory=f"{5 * PS}")        # 3 free after spawn: the fault needs 4
    f = m.file(64 * PS)
    p = m.spawn()
    a = p.mmap(64 * PS, "r", file=f)
    before = (m.stats, m.frames().tolist())
    with pytest.raises(OutOfMemory):
        p.touch(a)
    assert (m.stats, m.frames().tolist()) == before and p.stats.accesses == 0
    m.check()


# ------------------------------------------------------------------ FL large folios

def test_fl_write_folio_orders():
    m = machine()
    f = m.file(0)
    f.write(0, bytes(64 * PS))
    assert f.folios() == [(0, 64, True)]
    g = m.file(0)
    g.write(0, bytes(10 * PS))
    assert [(h, n) for h, n, _ in g.folios()] == [(0, 8), (8, 2)]
    h = m.file(0)
    h.write(3 * PS, bytes(13 * PS))         # 3 | 4..7 | 8..15
    assert [(x, n) for x, n, _ in h.folios()] == [(3, 1), (4, 4), (8, 8)]
    k = m.file(16 * PS)
    k.cache(5 * PS, PS)
    k.write(0, bytes(16 * PS))              # page 5 cached: lowered around it
    assert [(x, n) for x, n, _ in k.folios()] == [(0, 4), (4, 1), (5, 1), (6, 2), (8, 8)]
    n = machine(large_folios=False).file(0)
    n.write(0, bytes(4 * PS))
    assert len(n.folios()) == 4
    m.check()


def test_fl_read_fault_maps_whole_folio_in_fresh_table():
    m = machine()
    f = m.file(0)
    f.write(0, pattern(64))
    f.sync()
    p = m.spawn()
    a = p.mmap(64 * PS, "r", file=f)
    p.touch(a + 10 * PS)
    assert len(p.page_table()) == 64 and p.stats.minflt == 1
    assert p.read(a + 63 * PS, 4) == pattern(64)[63 * PS:63 * PS + 4]
    # once the table exists, fault-around as FR1
    q = m.spawn()
    b = q.mmap(128 * PS, "r", file=f)
    q.munmap(b + 64 * PS, 64 * PS)
    q.mmap(PS, "r", file=f, addr=b + 64 * PS)   # a page in the same table
    q.touch(b + 64 * PS)
    q.touch(b + 10 * PS)
    assert len(q.page_table()) == 1 + 16
    m.check()


def test_fl_shared_write_dirties_and_maps_whole_folio():
    m = machine()
    f = m.file(0)
    f.write(0, bytes(16 * PS))
    f.sync()
    p = m.spawn()
    a = p.mmap(16 * PS, "rw", shared=True, file=f)
    assert p.touch(a + 3 * PS, write=True) == Outcome.SHARED
    assert len(p.page_table()) == 16 and all(r["writable"] and r["dirty"] for r in p.page_table())
    assert p.smaps()["Private_Dirty"] == 64 and f.folios() == [(0, 16, True)]
    rows = m.frames()
    assert set(rows[rows["flags"] & FILE != 0]["flags"]) == {FILE | DIRTY}
    m.check()


def test_fl_folio_across_the_table_gets_the_window():
    """FILE_MEASUREMENTS f6: a 256-page folio mapped across a table boundary: the window."""
    m = machine(memory="16MiB")
    f = m.file(0)
    f.write(0, bytes(768 * PS))              # folios 0..511, 512..767
    f.sync()
    p = m.spawn()
    a = p.mmap(256 * PS, "r", file=f, offset=512 * PS, addr=(1 << 30) - 32 * PS)
    p.touch(a + 20 * PS)                    # virtual index 500 of its table
    assert p.smaps()["Rss"] == 64
    p.touch(a + 40 * PS)
    assert p.smaps()["Rss"] == 128
    m.check()


def test_readahead_folios_grow_and_marks_are_per_folio():
    m = machine(memory="16MiB", readahead_kb=128)
    f = m.file(4096 * PS)
    p = m.spawn()
    a = p.mmap(4096 * PS, "r", file=f, addr=1 << 30)
    p.touch(a + 3000 * PS)                  # [2984, 3016), mark 3008
    assert f.marks == {3008}
    p.touch(a + 3008 * PS)                  # async: [3016, 3048) in 4-page folios, mark 3016
    assert f.marks == {3016} and f.folios()[-1] == (3044, 4, False)
    p.touch(a + 3018 * PS)                  # a page of the marked folio: async again (order 4)
    assert f.marks == {3048} and (3056, 16, False) in f.folios()
    m.check()
