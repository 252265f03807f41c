"""Core benchmarks: fork of a resident process, single accesses from Python.

Run: ``python -m pytest bench`` (add ``--benchmark-disable`` for a quick
smoke run, as ``.ci/run`` does).  Each benchmark reports a per-unit figure in
``extra_info`` (ns per page forked, accesses per second).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

import cowsim

N_PAGES = 16384  # resident pages of the forked process (64 MiB of 4 KiB pages)
PAGE_SIZE = 4096
MEMORY = 4 * N_PAGES * PAGE_SIZE  # room for the parent, an eager copy and the tables


def resident_process(store_data: bool = False) -> Dict[str, Any]:
    """A metadata-mode machine with one process that has written N_PAGES pages."""
    m = cowsim.Machine(memory=MEMORY, page_size=PAGE_SIZE, store_data=store_data)
    p = m.spawn()
    start = p.mmap(N_PAGES * PAGE_SIZE)
    for i in range(N_PAGES):
        p.touch(start + i * PAGE_SIZE, write=True)
    assert m.stats.data_frames == N_PAGES
    return {"machine": m, "process": p, "start": start}


def mean_seconds(benchmark: Any) -> float:
    """The measured mean in seconds, or 0.0 with ``--benchmark-disable``."""
    stats = getattr(benchmark, "stats", None)
    return float(stats.stats.mean) if stats else 0.0


@pytest.mark.parametrize("mode", ["cow", "eager"])
def test_fork_resident(benchmark: Any, mode: str) -> None:
    env = resident_process()
    m, parent = env["machine"], env["process"]
    children: List[cowsim.Process] = []

    def exit_children() -> None:  # the previous round's child, outside the timing
        while children:
            children.pop().exit()

    def fork() -> None:
        children.append(parent.fork(mode))

    benchmark.pedantic(fork, setup=exit_children, rounds=20, warmup_rounds=1)
    copied_per_fork = children[-1].stats.pages_copied
    assert copied_per_fork == (N_PAGES if mode == "eager" else 0)
    exit_children()
    m.check()
    benchmark.extra_info.update(pages=N_PAGES, mode=mode, ns_per_page=mean_seconds(benchmark) / N_PAGES * 1e9)


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_touch_hit_single(benchmark: Any, write: bool) -> None:
    """One p.touch call on a resident, writable page: the cffi round trip plus a hit."""
    env = resident_process()
    p, addr = env["process"], env["start"]
    outcome = benchmark(p.touch, addr, write)
    assert outcome == cowsim.Outcome.HIT
    mean = mean_seconds(benchmark)
    benchmark.extra_info.update(accesses_per_s=1 / mean if mean else 0.0)


def test_touch_loop_hits(benchmark: Any) -> None:
    """A Python loop of p.touch over every resident page (hits)."""
    env = resident_process()
    p, start = env["process"], env["start"]
    addrs = [start + i * PAGE_SIZE for i in range(N_PAGES)]
    touch: Callable[..., cowsim.Outcome] = p.touch

    def loop() -> None:
        for a in addrs:
            touch(a)

    benchmark.pedantic(loop, rounds=5, warmup_rounds=1)
    assert p.stats.minflt == N_PAGES  # the N zero-fill faults of the set-up, nothing more
    mean = mean_seconds(benchmark)
    benchmark.extra_info.update(accesses=N_PAGES, accesses_per_s=N_PAGES / mean if mean else 0.0)


def test_touch_zero_fill(benchmark: Any) -> None:
    """Write faults on fresh pages (F3): allocate, map, one fault each."""
    m = cowsim.Machine(memory=MEMORY, page_size=PAGE_SIZE, store_data=False)
    p = m.spawn()
    length = N_PAGES * PAGE_SIZE
    state = {"start": p.mmap(length)}

    def fresh_region() -> None:  # unmap the written region and map a fresh one, untimed
        p.munmap(state["start"], length)
        state["start"] = p.mmap(length)

    def fault_all() -> None:
        start = state["start"]
        for i in range(N_PAGES):
            p.touch(start + i * PAGE_SIZE, True)

    benchmark.pedantic(fault_all, setup=fresh_region, rounds=5)
    assert m.stats.data_frames == N_PAGES
    m.check()
    mean = mean_seconds(benchmark)
    benchmark.extra_info.update(faults=N_PAGES, faults_per_s=N_PAGES / mean if mean else 0.0)
