"""Regression tests for divergences between the C core and docs/SEMANTICS.md.

Each was found by the differential test (tests/test_differential.py) and reduced by
hand; expected values are exact (frame numbers included: the free list is LIFO, so the
order in which frames are freed decides which frame the next allocation gets).
"""
import pytest

import cowsim

PS = 4096
PAGETABLE = int(cowsim.FrameFlags.PAGETABLE)
ANON_EXCL = int(cowsim.FrameFlags.ANON | cowsim.FrameFlags.EXCLUSIVE)


def test_exit_frees_tables_before_shmem_pages():
    """SEMANTICS.md (munmap and exit): "exit zaps all regions, frees every table including
    the root, drops the process's shmem object references" -- in that order, as Linux
    does (exit_mmap: unmap_vmas, free_pgtables; the pgd at mmdrop; the shmem pages only
    when the last file reference goes, after remove_vma/fput).

    Frames: root 1, tables 2-4, shmem page 5.  Freed: 4, 3, 2, 1 (tables bottom-up, root
    last), then 5 (the object's last reference) -- so the next allocation gets frame 5.
    """
    m = cowsim.Machine(memory=24 * PS)
    p = m.spawn()
    a = p.mmap(PS, shared=True)
    p.touch(a)
    assert m.frames().tolist() == [(1, 1, 0, PAGETABLE), (2, 1, 0, PAGETABLE),
                                   (3, 1, 0, PAGETABLE), (4, 1, 0, PAGETABLE),
                                   (5, 2, 1, int(cowsim.FrameFlags.SHMEM))]
    p.exit()
    q = m.spawn()
    assert m.frames().tolist() == [(5, 1, 0, PAGETABLE)]   # core: [(1, 1, 0, 8)]
    assert q.stats.page_table_frames == 1


def test_munmap_frees_tables_before_shmem_pages():
    """munmap: zap, then free the tables whose span no longer overlaps a region, then
    release the shmem object that lost its last region -- the same order as exit (and as
    Linux: vms_clear_ptes = unmap_vmas + free_pgtables, then remove_vma -> fput).

    Frames: root 1, tables 2-4, shmem page 5.  munmap frees 4, 3, 2 then 5; a new write
    fault then takes tables 5, 2, 3 and the data frame 4.
    """
    m = cowsim.Machine(memory=24 * PS)
    p = m.spawn()
    a = p.mmap(PS, shared=True)
    p.touch(a)
    p.munmap(a, PS)
    b = p.mmap(PS)
    p.touch(b, write=True)
    assert p.translate(b) == cowsim.Translation(4, True, True)   # core: frame 5
    assert m.frames().tolist() == [(1, 1, 0, PAGETABLE), (2, 1, 0, PAGETABLE),
                                   (3, 1, 0, PAGETABLE), (4, 1, 1, ANON_EXCL),
                                   (5, 1, 0, PAGETABLE)]


# ---------------------------------------------------------------- THP, thp_cow="copy-huge"
# Machine(thp_cow="copy-huge") stands for kernels before 5.8 (before commit 3917c80280c9
# "thp: change CoW semantics for anon-THP").  Found by the THP differential work: the core
# first split the huge zero page and, without a free block, split and copied one page, where
# those kernels' do_huge_pmd_wp_page allocates a huge page / copies every subpage.  Fixed.

H = 2 << 20


def test_copy_huge_write_to_the_huge_zero_page_allocates_a_huge_page():
    """Frames: tables 2, 3 and the deposited table 4 (read fault: the huge zero page); the
    write takes the first aligned block 512..1023 and keeps the deposited table."""
    m = cowsim.Machine(memory="16MiB", thp_cow="copy-huge")
    p = m.spawn()
    a = p.mmap(H, huge=True)
    assert p.touch(a) == cowsim.Outcome.ZERO_PAGE
    assert p.touch(a + PS, write=True) == cowsim.Outcome.ZERO_FILL
    assert (p.stats.thp_faults, p.stats.thp_splits) == (1, 0)
    assert p.translate(a) == cowsim.Translation(512, True, True)
    assert p.smaps()["AnonHugePages"] == 2048


def test_copy_huge_without_a_free_block_copies_every_subpage():
    """2047 frames: block 1 (p's huge page), block 2 (q's, one subpage unmapped, so not
    free), block 3 does not fit.  Over 1000 single frames stay free."""
    m = cowsim.Machine(memory=2047 * PS, thp_cow="copy-huge")
    p = m.spawn()
    a = p.mmap(H, huge=True)
    p.touch(a, write=True)
    c = p.fork()
    q = m.spawn()
    b = q.mmap(H, huge=True)
    q.touch(b, write=True)
    q.munmap(b + PS, PS)
    assert m.stats.frames_free >= 512 and m.stats.thp_faults == 2
    assert c.touch(a + 7 * PS, write=True) == cowsim.Outcome.COW_COPY
    assert c.stats.pages_copied == 512
    assert all(row[2] for row in c.page_table().tolist())
