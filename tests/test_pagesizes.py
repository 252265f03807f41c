"""Page sizes 4, 16 and 64 KiB: geometry, table frames, kB accounting, fault-around.

levels = ceil((va_bits - page_shift) / log2(page_size / 8)):
  4 KiB: ceil(36 / 9) = 4, 512 entries;   16 KiB: ceil(34 / 11) = 4, 2048 entries;
  64 KiB: ceil(32 / 13) = 3, 8192 entries.
"""
import pytest

from cowsim import OutOfMemory, Outcome
from rulehelpers import ANON, EXCL, PAGETABLE, TOP, USER_START, entries, mstat, pstats, smaps

GEOMETRY = {4096: (4, 512), 16384: (4, 2048), 65536: (3, 8192)}


@pytest.fixture(params=sorted(GEOMETRY), ids=["4k", "16k", "64k"])
def ps(request):
    return request.param


def test_geometry(machine, ps):
    m = machine(memory="16MiB", page_size=ps)
    assert (m.levels, m.entries_per_table) == GEOMETRY[ps]
    assert (m.page_size, m.nframes, m.user_start, m.user_end) == (ps, (16 << 20) // ps, USER_START, TOP)
    assert m.stats.frames_total == (16 << 20) // ps - 1


@pytest.mark.parametrize("va_bits, levels", [(39, 3), (48, 4), (57, 5)])
def test_va_bits_sets_levels_and_user_end(machine, va_bits, levels):
    m = machine(va_bits=va_bits)
    assert (m.levels, m.user_end) == (levels, 2 ** (va_bits - 1))
    p = m.spawn()
    a = p.mmap(m.page_size)
    assert a == 2 ** (va_bits - 1) - 4096
    p.touch(a, write=True)
    assert p.stats == pstats(zf=1, tables=levels)


def test_first_write_allocates_one_table_per_level(machine, ps):
    m = machine(memory="16MiB", page_size=ps)
    levels = GEOMETRY[ps][0]
    p = m.spawn()
    a = p.mmap(4 * ps)
    assert a == TOP - 4 * ps
    assert p.touch(a, write=True) == Outcome.ZERO_FILL
    # root (frame 1) + levels - 1 tables (2..levels), then the data frame
    assert p.stats == pstats(zf=1, tables=levels)
    assert mstat(m, "frames_used", "page_table_frames", "data_frames") == (levels + 1, levels, 1)
    fr = m.frames().tolist()
    assert [(f, rc, fl) for f, rc, mc, fl in fr] == \
        [(f, 1, PAGETABLE) for f in range(1, levels + 1)] + [(levels + 1, 1, ANON | EXCL)]
    assert p.translate(a + ps - 1).frame == levels + 1
    assert p.translate(a + ps) is None
    kb = ps // 1024
    assert p.smaps() == smaps(Rss=kb, Pss=kb, Pss_Dirty=kb, Pss_Anon=kb,
                              Private_Dirty=kb, Anonymous=kb)
    p.munmap(a, 4 * ps)
    assert mstat(m, "frames_used", "page_table_frames") == (1, 1)
    p.exit()
    assert m.stats.frames_used == 0


def test_region_across_a_last_level_table_boundary(machine, ps):
    # A last-level table maps entries * ps bytes (2 MiB, 32 MiB, 512 MiB).  Two
    # pages around 3 such spans (not a boundary of the level above): one more table.
    levels, entries_per = GEOMETRY[ps]
    span = entries_per * ps
    m = machine(memory="16MiB", page_size=ps)
    p = m.spawn()
    a = p.mmap(2 * ps, addr=3 * span - ps)
    p.write(a, b"b" * (2 * ps))
    assert p.stats == pstats(zf=2, tables=levels + 1)
    assert mstat(m, "frames_used", "page_table_frames") == (levels + 3, levels + 1)
    c = p.fork()
    assert c.stats == pstats(tables=levels + 1)
    p.munmap(3 * span, ps)                    # the upper last-level table is freed
    assert p.stats.page_table_frames == levels
    c.exit()
    p.exit()
    assert m.stats.frames_used == 0


def test_write_fork_and_copy_counts(machine, ps, fork_mode):
    N, k = 6, 2
    levels = GEOMETRY[ps][0]
    kb = ps // 1024
    m = machine(memory="16MiB", page_size=ps)
    p = m.spawn()
    a = p.mmap(N * ps)
    p.write(a, b"w" * (N * ps))
    c = p.fork(fork_mode)
    if fork_mode == "cow":
        assert mstat(m, "data_frames", "page_table_frames") == (N, 2 * levels)
        assert c.smaps()["Pss"] == N * kb // 2
        for i in range(k):
            assert c.touch(a + i * ps, write=True) == Outcome.COW_COPY
            assert p.touch(a + i * ps, write=True) == Outcome.COW_REUSE
        assert c.stats == pstats(copy=k, copied=k, tables=levels)
        assert mstat(m, "data_frames", "pages_copied") == (N + k, k)
    else:
        assert mstat(m, "data_frames", "page_table_frames", "pages_copied") == (2 * N, 2 * levels, N)
        assert c.smaps()["Pss"] == N * kb
    if m.store_data:
        assert c.read(a, N * ps) == b"w" * (N * ps)


def test_three_way_pss_loses_a_fixed_point_unit(machine, ps):
    # 3 pages shared 3 ways: each page adds (ps << 12) // 3, exact sum ps << 12.
    #   4 KiB: 3 * 5592405 = 16777215 -> >> 12 = 4095 B -> 3 kB (exact 4)
    #  16 KiB: 3 * 22369621 = 67108863 -> 16383 B -> 15 kB (exact 16)
    #  64 KiB: 3 * 89478485 = 268435455 -> 65535 B -> 63 kB (exact 64)
    expect_pss = {4096: 3, 16384: 15, 65536: 63}[ps]
    assert (3 * ((ps << 12) // 3)) >> 22 == expect_pss
    kb = ps // 1024
    m = machine(memory="16MiB", page_size=ps)
    p = m.spawn()
    a = p.mmap(3 * ps)
    p.write(a, b"3" * (3 * ps))
    c1, c2 = p.fork(), p.fork()
    for x in (p, c1, c2):
        assert x.smaps() == smaps(Rss=3 * kb, Pss=expect_pss, Pss_Dirty=expect_pss,
                                  Pss_Anon=expect_pss, Shared_Dirty=3 * kb, Anonymous=3 * kb)


def test_fault_around_window_in_pages(machine, ps):
    # n = 65536 // ps = 16, 4, 1 pages.  8 shared pages at the top of the
    # last table (aligned to 8): 1 fault (4 KiB), 2 faults (16 KiB), and no
    # fault-around at all with 64 KiB pages (n = 1): 8 faults.
    expect = {4096: 1, 16384: 2, 65536: 8}[ps]
    m = machine(memory="16MiB", page_size=ps)
    levels = GEOMETRY[ps][0]
    p = m.spawn()
    s = p.mmap(8 * ps, shared=True)
    p.write(s, b"f" * (8 * ps))
    c = p.fork()
    for j in range(8):
        c.touch(s + j * ps)
    assert c.stats == pstats(shared=expect, tables=levels)
    assert len(entries(c)) == 8


def test_eager_fork_oom_and_cow_success(machine, snapshot, ps):
    # 64 frames (63 allocatable).  The parent holds levels tables + 40 pages,
    # more than half; eager needs the same again, cow only `levels` frames.
    levels = GEOMETRY[ps][0]
    m = machine(memory=64 * ps, page_size=ps)
    p = m.spawn()
    a = p.mmap(40 * ps)
    p.write(a, b"e" * (40 * ps))
    assert mstat(m, "frames_used", "frames_free") == (levels + 40, 63 - levels - 40)
    before = snapshot(m, p)
    with pytest.raises(OutOfMemory):
        p.fork("eager")
    assert snapshot(m, p) == before
    c = p.fork("cow")
    assert mstat(m, "frames_used", "pages_copied") == (2 * levels + 40, 0)
    assert c.stats == pstats(tables=levels)
