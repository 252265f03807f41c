"""Accounting rule A1 (smaps / smaps_rollup in kB) with hand-computed values.

Pss is summed in the kernel's 12-bit fixed point: each page adds
(page_size << 12) // mapcount (or page_size << 12 when mapcount is 1); the sum
is shifted down by 12 and then by 10 (bytes -> kB) only at the end.  For a
4 KiB page shared 3 ways that is (4096 << 12) // 3 = 16777216 // 3 = 5592405
(exact: 5592405.33), so each page loses 1/3 of a fixed-point unit.
"""
import pytest

from cowsim import Outcome
from rulehelpers import (
    KB, PS, anon_private_dirty, anon_shared_dirty, mstat, pstats, smaps,
)

PSS_3WAY_PAGE = (PS << 12) // 3
assert PSS_3WAY_PAGE == 5592405


def _writer(m, npages, fill=b"P"):
    p = m.spawn()
    a = p.mmap(npages * PS)
    p.write(a, fill * (npages * PS))
    return p, a


def test_private_written_pages(machine):
    m = machine()
    p, a = _writer(m, 5)
    assert p.smaps() == anon_private_dirty(20)
    assert p.smaps(a + 3 * PS + 1) == anon_private_dirty(20)


def test_zero_page_is_not_in_rss(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(6 * PS)
    for i in range(6):
        p.touch(a + i * PS)
    p.touch(a, write=True)
    assert p.smaps() == anon_private_dirty(KB)        # only the one real page


def test_two_way_cow_sharing_halves_pss(machine):
    m = machine()
    p, a = _writer(m, 6)
    c = p.fork()
    assert p.smaps() == anon_shared_dirty(24, 12)
    assert c.smaps() == anon_shared_dirty(24, 12)
    c.touch(a, write=True)                              # 1 private, 5 shared in each
    # Pss = 4 + 5 * 2 = 14 kB
    expect = smaps(Rss=24, Pss=14, Pss_Dirty=14, Pss_Anon=14, Shared_Dirty=20,
                   Private_Dirty=4, Anonymous=24)
    assert p.smaps() == expect and c.smaps() == expect


def test_eager_fork_pages_are_private(machine):
    m = machine()
    p, a = _writer(m, 6)
    c = p.fork("eager")
    assert p.smaps() == anon_private_dirty(24)
    assert c.smaps() == anon_private_dirty(24)


def _three_way(m, npages):
    p, a = _writer(m, npages)
    c1 = p.fork()
    c2 = p.fork()
    return (p, c1, c2), a


@pytest.mark.parametrize("npages, pss_kb", [
    # 3 MiB = 768 pages: 768 * 5592405 = 4294967040; >> 12 = 1048575 bytes
    # (exact 1048576); >> 10 = 1023 kB (exact 1024).
    (768, 1023),
    # 12 MiB = 3072 pages: 3072 * 5592405 = 17179860160... precisely
    # 17179869184 - 1024 = 17179868160; >> 12 = 4194303 (exact 4194304);
    # >> 10 = 4095 kB where exact arithmetic gives 4096.
    (3072, 4095),
    # 4 MiB = 1024 pages: 1024 * 5592405 = 5726622720; >> 12 = 1398101;
    # >> 10 = 1365 kB: the three processes sum to 4095 kB, not 4096.
    (1024, 1365),
])
def test_three_way_sharing_fixed_point(machine, npages, pss_kb):
    assert (npages * PSS_3WAY_PAGE) >> 12 >> 10 == pss_kb      # the arithmetic above
    m = machine(memory="64MiB")
    procs, a = _three_way(m, npages)
    rss = npages * KB
    for x in procs:
        assert x.smaps() == anon_shared_dirty(rss, pss_kb)
        assert x.smaps(a) == anon_shared_dirty(rss, pss_kb)
    if npages == 1024:
        assert sum(x.smaps()["Pss"] for x in procs) == 4095
    assert mstat(m, "data_frames", "pages_copied") == (npages, 0)


def test_rollup_sums_fixed_point_before_shifting(machine):
    # Two regions of 2 pages each, every page shared 3 ways.
    # Per region: 2 * 5592405 = 11184810 -> >> 12 = 2730 -> >> 10 = 2 kB.
    # Rollup: 4 * 5592405 = 22369620 -> >> 12 = 5461 -> >> 10 = 5 kB (not 2 + 2).
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    b = p.mmap(2 * PS)
    p.write(b, b"r" * (4 * PS))                      # b then a: 4 pages
    c1 = p.fork()
    c2 = p.fork()
    for x in (p, c1, c2):
        assert x.smaps(a) == anon_shared_dirty(8, 2)
        assert x.smaps(b + PS) == anon_shared_dirty(8, 2)
        assert x.smaps() == anon_shared_dirty(16, 5)


def test_shared_memory_is_shmem_not_anonymous(machine):
    m = machine()
    p = m.spawn()
    s = p.mmap(4 * PS, shared=True)
    p.write(s, b"s" * (4 * PS))
    assert p.smaps() == smaps(Rss=16, Pss=16, Pss_Dirty=16, Pss_Shmem=16, Private_Dirty=16)
    c = p.fork()
    assert c.smaps() == smaps()                      # nothing mapped yet (K1)
    c.touch(s)                                       # fault-around maps all 4
    # mapcount 2: Shared; the frames are DIRTY (written through a fault), so
    # the child's clean entries count as dirty too.
    expect = smaps(Rss=16, Pss=8, Pss_Dirty=8, Pss_Shmem=8, Shared_Dirty=16)
    assert p.smaps() == expect and c.smaps() == expect


def test_shared_clean_and_dirty_follow_entry_or_frame(machine):
    m = machine()
    p = m.spawn()
    s = p.mmap(PS, shared=True)
    p.touch(s)                                       # clean frame
    p.touch(s, write=True)                           # hit: dirty entry, frame still clean
    c = p.fork()
    c.touch(s)                                       # clean entry
    assert p.smaps() == smaps(Rss=KB, Pss=2, Pss_Dirty=2, Pss_Shmem=2, Shared_Dirty=KB)
    assert c.smaps() == smaps(Rss=KB, Pss=2, Pss_Shmem=2, Shared_Clean=KB)
    assert p.stats == pstats(shared=1, tables=4) and c.stats == pstats(shared=1, tables=4)


def test_shared_three_way_pss_shmem(machine):
    # 768 shmem pages mapped by 3 processes: 1023 kB each, as for anon
    m = machine(memory="64MiB")
    p = m.spawn()
    s = p.mmap(768 * PS, shared=True)
    p.write(s, b"3" * (768 * PS))
    c1 = p.fork()
    c2 = p.fork()
    for c in (c1, c2):
        for j in range(0, 768, 16):                  # one fault per 16-page window
            assert c.touch(s + j * PS) == Outcome.SHARED
        # 768 pages at the top span two last-level tables: root + 2 + 2
        assert c.stats == pstats(shared=48, tables=5)
    for x in (p, c1, c2):
        assert x.smaps() == smaps(Rss=3072, Pss=1023, Pss_Dirty=1023, Pss_Shmem=1023,
                                  Shared_Dirty=3072)


def test_mixed_private_and_shared_rollup(machine):
    m = machine()
    p = m.spawn()
    a = p.mmap(2 * PS)
    s = p.mmap(2 * PS, shared=True)
    p.write(a, b"a" * (2 * PS))
    p.write(s, b"s" * (2 * PS))
    c = p.fork()
    c.touch(s)                                       # maps both shmem pages
    # anon: 2 pages m=2 -> Pss 4; shmem: 2 pages m=2 -> Pss 4
    expect = smaps(Rss=16, Pss=8, Pss_Dirty=8, Pss_Anon=4, Pss_Shmem=4,
                   Shared_Dirty=16, Anonymous=8)
    assert p.smaps() == expect and c.smaps() == expect
    assert c.smaps(a) == anon_shared_dirty(8, 4)
    assert c.smaps(s + PS) == smaps(Rss=8, Pss=4, Pss_Dirty=4, Pss_Shmem=4, Shared_Dirty=8)


def test_prot_none_and_munmap_accounting(machine):
    m = machine()
    p, a = _writer(m, 3)
    p.mprotect(a, PS, "none")
    assert p.smaps() == anon_private_dirty(12)
    assert p.smaps(a) == anon_private_dirty(4)
    p.munmap(a, 2 * PS)
    assert p.smaps() == anon_private_dirty(4)
    p.madvise(a + 2 * PS, PS, "dontneed")
    assert p.smaps() == smaps()
