"""The Python surface of docs/API.md: types, geometry, identity, errors, lifetimes."""
import array
import dataclasses
import gc

import numpy as np
import pytest

import cowsim
from cowsim import (
    CowsimError, FrameFlags, InvalidArgument, InvariantViolation, MachineStats,
    OutOfMemory, Outcome, ProcessExited, ProcessStats, Region, SegmentationFault,
    Translation,
)
from rulehelpers import ANON, EXCL, PAGETABLE, PS, TOP, USER_START, entries, pstats, tr


# ------------------------------------------------------------------ geometry

def test_machine_geometry_defaults():
    with cowsim.Machine() as m:
        assert (m.memory, m.page_size, m.store_data) == (256 << 20, 4096, True)
        assert (m.nframes, m.levels, m.entries_per_table) == (65536, 4, 512)
        assert (m.user_start, m.user_end) == (USER_START, TOP)
        s = m.stats
        assert (s.frames_total, s.frames_used, s.frames_free) == (65535, 0, 65535)


@pytest.mark.parametrize("memory, nbytes", [("1MiB", 1 << 20), ("64KiB", 65536), (8192, 8192),
                                            ("4096", 4096 * 1), ("2GiB", 2 << 30)])
def test_machine_sizes(memory, nbytes):
    if nbytes == 4096:
        with pytest.raises(InvalidArgument):          # fewer than 2 frames
            cowsim.Machine(memory=memory)
        return
    with cowsim.Machine(memory=memory, store_data=False) as m:
        assert m.memory == nbytes
        assert m.nframes == nbytes // 4096
        assert m.stats.frames_total == nbytes // 4096 - 1


@pytest.mark.parametrize("kwargs", [
    {"page_size": 8192}, {"page_size": 2048}, {"memory": 4096 * 3 + 1},
    {"memory": "16KiB", "page_size": 65536}, {"memory": "lots"},
])
def test_machine_invalid_arguments(kwargs):
    with pytest.raises(ValueError) as ei:
        cowsim.Machine(**kwargs)
    assert isinstance(ei.value, InvalidArgument)


def test_machine_wrong_types():
    with pytest.raises(TypeError):
        cowsim.Machine(memory=1.5)
    with pytest.raises(TypeError):
        cowsim.Machine(page_size="4096x")


def test_minimal_machine_has_one_frame_for_one_root():
    with cowsim.Machine(memory=2 * PS) as m:
        assert m.stats.frames_total == 1
        p = m.spawn()
        assert m.stats.frames_free == 0
        with pytest.raises(OutOfMemory):
            m.spawn()
        assert [x.pid for x in m.processes] == [p.pid]
        m.check()


# ------------------------------------------------------------ repr and types

def test_repr():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        assert "Machine" in repr(m)
        assert "Process" in repr(p) and f"pid={p.pid}" in repr(p)


def test_stats_are_frozen_dataclasses():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        ms, ps = m.stats, p.stats
        assert isinstance(ms, MachineStats) and isinstance(ps, ProcessStats)
        assert [f.name for f in dataclasses.fields(MachineStats)] == [
            "frames_total", "frames_used", "frames_free", "page_table_frames", "data_frames",
            "frames_peak", "frames_allocated", "frames_freed", "pages_copied", "shared_objects",
            "processes", "forks", "minflt", "segfaults", "table_copies", "table_reuses",
            "page_tables_shared", "thp_faults", "thp_splits", "process_records", "pid_map_slots",
            "majflt", "sigbus", "page_cache_hits", "page_cache_frames", "page_cache_dirty", "files",
            "pages_read", "pages_written"]
        assert [f.name for f in dataclasses.fields(ProcessStats)] == [
            "minflt", "faults_zero_page", "faults_zero_fill", "faults_cow_copy",
            "faults_cow_reuse", "faults_shared", "segfaults", "pages_copied", "page_table_frames",
            "accesses", "tlb_hits", "tlb_misses", "tlb_flushes", "table_copies", "table_reuses",
            "page_tables_shared", "fork_ptes", "fork_tables", "thp_faults", "thp_splits",
            "faults_file", "majflt", "sigbus", "page_cache_hits"]
        with pytest.raises(dataclasses.FrozenInstanceError):
            ms.frames_used = 5
        with pytest.raises(dataclasses.FrozenInstanceError):
            ps.minflt = 5
        assert ms == MachineStats(frames_total=255, frames_used=1, frames_free=254,
                                  page_table_frames=1, data_frames=0, frames_peak=1,
                                  frames_allocated=1, frames_freed=0, pages_copied=0,
                                  shared_objects=0, processes=1, forks=0, minflt=0, segfaults=0,
                                  table_copies=0, table_reuses=0, page_tables_shared=0,
                                  thp_faults=0, thp_splits=0, process_records=1, pid_map_slots=16,
                                  majflt=0, sigbus=0, page_cache_hits=0, page_cache_frames=0,
                                  page_cache_dirty=0, files=0, pages_read=0, pages_written=0)
        assert ps == pstats(tables=1)


def test_outcome_and_frame_flag_values():
    assert [int(o) for o in (Outcome.HIT, Outcome.ZERO_PAGE, Outcome.ZERO_FILL, Outcome.COW_COPY,
                             Outcome.COW_REUSE, Outcome.SHARED, Outcome.SEGFAULT)] == list(range(7))
    assert [int(f) for f in (FrameFlags.ANON, FrameFlags.EXCLUSIVE, FrameFlags.DIRTY,
                             FrameFlags.PAGETABLE, FrameFlags.SHMEM)] == [1, 2, 4, 8, 16]


def test_touch_returns_outcomes():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(2 * PS)
        s = p.mmap(PS, shared=True)
        out = [p.touch(a), p.touch(a, write=True), p.touch(a, write=True), p.touch(s)]
        c = p.fork()
        out += [c.touch(a, write=True), p.touch(a, write=True)]
        assert out == [Outcome.ZERO_PAGE, Outcome.ZERO_FILL, Outcome.HIT, Outcome.SHARED,
                       Outcome.COW_COPY, Outcome.COW_REUSE]
        assert all(isinstance(o, Outcome) for o in out)
        m.check()


# ------------------------------------------------------------------ processes

def test_processes_pids_and_parents():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        q = m.spawn()
        c = p.fork()
        g = c.fork("eager")
        assert (p.pid, q.pid, c.pid, g.pid) == (1, 2, 3, 4)
        assert p.parent is None and q.parent is None
        assert c.parent.pid == p.pid and g.parent.pid == c.pid
        assert c.parent == p
        assert [x.pid for x in m.processes] == [1, 2, 3, 4]
        assert m.process(3) == c and m.process(3).pid == 3
        assert p.machine is m and g.machine is m
        assert all(x.alive for x in (p, q, c, g))
        c.exit()
        assert [x.pid for x in m.processes] == [1, 2, 4]
        assert m.process(3).alive is False
        assert g.parent.pid == 3                      # the parent stays recorded
        assert m.spawn().pid == 5                     # pids are not reused
        assert m.stats.processes == 4 and m.stats.forks == 2
        with pytest.raises(InvalidArgument):
            m.process(99)
        m.check()


def test_regions_and_mmap_placement():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(3 * PS)
        b = p.mmap(1, prot="r")                      # rounded up to a page
        s = p.mmap(PS + 1, prot="none", shared=True)   # 2 pages
        f = p.mmap(PS, addr=USER_START)
        assert (a, b, s, f) == (TOP - 3 * PS, TOP - 4 * PS, TOP - 6 * PS, USER_START)
        rs = p.regions
        assert all(isinstance(r, Region) for r in rs)
        assert rs == [
            Region(USER_START, USER_START + PS, "rw", False, False, False, False),
            Region(s, s + 2 * PS, "none", True, False, False, False),
            Region(b, b + PS, "r", False, False, False, False),
            Region(a, a + 3 * PS, "rw", False, False, False, False),
        ]
        # mmap touches nothing
        assert m.stats.frames_used == 1 and entries(p) == []
        m.check()


def test_mmap_top_down_takes_the_highest_gap_that_fits():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(2 * PS)                            # TOP - 2
        b = p.mmap(PS)                                # TOP - 3
        c = p.mmap(3 * PS)                            # TOP - 6
        p.munmap(b, PS)                               # a 1-page hole at TOP - 3
        assert p.mmap(2 * PS) == c - 2 * PS           # does not fit the hole
        assert p.mmap(PS) == b                        # fits the hole exactly
        p.munmap(a, 2 * PS)
        assert p.mmap(PS) == TOP - PS                 # the top is free again
        m.check()


@pytest.mark.parametrize("call", [
    lambda p: p.mmap(0),
    lambda p: p.mmap(PS, prot="rx"),
    lambda p: p.mmap(PS, addr=USER_START + 1),
    lambda p: p.mmap(PS, addr=TOP - PS),               # overlaps the existing region
    lambda p: p.mmap(2 * PS, addr=TOP - 3 * PS),       # overlaps partly
    lambda p: p.munmap(TOP - PS + 1, PS),
    lambda p: p.mprotect(TOP - PS, PS, "w"),
    lambda p: p.fork("vfork-please"),
])
def test_invalid_arguments_change_nothing(call):
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(2 * PS)
        p.touch(a, write=True)
        before = (m.stats, p.stats, p.regions, m.frames().tolist(), p.page_table().tolist())
        with pytest.raises(ValueError) as ei:
            call(p)
        assert isinstance(ei.value, InvalidArgument) and isinstance(ei.value, CowsimError)
        assert (m.stats, p.stats, p.regions, m.frames().tolist(), p.page_table().tolist()) == before
        m.check()


def test_wrong_types_raise_type_error():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(PS)
        with pytest.raises(TypeError):
            p.write(a, "str")
        with pytest.raises(TypeError):
            p.touch(float(a))
        with pytest.raises(TypeError):
            p.mmap(4096.0)
        b = p.mmap("4096")  # sizes as strings
        assert [(r.start, r.length) for r in p.regions if r.start == b] == [(b, 4096)]
        p.munmap(b, 4096)
        assert p.stats == pstats(tables=1)
        m.check()


# --------------------------------------------------------------- inspection

def test_translate_and_page_table_contents():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(4 * PS)
        assert p.translate(a) is None
        assert p.translate(USER_START) is None          # not even mapped
        p.touch(a + PS)
        p.touch(a + 2 * PS, write=True)
        t = p.translate(a + 2 * PS + 123)
        assert isinstance(t, Translation)
        assert (t.frame, t.writable, t.dirty) == (5, True, True)
        assert tr(p, a + PS) == (0, False, False)
        pt = p.page_table()
        assert isinstance(pt, np.ndarray)
        assert pt.dtype.names == ("vpage", "frame", "writable", "dirty")
        assert [pt.dtype[n] for n in pt.dtype.names] == [np.dtype("u8"), np.dtype("u8"),
                                                        np.dtype(bool), np.dtype(bool)]
        vp = a // PS
        assert pt.tolist() == [(vp + 1, 0, False, False), (vp + 2, 5, True, True)]
        c = p.fork()
        assert c.page_table().tolist() == [(vp + 1, 0, False, False), (vp + 2, 5, False, True)]
        m.check()


def test_frames_array():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(2 * PS)
        p.write(a, b"xy")
        fr = m.frames()
        assert fr.dtype.names == ("frame", "refcount", "mapcount", "flags")
        assert [fr.dtype[n] for n in fr.dtype.names] == [np.dtype("u8"), np.dtype("u4"),
                                                        np.dtype("u4"), np.dtype("u1")]
        assert fr["frame"].tolist() == [1, 2, 3, 4, 5]          # frame 0 never listed
        assert fr["flags"].tolist() == [PAGETABLE] * 4 + [ANON | EXCL]
        assert fr["refcount"].tolist() == [1, 1, 1, 1, 1]
        assert int(fr["mapcount"][4]) == 1
        p.exit()
        assert m.frames().size == 0
        assert m.frames().dtype == fr.dtype


def test_smaps_keys():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        assert list(p.smaps()) == ["Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Pss_Shmem",
                                   "Shared_Clean", "Shared_Dirty", "Private_Clean",
                                   "Private_Dirty", "Anonymous", "AnonHugePages", "Pss_File"]


# -------------------------------------------------------------------- errors

def test_error_hierarchy():
    assert issubclass(SegmentationFault, CowsimError)
    assert issubclass(OutOfMemory, CowsimError) and issubclass(OutOfMemory, MemoryError)
    assert issubclass(InvalidArgument, CowsimError) and issubclass(InvalidArgument, ValueError)
    assert issubclass(ProcessExited, CowsimError)
    assert issubclass(InvariantViolation, CowsimError)


def test_segmentation_fault_attributes():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        r = p.mmap(PS, prot="r")
        with pytest.raises(SegmentationFault) as ei:
            p.touch(r + 10, write=True)
        e = ei.value
        assert (e.address, e.access, e.reason) == (r + 10, "write", "protection")
        with pytest.raises(SegmentationFault) as ei:
            p.touch(r - 8)
        e = ei.value
        assert (e.address, e.access, e.reason) == (r - 8, "read", "unmapped")
        assert p.stats == pstats(segv=2, tables=1)
        assert m.stats.segfaults == 2
        m.check()


def test_out_of_memory_is_memory_error():
    with cowsim.Machine(memory=5 * PS) as m:
        p = m.spawn()
        a = p.mmap(PS)
        with pytest.raises(MemoryError) as ei:
            p.touch(a, write=True)                   # 4 needed, 3 free
        assert isinstance(ei.value, OutOfMemory)
        m.check()


def test_process_exited_after_exit_but_stats_remain():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(PS)
        p.touch(a, write=True)
        p.exit()
        with pytest.raises(ProcessExited):
            p.exit()
        with pytest.raises(ProcessExited):
            p.touch(a)
        with pytest.raises(ProcessExited):
            p.fork()
        assert not p.alive
        # the final counters stay readable (docs: "only its final statistics remain")
        s = p.stats
        assert (s.minflt, s.faults_zero_fill) == (1, 1)
        m.check()


# ---------------------------------------------------------- data vs metadata

def test_metadata_mode_read_is_invalid_write_counts():
    with cowsim.Machine(memory="1MiB", store_data=False) as m:
        assert m.store_data is False
        p = m.spawn()
        a = p.mmap(2 * PS)
        with pytest.raises(InvalidArgument):
            p.read(a, 1)
        assert p.stats == pstats(tables=1)           # the failed read faulted nothing
        p.write(a, b"x" * (PS + 1))
        assert p.stats == pstats(zf=2, tables=4)
        m.check()


def test_write_accepts_bytes_like_objects():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(PS)
        p.write(a, bytearray(b"ab"))
        p.write(a + 2, memoryview(b"cd"))
        assert p.read(a, 4) == b"abcd"
        assert p.read(a, 0) == b""


def test_write_accepts_any_buffer_protocol_object():
    # docs/API.md: "p.write(addr, data): any bytes-like"
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(PS)
        p.write(a, array.array("B", b"ef"))
        p.write(a + 2, np.frombuffer(b"gh", dtype=np.uint8))
        p.write(a + 4, np.array([0x64636261], dtype="<u4"))    # 4 bytes "abcd"
        assert p.read(a, 8) == b"efghabcd"


def test_read_write_roundtrip_across_pages():
    with cowsim.Machine(memory="1MiB") as m:
        p = m.spawn()
        a = p.mmap(3 * PS)
        blob = bytes(range(256)) * 48                # 12288 bytes: 3 pages
        p.write(a + 100, blob[: 3 * PS - 200])
        assert p.read(a + 100, 3 * PS - 200) == blob[: 3 * PS - 200]
        assert p.read(a, 100) == bytes(100)


# ------------------------------------------------------------------ lifetimes

def test_close_is_idempotent_and_later_use_raises():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    m.close()
    m.close()
    for call in (lambda: m.stats, lambda: m.spawn(), lambda: m.check(), lambda: m.frames(),
                 lambda: p.touch(USER_START), lambda: p.stats, lambda: p.mmap(PS)):
        with pytest.raises(CowsimError):
            call()


def test_repr_never_raises_after_close():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    m.close()
    assert "Machine" in repr(m)
    assert "Process" in repr(p)            # a repr must not raise


def test_context_manager_closes():
    with cowsim.Machine(memory="1MiB") as m:
        m.spawn()
    with pytest.raises(CowsimError):
        m.spawn()


def test_process_keeps_machine_alive():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(PS)
    del m
    gc.collect()
    p.write(a, b"alive")
    assert p.read(a, 5) == b"alive"
    p.machine.check()
