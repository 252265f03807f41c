"""Speed at scale (issue 4): batched accesses, single accesses, fork, memory.

Run:   python -m pytest bench/bench_speed.py --benchmark-only
Each benchmark reports its rate in ``extra_info`` (accesses/s, ns/page, ...);
``--benchmark-json out.json`` keeps them.  CI runs this file once with
``--benchmark-disable`` so it never rots.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import sys
import time
from typing import Callable, Optional

import numpy as np
import pytest

import cowsim

sys.path.insert(0, os.path.dirname(__file__))
from kernel_fork import kernel_fork_seconds  # noqa: E402

PAGE = 4096
GIB_PAGES = (1 << 30) // PAGE


def best_time(benchmark, fn: Callable[[], object], setup: Optional[Callable[[], tuple]] = None, rounds: int = 3) -> float:
    """Runs fn under pytest-benchmark and returns the best wall time of one call."""
    times = []

    def timed(*args):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)

    if setup is None:
        benchmark.pedantic(timed, rounds=rounds, iterations=1)
    else:
        benchmark.pedantic(timed, setup=lambda: (setup(), {}), rounds=rounds)
    return min(times)


def populated(pages: int, store_data: bool = False, memory: str = "16GiB", tlb_entries: int = 64,
              huge: bool = False):
    m = cowsim.Machine(memory=memory, store_data=store_data, tlb_entries=tlb_entries)
    p = m.spawn()
    a = p.mmap(pages * PAGE, huge=huge)
    p.access(a + np.arange(pages, dtype=np.uint64) * PAGE, write=True)
    return m, p, a


@pytest.mark.parametrize("tlb_entries", [64, 0])
def test_sequential_reads_1gib(benchmark, tlb_entries):
    m, p, a = populated(GIB_PAGES, tlb_entries=tlb_entries)
    addrs = a + np.arange(0, GIB_PAGES * PAGE, PAGE // 8, dtype=np.uint64)  # 8 accesses per page
    t = best_time(benchmark, lambda: p.access(addrs))
    benchmark.extra_info["accesses_per_s"] = len(addrs) / t
    assert p.access(addrs[:8]).hits == 8


def test_random_reads_1gib(benchmark):
    m, p, a = populated(GIB_PAGES)
    addrs = a + np.random.default_rng(1).integers(0, GIB_PAGES * PAGE, 8 * GIB_PAGES, dtype=np.uint64)
    t = best_time(benchmark, lambda: p.access(addrs))
    benchmark.extra_info["accesses_per_s"] = len(addrs) / t


@pytest.mark.parametrize("store_data,pages", [(False, GIB_PAGES), (True, GIB_PAGES // 4)])
def test_cow_write_faults(benchmark, store_data, pages):
    """Random writes right after a CoW fork: every access is a CoW copy fault."""
    m, p, a = populated(pages, store_data=store_data)
    addrs = a + np.random.default_rng(2).permutation(pages).astype(np.uint64) * PAGE
    children = []

    def setup():
        for c in children:
            c.exit()
        children[:] = [p.fork()]
        return (children[0],)

    t = best_time(benchmark, lambda c: c.access(addrs, write=True), setup=setup)
    benchmark.extra_info["faults_per_s"] = pages / t
    assert children[0].stats.faults_cow_copy == pages


def test_touch_single_calls(benchmark):
    m = cowsim.Machine(memory="64MiB")
    p = m.spawn()
    a = p.mmap(64 * PAGE)
    n = 200_000

    def loop():
        touch = p.touch
        for i in range(n):
            touch(a + (i & 63) * PAGE)

    t = best_time(benchmark, loop)
    benchmark.extra_info["touches_per_s"] = n / t


@pytest.mark.parametrize("mode", ["cow", "eager", "odf", "vfork", "cow-thp"])
@pytest.mark.parametrize("size_mib", [64, 256, 1024, 4096])
def test_fork(benchmark, mode, size_mib):
    """Every fork strategy by resident size; "cow-thp": a cow fork of a parent whose
    memory is in 2 MiB huge pages (one entry per 2 MiB)."""
    pages = size_mib * 256
    huge = mode == "cow-thp"
    mode = "cow" if huge else mode
    m, p, a = populated(pages, memory="12GiB", huge=huge)
    children = []

    def setup():
        for c in children:
            c.exit()
        children.clear()
        return ()

    t = best_time(benchmark, lambda: children.append(p.fork(mode)), setup=setup)
    benchmark.extra_info["ns_per_page"] = t / pages * 1e9
    benchmark.extra_info["ms"] = t * 1e3


def test_cow_fork_vs_kernel_1gib(benchmark):
    """cowsim's CoW fork of 1 GiB resident against the host kernel's, same run.

    Both sides write every page again before each fork, so every fork pays the
    write-protect pass (a parent whose entries are already read-only forks faster)."""
    m, p, a = populated(GIB_PAGES)
    every_page = a + np.arange(GIB_PAGES, dtype=np.uint64) * PAGE
    children = []

    def setup():
        for c in children:
            c.exit()
        children.clear()
        p.access(every_page, write=True)
        return ()

    t = best_time(benchmark, lambda: children.append(p.fork()), setup=setup, rounds=5)
    k = kernel_fork_seconds(GIB_PAGES)
    base = kernel_fork_seconds(0)
    benchmark.extra_info.update(
        cowsim_ms=t * 1e3, kernel_ms=k * 1e3, kernel_empty_ms=base * 1e3, kernel_over_cowsim=k / t
    )


def _trace(pages: int, n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, pages, n).astype(np.uint64) * PAGE, rng.random(n) < 0.3


def test_reference_model_speedup(benchmark):
    """The same trace on the pure-Python reference model and on the C core.

    Two processes (parent and CoW child, by page parity), 30% writes, 300,000
    accesses over 1024 pages: long enough that the per-call fixed costs (machine,
    fork, NumPy set-up) do not decide the ratio.  speedup compares the traces
    alone; end_to_end_speedup includes building the machine and forking."""
    ref_mod = pytest.importorskip("cowsim.reference")
    pages, n = 1024, 300_000
    offs, writes = _trace(pages, n)

    t0 = time.perf_counter()
    m = ref_mod.RefMachine(memory="16MiB")
    p = m.spawn()
    a = p.mmap(pages * PAGE)
    c = p.fork()
    t1 = time.perf_counter()
    for off, w in zip(offs.tolist(), writes.tolist()):
        (c if off & PAGE else p).touch(a + off, write=w)
    t_ref = time.perf_counter() - t1
    ref_setup = t1 - t0
    ref_counts = (p.stats.minflt, c.stats.minflt)

    setup_times = []

    def setup():
        t = time.perf_counter()
        m = cowsim.Machine(memory="16MiB")
        p = m.spawn()
        a = p.mmap(pages * PAGE)
        c = p.fork()
        pids = np.where((offs & PAGE) != 0, c.pid, p.pid).astype(np.int32)
        addrs = a + offs
        setup_times.append(time.perf_counter() - t)
        return (m, pids, addrs, p, c)

    core_counts = []

    def run_core(m, pids, addrs, p, c):
        m.replay(pids, addrs, write=writes)
        core_counts.append((p.stats.minflt, c.stats.minflt))

    t_core = best_time(benchmark, run_core, setup=setup)
    assert core_counts[-1] == ref_counts
    core_setup = min(setup_times)
    benchmark.extra_info.update(
        accesses=n, ref_s=t_ref, core_s=t_core, speedup=t_ref / t_core,
        ref_setup_s=ref_setup, core_setup_s=core_setup,
        end_to_end_speedup=(ref_setup + t_ref) / (core_setup + t_core),
        core_accesses_per_s=n / t_core,
    )


_RSS_CHILD = r"""
import os, numpy as np, cowsim
def rss():
    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024
m = cowsim.Machine(memory='64GiB', store_data=False)
p = m.spawn(); n = 1 << 22; a = p.mmap(n * 4096)
addrs = a + np.arange(n, dtype=np.uint64) * 4096
r0 = rss()
p.access(addrs, write=True)
print((rss() - r0) / n)
"""


def test_host_bytes_per_resident_page(benchmark):
    """Host RSS growth per resident simulated page (metadata mode), in a clean process."""

    def measure():
        # from a neutral directory, so the installed cowsim is imported, not the source tree
        out = subprocess.run([sys.executable, "-c", _RSS_CHILD], check=True, capture_output=True, text=True,
                             cwd=tempfile.gettempdir())
        benchmark.extra_info["bytes_per_page"] = float(out.stdout)

    benchmark.pedantic(measure, rounds=1, iterations=1)


def test_64gib_parent_8_children(benchmark):
    """64 GiB resident parent + 8 CoW children in metadata mode: time and host RSS."""

    def run():
        t = time.perf_counter()
        m = cowsim.Machine(memory="80GiB", store_data=False)
        p = m.spawn()
        n = (64 << 30) // PAGE
        a = p.mmap(n * PAGE)
        step = 1 << 22
        for s in range(0, n, step):
            p.access(a + np.arange(s, min(n, s + step), dtype=np.uint64) * PAGE, write=True)
        kids = [p.fork() for _ in range(8)]
        benchmark.extra_info["seconds"] = time.perf_counter() - t
        benchmark.extra_info["frames_used"] = m.stats.frames_used
        benchmark.extra_info["children"] = len(kids)
        m.close()

    benchmark.pedantic(run, rounds=1, iterations=1)
