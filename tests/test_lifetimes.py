"""Object lifetimes: deletion in any order, deterministic release, use after close.

The core's memory is observed through the process's virtual size: a machine
of 16 GiB (metadata mode, 64 KiB pages) reserves 16 GiB of address space with
MAP_NORESERVE (no host memory) and gives it back when ``cs_machine_free`` runs,
so ``VmSize`` tells exactly when the core was freed.
"""
from __future__ import annotations

import gc
import itertools
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import weakref

import pytest

import cowsim
from cowsim import CowsimError

PAGE = 4096
BIG = 16 << 30     # bytes of address space a big machine reserves


def vm_size() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmSize:\s+(\d+) kB", f.read()).group(1)) * 1024


def big_machine() -> cowsim.Machine:
    return cowsim.Machine(memory=BIG, page_size=65536, store_data=False)


def core_alive(baseline: int) -> bool:
    """Whether a big machine's reservation is still mapped (vs. baseline)."""
    grown = vm_size() - baseline
    assert grown < BIG // 2 or grown >= BIG, f"unexpected VmSize change {grown}"
    return grown >= BIG


pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")


def populate(m: cowsim.Machine):
    p = m.spawn()
    a = p.mmap(8 * 65536)
    p.write(a, b"x" * 65536 * 3)
    c = p.fork()
    c.touch(a, write=True)
    return p, c, a


# -- deterministic release ----------------------------------------------------------

def test_close_frees_the_core_at_once_with_processes_alive() -> None:
    base = vm_size()
    m = big_machine()
    p, c, a = populate(m)
    assert core_alive(base)
    m.close()
    assert not core_alive(base)             # freed by close(), not by the GC
    assert m.closed
    with pytest.raises(CowsimError, match="closed"):
        p.touch(a)
    with pytest.raises(CowsimError, match="closed"):
        c.stats
    m.close()                               # idempotent
    del p, c
    gc.collect()
    assert not core_alive(base)


def test_context_manager_closes_on_exit() -> None:
    base = vm_size()
    with big_machine() as m:
        p, _, a = populate(m)
        assert core_alive(base)
    assert not core_alive(base)
    assert m.closed
    with pytest.raises(CowsimError, match="closed"):
        m.spawn()
    with pytest.raises(CowsimError, match="closed"):
        p.touch(a)


def test_context_manager_closes_when_the_body_raises() -> None:
    base = vm_size()
    with pytest.raises(ZeroDivisionError):
        with big_machine() as m:
            populate(m)
            1 / 0
    assert m.closed and not core_alive(base)


def test_context_manager_closes_when_the_body_raises_a_cowsim_error() -> None:
    base = vm_size()
    with pytest.raises(cowsim.SegmentationFault):
        with big_machine() as m:
            m.spawn().touch(0)
    assert m.closed and not core_alive(base)


def test_dropping_the_last_reference_frees_without_close() -> None:
    base = vm_size()
    m = big_machine()
    populate(m)                             # its Process objects are dropped at once
    assert core_alive(base)
    del m                                   # no cycle: CPython frees right here
    assert not core_alive(base)


def test_a_process_keeps_its_machine_alive() -> None:
    base = vm_size()
    m = big_machine()
    p, c, a = populate(m)
    mref = weakref.ref(m)
    del m
    gc.collect()
    assert mref() is not None and core_alive(base)
    assert p.machine is mref()
    assert c.touch(a + 65536, write=True) == cowsim.Outcome.COW_COPY
    p.machine.check()
    del p
    gc.collect()
    assert core_alive(base)                 # c still holds it
    assert c.parent is not None and c.parent.pid == 1
    del c
    gc.collect()
    assert mref() is None and not core_alive(base)


@pytest.mark.parametrize("order", list(itertools.permutations(["machine", "parent", "child", "extra"])))
def test_any_deletion_order(order) -> None:
    base = vm_size()
    objs = {}
    objs["machine"] = big_machine()
    objs["parent"], objs["child"], a = populate(objs["machine"])
    objs["extra"] = objs["machine"].process(objs["child"].pid)   # the same cached object
    assert objs["extra"] is objs["child"]
    stats = objs["child"].stats
    for i, name in enumerate(order):
        del objs[name]
        if i % 2:
            gc.collect()
        remaining = list(objs.values())
        if remaining:
            live = remaining[0] if isinstance(remaining[0], cowsim.Machine) else remaining[0].machine
            live.check()
            del live
            assert core_alive(base)
    gc.collect()
    assert not core_alive(base)
    assert stats.faults_cow_copy == 1       # plain data survives its machine


def test_reference_cycles_are_collected() -> None:
    base = vm_size()
    m = big_machine()
    p, c, _ = populate(m)
    m.me = m                                # machine -> itself
    p.friend = c
    c.friend = p                            # process <-> process
    m.favourite = p                         # machine -> process -> machine
    del m, p, c
    assert core_alive(base)                 # only the cycle collector can free these
    gc.collect()
    assert not core_alive(base)


def test_close_with_the_pointer_still_referenced_defers_the_free() -> None:
    """close() drops the machine's reference; a caller holding ``m.ptr``
    (exactly what a C call in progress on another thread does) keeps the core
    alive until it lets go, so the core is never freed under a running call."""
    base = vm_size()
    m = big_machine()
    held = m.ptr
    m.close()
    assert m.closed and core_alive(base)
    with pytest.raises(CowsimError, match="closed"):
        m.stats
    del held
    assert not core_alive(base)


def test_many_machines_do_not_accumulate() -> None:
    # Each machine reserves >= 4 GiB of address space, so one that is never
    # freed shows; the slack allows for allocator caches (ASan keeps ~100 MB).
    base = vm_size()
    for i in range(100):
        if i % 2:
            m = big_machine()
        else:
            m = cowsim.Machine(memory="4GiB", page_size=(4096, 16384)[i % 4 // 2], store_data=i % 3 == 0)
        p = m.spawn()
        a = p.mmap(4 * PAGE)
        p.write(a, b"abc")
        p.fork().touch(a, write=True)
        if i % 3 == 0:
            m.close()
        del m, p
    gc.collect()
    assert vm_size() - base < 2 << 30


# -- the process cache --------------------------------------------------------------------

def test_process_objects_are_cached_weakly() -> None:
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    assert m.process(1) is p and m.processes[0] is p
    pref = weakref.ref(p)
    del p
    gc.collect()
    assert pref() is None                   # the machine does not keep it alive
    assert [q.pid for q in m.processes] == [1]   # ... and the process did not exit
    q = m.process(1)
    assert q.alive and q == m.processes[0] and q.stats.page_table_frames == 1
    q.exit()
    assert m.process(1) is q and not q.alive
    m.check()
    m.close()


def test_exited_process_keeps_its_final_stats_after_gc() -> None:
    # Was: exit, drop every object, gc, then m.process(pid).stats.  Since the record of an
    # exited process goes with its last object (issue #11), the final stats stay readable
    # through any object kept, across gc; the cache hands that same object back.
    m = cowsim.Machine(memory="1MiB")
    p = m.spawn()
    a = p.mmap(PAGE)
    p.touch(a, write=True)
    pid = p.pid
    kept = weakref.ref(p)
    q = p
    p.exit()
    del p
    gc.collect()
    assert kept() is q and m.process(pid) is q
    assert not q.alive and q.stats.minflt == 1 and q.stats.page_table_frames == 0
    with pytest.raises(cowsim.ProcessExited):
        q.regions
    assert m.stats.process_records == 1
    del q
    gc.collect()
    assert m.stats.process_records == 0
    with pytest.raises(cowsim.ProcessExited, match="record was released"):
        m.process(pid)
    m.check()
    m.close()


# -- interpreter exit ------------------------------------------------------------------------

def _run_python(code: str) -> subprocess.CompletedProcess:
    # From a neutral directory: in the repository root, the source tree's cowsim/ (no compiled
    # core after a regular install) would shadow the installed package.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ), cwd=tempfile.gettempdir())


def test_interpreter_exit_with_live_objects() -> None:
    r = _run_python("""
        import cowsim
        m = cowsim.Machine(memory="4MiB")
        p = m.spawn()
        a = p.mmap(8 * 4096)
        p.write(a, b"data" * 1000)
        c = p.fork()
        c.touch(a, write=True)
        m2 = cowsim.Machine(memory="1MiB")
        orphan = m2.spawn()
        del m2
        m.cycle = m
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr


def test_interpreter_exit_while_daemon_threads_are_in_calls() -> None:
    r = _run_python("""
        import threading, cowsim
        m = cowsim.Machine(memory="64MiB", store_data=False)
        started = threading.Barrier(4)
        def work(k):
            p = m.spawn()
            a = p.mmap(64 * 4096)
            started.wait()
            while True:
                c = p.fork()
                for i in range(64):
                    c.touch(a + i * 4096, write=True)
                m.check()
                c.exit()
        for k in range(3):
            threading.Thread(target=work, args=(k,), daemon=True).start()
        started.wait()
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr


def test_close_in_another_thread_than_the_one_that_created() -> None:
    base = vm_size()
    m = big_machine()
    populate(m)
    t = threading.Thread(target=m.close)
    t.start()
    t.join()
    assert m.closed and not core_alive(base)
