"""The host process forks while cowsim is in use (issue #11, defect 3).

``os.fork()`` copies the memory of every ``Machine`` -- including a mutex that
another thread holds while it is inside a C call.  The core's ``pthread_atfork``
handlers make the fork wait for the calls in progress (csrc/machine.c), so the
child gets consistent machines it can use at once, never a copy of a held lock
(the child's next call would block forever).  Each child is watched by the
parent with a deadline and reports through its exit status.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

import cowsim

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

DEADLINE_S = 60.0


def _wait_child(pid: int) -> int:
    """The child's exit status; kills it and fails the test if it outlives the deadline."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {DEADLINE_S} s (a machine's lock copied while held)")


def _in_child(body) -> None:
    """Runs body() in the child and leaves with 0 (it returned True), 1 (False) or 2 (raised)."""
    code = 2
    try:
        code = 0 if body() else 1
    finally:
        os._exit(code)


def test_fork_while_another_thread_is_inside_a_replay() -> None:
    # A replay that ping-pongs between processes of one lane (pids 1, 9, 17: no
    # TLB, outcomes on) is the slowest path of the core: ~0.3 s for 10 M accesses
    # here, long enough that the fork below lands inside it.
    m = cowsim.Machine(memory="16MiB", store_data=False, tlb_entries=0)
    procs = [m.spawn() for _ in range(17)]
    pages = 64
    a = procs[0].mmap(pages * 4096)
    for q in procs[1:]:
        q.mmap(pages * 4096, addr=a)
    n = 10_000_000
    addrs = (a + (np.arange(n, dtype=np.uint64) * 7919 % pages) * 4096).astype(np.uint64)
    lane = np.array([procs[0].pid, procs[8].pid, procs[16].pid], np.int32)
    pids = lane[np.arange(n) % 3]
    started = threading.Event()
    results = []

    def worker() -> None:
        started.set()  # from here to the C call is a few microseconds of Python
        results.append(m.replay(pids, addrs, write=True, outcomes=True))

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    time.sleep(0.01)  # the worker is inside cs_replay now, holding the machine's lock
    pid = os.fork()
    if pid == 0:
        def child() -> bool:
            m.check()  # would block forever on a copied, held lock
            stats = [procs[k].stats for k in (0, 8, 16)]
            c = procs[0].fork()  # the machine is fully usable
            c.touch(a, write=True)
            c.exit()
            m.check()
            # The fork waited for the replay: the child sees all of it, never a part.
            return [s.accesses for s in stats] == [(n + 2 - k) // 3 for k in range(3)] and \
                [s.minflt for s in stats] == [pages] * 3
        _in_child(child)
    t.join()
    assert _wait_child(pid) == 0
    assert results[0].zero_fill == 3 * pages and results[0].hits == n - 3 * pages
    m.check()


def test_fork_with_an_idle_machine_and_a_closed_one() -> None:
    m = cowsim.Machine(memory="1MiB")
    gone = cowsim.Machine(memory="1MiB")
    gone.close()
    p = m.spawn()
    a = p.mmap(8192)
    p.write(a, b"parent")
    pid = os.fork()
    if pid == 0:
        def child() -> bool:
            p.write(a + 4096, b"child")
            ok = p.read(a, 6) == b"parent" and p.read(a + 4096, 5) == b"child"
            m.check()
            return ok and m.stats.data_frames == 2
        _in_child(child)
    assert _wait_child(pid) == 0
    assert p.read(a + 4096, 5) == b"\0" * 5  # the child's machine was its own copy
    assert m.stats.data_frames == 1


_INHERITED = {}  # what the forked pool workers inherit (a Machine does not pickle)


def _pool_task(_: int):
    m, pid, a = _INHERITED["m"], _INHERITED["pid"], _INHERITED["a"]
    p = m.process(pid)
    p.touch(a + 4096, write=True)
    m.check()
    return p.stats.minflt, m.stats.data_frames


def test_multiprocessing_fork_pool_while_a_thread_works() -> None:
    m = cowsim.Machine(memory="64MiB", store_data=False)
    p = m.spawn()
    a = p.mmap(2 * 4096)
    p.touch(a, write=True)
    q = m.spawn()
    b = q.mmap(4096 * 1024)
    stop = threading.Event()

    def churn() -> None:  # another thread keeps calling into the same machine
        while not stop.is_set():
            q.access(b + np.arange(1024, dtype=np.uint64) * 4096, write=True)
            q.madvise(b, 4096 * 1024, "dontneed")

    t = threading.Thread(target=churn)
    t.start()
    try:
        ctx = multiprocessing.get_context("fork")
        _INHERITED.update(m=m, pid=p.pid, a=a)
        with ctx.Pool(2) as pool:
            res = pool.map_async(_pool_task, range(4), chunksize=1).get(DEADLINE_S)
    finally:
        _INHERITED.clear()
        stop.set()
        t.join()
    # Each task ran in a forked copy: one more fault, one more frame over the parent's;
    # q's frames come and go in the churning thread, so only p's are counted exactly.
    assert [r[0] for r in res] == [p.stats.minflt + 1] * 4
    m.check()
