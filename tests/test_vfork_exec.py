"""vfork (the child borrows the address space) and exec (a fresh one)."""
import pytest

import cowsim

PS = 4096


def test_vfork_shares_the_space_and_suspends_the_parent():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.write(a, b"P" * 4 * PS)
    before = m.stats
    c = p.fork("vfork")
    # no table copied, nothing write-protected, no frame used
    assert m.stats.frames_used == before.frames_used and m.stats.forks == before.forks + 1
    assert c.translate(a) == cowsim.Translation(5, True, True)
    assert c.stats.page_table_frames == 4 and p.stats.page_table_frames == 0
    assert p.suspended and p.alive and "suspended" in repr(p)
    with pytest.raises(cowsim.ProcessSuspended, match="vfork"):
        p.touch(a)
    with pytest.raises(cowsim.ProcessSuspended):
        p.exit()
    assert c.touch(a, write=True) == cowsim.Outcome.HIT   # writable: no CoW under vfork
    c.write(a, b"child")
    m.check()
    c.exec()                                              # gives the space back
    assert not p.suspended
    assert p.read(a, 5) == b"child"                       # the child's write is visible
    assert c.regions == [] and c.stats.page_table_frames == 1
    assert m.stats.frames_used == before.frames_used + 1  # the child's fresh root
    c.exit()
    assert m.stats.frames_used == before.frames_used
    m.check()


def test_vfork_child_exit_resumes_parent_and_counts_its_faults():
    m = cowsim.Machine(memory="1MiB", store_data=False)
    p = m.spawn()
    a = p.mmap(8 * PS)
    c = p.fork("vfork")
    c.touch(a + PS, write=True)       # faults are the child's; pages stay with the space
    c.exit()
    assert c.stats.faults_zero_fill == 1 and p.stats.minflt == 0
    assert p.translate(a + PS) is not None and p.stats.page_table_frames == 4
    assert p.touch(a + PS, write=True) == cowsim.Outcome.HIT
    m.check()


def test_nested_vfork_and_cow_fork_of_a_vfork_child():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(2 * PS)
    p.write(a, b"x" * 2 * PS)
    c1 = p.fork("vfork")
    g = c1.fork()                     # an ordinary CoW fork of the borrowed space
    assert g.read(a, 1) == b"x" and g.touch(a, write=True) == cowsim.Outcome.COW_COPY
    c2 = c1.fork("vfork")
    assert c1.suspended and p.suspended
    c2.exit()
    assert not c1.suspended and p.suspended
    c1.exit()
    assert not p.suspended
    assert p.touch(a + PS, write=True) == cowsim.Outcome.COW_COPY   # g still shares it
    m.check()


def test_exec_after_fork_drops_the_space():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(4 * PS)
    p.write(a, b"y" * 4 * PS)
    s = p.mmap(PS, shared=True)
    p.write(s, b"s")
    c = p.fork()
    used = m.stats.frames_used
    c.exec()                          # drops its tables (root 1 + 3) and mappings, new root
    assert m.stats.frames_used == used - 3 and c.regions == []
    assert c.stats.page_table_frames == 1
    assert p.touch(a, write=True) == cowsim.Outcome.COW_REUSE   # sole owner again
    with pytest.raises(cowsim.SegmentationFault):
        c.touch(a)
    m.check()


def test_exec_of_a_vfork_child_on_a_full_machine():
    m = cowsim.Machine(memory=6 * PS)  # 5 frames: root + 3 tables + 1 page
    p = m.spawn()
    a = p.mmap(PS)
    p.touch(a, write=True)
    c = p.fork("vfork")
    with pytest.raises(cowsim.OutOfMemory):
        c.exec()
    assert p.suspended
    m.check()
    c.exit()
    assert not p.suspended
    m.check()


def test_fork_modes_constant():
    assert cowsim.FORK_MODES == ("cow", "eager", "odf", "vfork")
