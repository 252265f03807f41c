"""Regression tests for the defects of the outside audit (issue #11), one per defect.

Each test failed on main before its fix (the first one killed the interpreter with
SIGSEGV, so it runs in a subprocess).  Host-fork deadlocks: tests/test_host_fork.py.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import cowsim
from cowsim.errors import CowsimError, InvalidArgument, ProcessExited, ProcessSuspended

PS = 4096


@pytest.fixture
def two():
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(4 * PS)
    return m, p, a


# -- 1. replay with pid 0 first: NULL dereference in batch.c run() ------------------------

_PID0 = """
import numpy as np, cowsim
m = cowsim.Machine(memory="1MiB", page_size={ps}, tlb_entries={tlb})
p = m.spawn(); a = p.mmap(4 * {ps})
try:
    m.replay(np.array([0], np.int32), np.array([a], np.uint64), write={write}, outcomes={outcomes})
except cowsim.errors.InvalidArgument as e:
    assert e.index == 0 and e.result.done == 0, (e.index, e.result)
    print("ok", e)
m.check()
"""


@pytest.mark.parametrize("ps,tlb,write,outcomes", [
    (4096, 64, False, False), (4096, 0, False, True), (16384, 64, "np.array([True])", False),
    (4096, 64, True, True),
])
def test_replay_with_pid_0_first_raises_cleanly(ps, tlb, write, outcomes, tmp_path):
    code = _PID0.format(ps=ps, tlb=tlb, write=write, outcomes=outcomes)
    # (run from an empty directory: "python -c" puts the cwd first on sys.path, and the
    # repository root's cowsim/ has no compiled core after a regular install)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.startswith("ok replay(<1 accesses>): at index 0 (pid 0): no such process")


@pytest.mark.parametrize("bad", [0, -1, -2**31, 2**31 - 1, 99])
def test_replay_whose_first_pid_is_not_a_process(two, bad):
    m, p, a = two
    with pytest.raises(InvalidArgument, match=rf"at index 0 \(pid {bad}\): no such process") as e:
        m.replay(np.array([bad, p.pid], np.int32), np.array([a, a], np.uint64))
    assert e.value.index == 0 and e.value.result.done == 0 and e.value.result.zero_page == 0
    assert p.stats.accesses == 0
    m.check()


# -- replay stops carry .index and .result --------------------------------------------------

def test_replay_stop_at_an_exited_pid_carries_index_and_result(two):
    m, p, a = two
    c = p.fork()
    c.exit()
    pids = np.array([p.pid, p.pid, c.pid, p.pid], np.int32)
    with pytest.raises(ProcessExited, match=rf"at index 2 \(pid {c.pid}\)") as e:
        m.replay(pids, np.array([a, a + PS, a, a], np.uint64))
    assert e.value.index == 2
    r = e.value.result
    assert (r.done, r.zero_page, r.hits) == (2, 2, 0)   # two reads of untouched pages
    assert p.stats.accesses == 2
    m.check()


def test_replay_stop_at_a_suspended_pid_carries_index_and_result(two):
    m, p, a = two
    c = p.fork("vfork")
    pids = np.array([c.pid, p.pid], np.int32)
    with pytest.raises(ProcessSuspended) as e:
        m.replay(pids, np.array([a, a], np.uint64), write=True)
    assert e.value.index == 1 and e.value.result.done == 1 and e.value.result.zero_fill == 1
    m.check()


# -- 2. misaligned arrays: rejected, never read through a misaligned pointer ----------------

def _misaligned(dtype, values):
    values = np.asarray(values, dtype)
    buf = bytearray(values.nbytes + 1)
    arr = np.frombuffer(buf, dtype=dtype, count=len(values), offset=1)
    arr[:] = values
    assert arr.flags.c_contiguous and not arr.flags.aligned
    return arr


def test_access_rejects_misaligned_addresses(two):
    m, p, a = two
    with pytest.raises(InvalidArgument, match="addrs is not aligned to its 8-byte items"):
        p.access(_misaligned(np.uint64, [a, a + PS]))
    assert p.stats.accesses == 0
    m.check()


def test_replay_rejects_misaligned_pids_and_addresses(two):
    m, p, a = two
    with pytest.raises(InvalidArgument, match="pids is not aligned to its 4-byte items"):
        m.replay(_misaligned(np.int32, [p.pid]), np.array([a], np.uint64))
    with pytest.raises(InvalidArgument, match="addrs is not aligned"):
        m.replay(np.array([p.pid], np.int32), _misaligned(np.uint64, [a]))
    # The aligned copy works and counts exactly.
    r = m.replay(np.array([p.pid], np.int32), _misaligned(np.uint64, [a]).copy())
    assert (r.done, r.zero_page) == (1, 1)
    m.check()


# -- smaller defects -------------------------------------------------------------------------

def test_zero_dimensional_arrays_are_invalid_arguments(two):
    m, p, a = two
    with pytest.raises(InvalidArgument, match=r"access\(<1 addrs>\): addrs must be 1-D, got shape \(\)"):
        p.access(np.array(a, np.uint64))
    with pytest.raises(InvalidArgument, match=r"replay\(<1 accesses>\): addrs must be 1-D"):
        m.replay(np.array(p.pid, np.int32), np.array(a, np.uint64))
    with pytest.raises(InvalidArgument, match="pids must be 1-D"):
        m.replay(np.array(p.pid, np.int32), np.array([a], np.uint64))


def test_huge_size_strings_are_invalid_arguments():
    with pytest.raises(InvalidArgument, match=r"Machine: memory: '9+'\.\.\. is too large \(5000 digits\)"):
        cowsim.Machine(memory="9" * 5000)
    with pytest.raises(InvalidArgument, match="cannot parse"):
        cowsim.Machine(memory="x" * 5000)


@pytest.mark.parametrize("t", [np.int64, np.uint64, np.int32])
def test_numpy_integers_are_sizes(t):
    m = cowsim.Machine(memory=t(1 << 20), fault_around=t(0))
    assert (m.memory, m.fault_around, m.nframes) == (1 << 20, 0, 256)
    with pytest.raises(TypeError):
        cowsim.Machine(memory=np.bool_(True))
    with pytest.raises(InvalidArgument, match="must not be negative"):
        cowsim.Machine(memory=np.int64(-4096))


def test_write_rejects_buffers_of_objects_and_pointers(two):
    m, p, a = two
    before = m.stats
    with pytest.raises(TypeError, match=r"buffer format 'O'"):
        p.write(a, np.array([object(), 1], dtype=object))
    assert m.stats == before and p.stats.minflt == 0
    # Plain numbers are bytes-like: their bytes are written.
    p.write(a, np.array([1, 2], dtype="<u2"))
    assert p.read(a, 4) == b"\x01\x00\x02\x00"
    m.check()


def test_every_batch_error_is_a_cowsim_error_with_index(two):
    m, p, a = two
    c = p.fork()
    c.exit()
    for pid, cls in ((c.pid, ProcessExited), (12345, InvalidArgument), (0, InvalidArgument)):
        with pytest.raises(cls) as e:
            m.replay(np.array([p.pid, pid], np.int32), np.array([a, a], np.uint64))
        assert isinstance(e.value, CowsimError) and e.value.index == 1 and e.value.result.done == 1
    m.check()
