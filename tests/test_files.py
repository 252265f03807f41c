"""File-backed memory: the page cache, file mappings and their fault, fork and accounting
rules (DESIGN.md 3.F: FR1-FR4, FK1, FA1, FB1, FD1, FC1, FL), exact counts on small files."""
import numpy as np
import pytest

import cowsim
from cowsim import BusError, InvalidArgument, Outcome, OutOfMemory
from rulehelpers import ANON, DIRTY, EXCL, FILE, smaps

PS = 4096
KB = PS // 1024
BASE = 1 << 30  # a 2 MiB-aligned address: windows and tables are predictable


@pytest.fixture(params=["data", "meta"])
def m(request):
    with cowsim.Machine(memory="16MiB", store_data=request.param == "data") as mach:
        yield mach
        mach.check()


def filled(m, pages, cached=True):
    """A file of `pages` pages, page i holding byte i + 1, written page by page (single-page
    folios) and synced: clean and cached (or evicted)."""
    f = m.file(pages * PS)
    for i in range(pages):
        f.write(i * PS, bytes([i % 255 + 1]) * PS)
    f.sync()
    if not cached:
        f.evict()
    return f


def test_file_write_read_sync_stats(m):
    f = m.file("16KiB", name="data")
    assert (f.size, f.pages, f.name) == (16384, 4, "data")
    assert f.stats().cached == 0 and m.stats.files == 1
    f.write(PS + 10, b"abc")
    s = f.stats()
    assert (s.cached, s.dirty, s.folios, s.mapped) == (1, 1, 1, 0)
    assert (m.stats.page_cache_frames, m.stats.page_cache_dirty, m.stats.pages_read) == (1, 1, 1)
    f.sync()
    assert (f.stats().dirty, m.stats.pages_written) == (0, 1)
    f.write(4 * PS, b"z")  # past the end: the file grows
    assert (f.size, f.pages) == (4 * PS + 1, 5)
    if m.store_data:
        assert f.read(PS + 9, 5) == b"\0abc\0"
        assert f.read(4 * PS - 1, 100) == b"\0z"  # short at the end of the file
    flags = sorted(int(x) for x in m.frames()["flags"])
    assert flags == ([FILE, FILE, FILE | DIRTY] if m.store_data else [FILE, FILE | DIRTY])  # pread caches page 3


def test_fr1_read_fault_around_maps_the_cached_window_read_only(m):
    f = filled(m, 64)
    p = m.spawn()
    a = p.mmap(64 * PS, prot="r", file=f, addr=BASE)
    assert p.touch(a + 5 * PS) is Outcome.FILE
    assert p.smaps(a) == smaps(Rss=16 * KB, Pss=16 * KB, Private_Clean=16 * KB, Pss_File=16 * KB)
    for i in range(64):
        p.touch(a + i * PS)
    s = p.stats
    assert (s.minflt, s.majflt, s.faults_file, s.page_cache_hits) == (4, 0, 4, 4)
    assert p.smaps(a) == smaps(Rss=256, Pss=256, Private_Clean=256, Pss_File=256)
    assert p.status().RssFile == 256 and p.status().RssAnon == 0
    t = p.translate(a)
    assert t.frame == f.folios()[0].first + 0 or not t.writable  # read-only page-cache page
    assert not p.translate(a + PS).writable
    if m.store_data:
        assert p.read(a + 7 * PS, 2) == b"\x08\x08"


def test_fa1_two_unrelated_processes_share_the_page_cache(m):
    f = filled(m, 64)
    procs = [m.spawn(), m.spawn()]
    for p in procs:
        a = p.mmap(64 * PS, prot="r", file=f, addr=BASE)
        p.access(np.array([a + i * PS for i in range(64)], np.uint64))
    for p in procs:
        assert p.smaps() == smaps(Rss=256, Pss=128, Shared_Clean=256, Pss_File=128)
    assert m.stats.page_cache_frames == 64 and f.stats().mapped == 64


def test_fr2_private_write_copies_from_the_cache(m):
    f = filled(m, 16)
    p = m.spawn()
    a = p.mmap(16 * PS, prot="rw", file=f, addr=BASE)
    used = m.stats.frames_used
    assert p.touch(a + 3 * PS, write=True) is Outcome.COW_COPY
    assert m.stats.frames_used == used + 4  # 3 tables + the anonymous copy
    assert (p.stats.minflt, p.stats.pages_copied, p.regions[0].written) == (1, 1, True)
    assert p.smaps(a) == smaps(Rss=KB, Pss=KB, Pss_Dirty=KB, Pss_Anon=KB, Private_Dirty=KB, Anonymous=KB)
    if m.store_data:
        p.write(a + 3 * PS, b"X")
        assert p.read(a + 3 * PS, 2) == b"X\x04" and f.read(3 * PS, 2) == b"\x04\x04"  # file unchanged


def test_fr3_write_after_read_always_copies(m):
    f = filled(m, 16)
    p = m.spawn()
    a = p.mmap(16 * PS, prot="rw", file=f, addr=BASE)
    p.touch(a)
    assert p.smaps(a)["Private_Clean"] == 16 * KB
    cache = p.translate(a).frame
    assert p.touch(a, write=True) is Outcome.COW_COPY  # refcount 2 (cache + map): never reused
    assert p.translate(a).frame != cache and p.translate(a).writable
    assert p.smaps(a) == smaps(Rss=16 * KB, Pss=16 * KB, Pss_Dirty=KB, Pss_Anon=KB, Pss_File=15 * KB,
                               Private_Clean=15 * KB, Private_Dirty=KB, Anonymous=KB)
    fr = {int(x["frame"]): (int(x["refcount"]), int(x["mapcount"])) for x in m.frames()}
    assert fr[cache] == (1, 0)


def test_fr4_shared_write_is_seen_by_every_mapper_and_pread(m):
    f = filled(m, 16)
    p, q = m.spawn(), m.spawn()
    a = p.mmap(16 * PS, prot="rw", shared=True, file=f, addr=BASE)
    b = q.mmap(16 * PS, prot="r", shared=True, file=f, addr=BASE)
    assert p.touch(a + 2 * PS, write=True) is Outcome.SHARED
    assert p.smaps(a) == smaps(Rss=KB, Pss=KB, Pss_Dirty=KB, Pss_File=KB, Private_Dirty=KB)  # that page only
    assert f.stats().dirty == 1
    assert q.touch(b) is Outcome.SHARED  # read: fault-around, read-only
    assert q.smaps(b)["Rss"] == 16 * KB
    assert p.touch(a + 3 * PS) is Outcome.SHARED and not p.translate(a + 3 * PS).writable
    f3 = p.translate(a + 3 * PS).frame
    assert p.touch(a + 3 * PS, write=True) is Outcome.SHARED  # same frame, now writable and dirty
    assert p.translate(a + 3 * PS) == cowsim.Translation(f3, True, True)
    if m.store_data:
        p.write(a + 2 * PS, b"shared")
        assert q.read(b + 2 * PS, 6) == b"shared" and f.read(2 * PS, 6) == b"shared"


def test_sync_cleans_and_write_protects_shared_entries(m):
    f = filled(m, 4)
    p = m.spawn()
    a = p.mmap(4 * PS, shared=True, file=f, addr=BASE)
    p.touch(a, write=True)
    assert p.smaps(a)["Private_Dirty"] == KB
    f.sync()
    assert p.translate(a).writable is False and p.translate(a).dirty is False
    assert p.smaps(a)["Private_Dirty"] == 0 and f.stats().dirty == 0
    before = p.stats.minflt
    assert p.touch(a, write=True) is Outcome.SHARED and p.stats.minflt == before + 1
    assert f.stats().dirty == 1


def test_dirty_cache_page_counts_dirty_in_a_private_mapping(m):
    f = m.file(PS)
    f.write(0, b"x" * PS)  # not synced: the folio is dirty
    p = m.spawn()
    a = p.mmap(PS, prot="r", file=f, addr=BASE)
    p.touch(a)
    assert p.smaps(a) == smaps(Rss=KB, Pss=KB, Pss_Dirty=KB, Pss_File=KB, Private_Dirty=KB)


def test_fk1_fork_copies_entries_of_written_private_file_regions_only(m):
    f = filled(m, 16)
    p = m.spawn()
    w = p.mmap(16 * PS, prot="rw", file=f, addr=BASE)  # will be written
    r = p.mmap(16 * PS, prot="r", file=f, addr=BASE + (2 << 20))  # read only: no anon_vma
    s = p.mmap(16 * PS, prot="rw", shared=True, file=f, addr=BASE + (4 << 20))
    p.touch(w)  # 16 page-cache pages mapped
    p.touch(w + PS, write=True)  # one anonymous copy
    p.touch(r)
    p.touch(s)
    c = p.fork()
    assert c.smaps(w)["Rss"] == p.smaps(w)["Rss"] == 16 * KB
    # each cached page is mapped 4 times (p's three regions, c's copy): Pss 1 kB each
    assert c.smaps(w) == smaps(Rss=64, Pss=15 + 2, Pss_Dirty=2, Pss_Anon=2, Pss_File=15,
                               Shared_Clean=15 * KB, Shared_Dirty=KB, Anonymous=KB)
    assert c.smaps(r)["Rss"] == 0 and c.smaps(s)["Rss"] == 0
    assert c.touch(r) is Outcome.FILE and c.stats.minflt == 1 and c.smaps(r)["Rss"] == 16 * KB
    assert c.touch(w + PS, write=True) is Outcome.COW_REUSE or c.stats.faults_cow_copy == 1


def test_eager_fork_shares_cache_pages_and_copies_anonymous_ones(m):
    f = filled(m, 16)
    p = m.spawn()
    w = p.mmap(16 * PS, prot="rw", file=f, addr=BASE)
    p.touch(w)
    p.touch(w + PS, write=True)
    used = m.stats.frames_used
    c = p.fork("eager")
    assert c.stats.pages_copied == 1
    assert m.stats.frames_used == used + 4 + 1  # 4 tables, 1 copy: the cache pages are shared
    assert c.smaps(w)["Shared_Clean"] == 15 * KB and c.smaps(w)["Private_Dirty"] == KB


@pytest.mark.parametrize("mode", ["cow", "odf", "vfork"])
def test_fork_strategies_with_file_regions_stay_consistent(m, mode):
    f = filled(m, 64)
    p = m.spawn()
    w = p.mmap(64 * PS, prot="rw", file=f, addr=BASE)
    p.access(np.array([w + i * PS for i in range(64)], np.uint64))
    p.touch(w, write=True)
    c = p.fork(mode)
    m.check()
    c.access(np.array([w + i * PS for i in range(0, 64, 3)], np.uint64), write=True)
    m.check()
    c.exit()
    assert f.stats().cached == 64


def test_fb1_past_the_end_sigbus_after_fault_around(m):
    f = filled(m, 10)
    p = m.spawn()
    a = p.mmap(16 * PS, prot="rw", file=f, addr=BASE)
    with pytest.raises(BusError) as ei:
        p.touch(a + 12 * PS)
    assert (ei.value.address, ei.value.access) == (a + 12 * PS, "read")
    s = p.stats
    assert (s.minflt, s.majflt, s.sigbus) == (0, 0, 1)
    assert p.smaps(a)["Rss"] == 10 * KB  # pages 0-9 mapped by the fault-around
    with pytest.raises(BusError):
        p.touch(a + 12 * PS, write=True)
    r = p.access(np.array([a, a + 11 * PS, a + PS], np.uint64))
    assert (r.hits, r.sigbus, r.done) == (2, 1, 3)
    with pytest.raises(BusError) as ei:
        p.access(np.array([a, a + 15 * PS], np.uint64), on_segfault="raise")
    assert ei.value.index == 1
    assert m.stats.sigbus == 4


def test_fb1_partial_last_page_reads_zeros_past_eof(m):
    f = m.file(PS + 100)
    f.write(0, b"\x07" * (PS + 100))
    p = m.spawn()
    a = p.mmap(2 * PS, shared=True, file=f, addr=BASE)
    assert p.touch(a + PS + 3000, write=True) is Outcome.SHARED  # the partial page is accessible
    assert f.size == PS + 100  # a write through the mapping does not grow the file
    if m.store_data:
        assert p.read(a + PS + 98, 4) == b"\x07\x07\0\0"


def test_fd1_dontneed_restores_the_file_bytes(m):
    f = filled(m, 4)
    p = m.spawn()
    a = p.mmap(4 * PS, prot="rw", file=f, addr=BASE)
    if m.store_data:
        p.write(a, b"changed")
    else:
        p.touch(a, write=True)
    used = m.stats.frames_used
    p.madvise(a, 4 * PS, "dontneed")
    assert m.stats.frames_used == used - 1  # the copy is freed, the cache stays
    assert p.touch(a) is Outcome.FILE and p.smaps(a)["Rss"] == 4 * KB
    if m.store_data:
        assert p.read(a, 3) == b"\x01\x01\x01"


def test_fc1_cold_read_is_a_major_fault_with_readahead(m):
    f = filled(m, 256, cached=False)
    assert f.stats().cached == 0
    p = m.spawn()
    a = p.mmap(256 * PS, prot="r", file=f, addr=BASE)
    read0 = m.stats.pages_read
    assert p.touch(a + 100 * PS) is Outcome.FILE
    s = p.stats
    assert (s.minflt, s.majflt, s.page_cache_hits) == (0, 1, 0)
    # 128 KiB of readahead: 32 pages from 100 - 16; the page 8 before its end is marked
    assert m.stats.pages_read - read0 == 32 and f.stats().cached == 32
    assert p.smaps(a)["Rss"] == 15 * KB  # window [96, 112) but the marked page 108
    assert p.translate(a + 108 * PS) is None
    assert p.touch(a + 108 * PS) is Outcome.FILE  # minor, and reads the next 32 ahead
    assert (p.stats.minflt, p.stats.majflt, f.stats().cached) == (1, 1, 64)
    # the synchronous window in single pages, the asynchronous one in 4-page folios (ra order + 2)
    assert [(x.first, x.pages) for x in f.folios()] == [(i, 1) for i in range(84, 116)] + [
        (i, 4) for i in range(116, 148, 4)]


def test_fc1_madvise_random_reads_one_page(m):
    f = filled(m, 64, cached=False)
    p = m.spawn()
    a = p.mmap(64 * PS, prot="r", file=f, addr=BASE)
    p.madvise(a, 64 * PS, "random")
    assert p.regions[0].random
    p.touch(a + 20 * PS)
    assert (p.stats.majflt, f.stats().cached, p.smaps(a)["Rss"]) == (1, 1, KB)
    if m.store_data:
        assert p.read(a + 20 * PS, 1) == b"\x15"


def test_readahead_off(m):
    with cowsim.Machine(memory="4MiB", readahead_kb=0) as m0:
        f = filled(m0, 64, cached=False)
        p = m0.spawn()
        a = p.mmap(64 * PS, prot="r", file=f, addr=BASE)
        p.touch(a)
        assert f.stats().cached == 1
        m0.check()


def test_cache_outlives_mappings_until_evict_drop_or_delete(m):
    f = filled(m, 8)
    g = filled(m, 8)
    p = m.spawn()
    a = p.mmap(8 * PS, prot="r", file=f, addr=BASE)
    p.touch(a)  # 8 pages mapped
    p.munmap(a, 4 * PS)  # 4 still mapped
    f.evict()
    assert f.stats().cached == 4  # the mapped ones stay
    m.drop_caches()
    assert g.stats().cached == 0 and f.stats().cached == 4
    g.write(0, b"d")
    m.drop_caches()
    assert g.stats().cached == 1  # dirty: stays
    free = m.stats.frames_free
    f.delete()
    assert m.stats.files == 1 and m.stats.frames_free == free  # still mapped: kept
    with pytest.raises(InvalidArgument, match="no such file"):
        f.stats()
    p.exit()
    assert m.stats.frames_free == free + 4 + 4  # its 4 cache pages and the process's tables
    assert [x.id for x in m.files] == [g.id]


@pytest.mark.parametrize("pages,large,folios", [
    (64, True, [(0, 64)]), (10, True, [(0, 8), (8, 2)]), (10, False, [(0, 1)] * 1), (1000, True, None)])
def test_fl_one_large_write_caches_large_folios(pages, large, folios):
    with cowsim.Machine(memory="16MiB", store_data=False, large_folios=large) as m:
        f = m.file()
        f.write(0, bytes(pages * PS))
        got = [(x.first, x.pages) for x in f.folios()]
        if folios is None:  # 1000 = 512 + 256 + 128 + 64 + 32 + 8
            assert [n for _, n in got] == [512, 256, 128, 64, 32, 8]
        elif large:
            assert got == folios
        else:
            assert got == [(i, 1) for i in range(pages)]
        assert all(x.dirty for x in f.folios())
        m.check()


def test_fl_dirtiness_is_per_folio(m):
    f = m.file()
    f.write(0, bytes(8 * PS))  # one 8-page folio
    f.sync()
    p = m.spawn()
    a = p.mmap(8 * PS, shared=True, file=f, addr=BASE)
    p.touch(a)  # maps all 8 read-only
    p.touch(a, write=True)
    assert f.stats().dirty == 8
    assert p.smaps(a) == smaps(Rss=32, Pss=32, Pss_Dirty=32, Pss_File=32, Private_Dirty=32)


@pytest.mark.parametrize("ps", [16384, 65536])
def test_fr1_other_page_sizes(ps):
    with cowsim.Machine(memory="64MiB", page_size=ps) as m:
        f = m.file(32 * ps, cached=True)
        p = m.spawn()
        a = p.mmap(32 * ps, prot="r", file=f, addr=BASE)
        p.access(np.array([a + i * ps for i in range(32)], np.uint64))
        n = m.fault_around // ps  # 4 with 16 KiB pages, 1 with 64 KiB (no fault-around)
        assert p.stats.minflt == 32 // max(n, 1)
        assert p.smaps()["Rss"] == 32 * ps // 1024
        m.check()


def test_file_bad_input(m):
    f = filled(m, 4)
    p = m.spawn()
    with pytest.raises(InvalidArgument, match="not page aligned"):
        p.mmap(PS, file=f, offset=100)
    with pytest.raises(InvalidArgument, match="huge"):
        p.mmap(2 << 20, file=f, huge=True)
    with pytest.raises(InvalidArgument, match="another machine"):
        with cowsim.Machine(memory="1MiB") as other:
            p.mmap(PS, file=other.file(PS))
    with pytest.raises(TypeError):
        p.mmap(PS, file="f")
    with pytest.raises(InvalidArgument, match="file mappings only"):
        p.mmap(PS, offset=PS)
    a = p.mmap(4 * PS, file=f)
    with pytest.raises(InvalidArgument):
        p.madvise(a, PS, "wipeonfork")
    with pytest.raises(OutOfMemory):
        m.file("64MiB", cached=True)
    g = m.file()
    g.delete()
    with pytest.raises(InvalidArgument, match="no such file"):
        p.mmap(PS, file=g)
    with pytest.raises(TypeError):
        f.write(0, "text")


def test_file_offset_mapping(m):
    f = filled(m, 8)
    p = m.spawn()
    a = p.mmap(2 * PS, prot="r", file=f, offset=5 * PS, addr=BASE)
    assert p.regions[0].file_id == f.id and p.regions[0].offset == 5 * PS
    p.touch(a + PS)
    if m.store_data:
        assert p.read(a, 1) == b"\x06" and p.read(a + PS, 1) == b"\x07"
    assert p.smaps(a)["Rss"] == 2 * KB


def test_fl_fresh_table_read_maps_the_whole_folio_else_the_window(m):
    f = m.file()
    f.write(0, bytes(64 * PS))  # one 64-page folio
    f.sync()
    p = m.spawn()
    a = p.mmap(64 * PS, prot="r", file=f, addr=BASE)
    p.touch(a + 30 * PS)
    assert (p.stats.minflt, p.smaps(a)["Rss"]) == (1, 256)  # the table was new: the whole folio
    q = m.spawn()
    b = q.mmap(PS, prot="r", addr=BASE)  # the table exists before the file fault
    c = q.mmap(64 * PS, prot="r", file=f, addr=BASE + 64 * PS)
    q.touch(b)
    q.touch(c + 30 * PS)
    assert q.smaps(c)["Rss"] == 16 * KB  # the window: entries [80, 96) of the table, file pages 16-31
    r = m.spawn()
    d = r.mmap(64 * PS, shared=True, file=f, addr=BASE)
    assert r.touch(d + 5 * PS, write=True) is Outcome.SHARED
    # 48 pages mapped by p and r (2 kB each), 16 also by q (4/3 kB each): 96 + 21.33
    assert r.smaps(d) == smaps(Rss=256, Pss=117, Pss_Dirty=117, Pss_File=117, Shared_Dirty=256)
    assert r.translate(d + 63 * PS).writable and f.stats().dirty == 64


def test_fl_whole_folio_from_an_unaligned_address(m):
    f = m.file()
    f.write(0, bytes(64 * PS))
    p = m.spawn()
    a = p.mmap(64 * PS, prot="r", file=f, addr=BASE)
    p.touch(a + 10 * PS + 100)  # the fit is checked from the page, not the byte
    assert p.smaps(a)["Rss"] == 256
