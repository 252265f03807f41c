"""Regression tests for divergences between the C core and docs/SEMANTICS.md.

Each was found by the differential test (tests/test_differential.py) and reduced by
hand; expected values are exact (frame numbers included: the free list is LIFO, so the
order in which frames are freed decides which frame the next allocation gets).
"""
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
