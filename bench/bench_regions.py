"""Regions at scale (issue #11): mmap, munmap and lookups with thousands of regions.

Run:   python -m pytest bench/bench_regions.py --benchmark-only
In one run, side by side: N = 5,000 and N = 50,000 one-page mmaps without an
address (top-down placement), munmap of every other one (holes), then reads of
the remaining regions in a shuffled order, twice (the first pass faults, the
second only looks each region up and hits; at 50k the tables and regions no
longer fit this VM's ~2 MiB of cache, before and after alike), then once in
address order (lookups with a warm cache); ``extra_info`` has the ns per
operation of each phase at both sizes and their ratio 50k / 5k (1.0: constant
cost per operation; the array the core had before made mmap O(n)).
``test_host_bytes_per_region`` reports the host memory one region costs.
"""
from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict

import numpy as np

import cowsim

PAGE = 4096
SIZES = (5_000, 50_000)
PHASES = ("mmap", "munmap", "access_fault", "access_lookup", "access_lookup_in_order")


def regions_workload(n: int) -> Dict[str, float]:
    """Seconds per operation of each phase with n regions."""
    m = cowsim.Machine(memory="1GiB", tlb_entries=64)
    p = m.spawn()
    out: Dict[str, float] = {}
    t = time.perf_counter()
    addrs = [p.mmap(PAGE) for _ in range(n)]
    out["mmap"] = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for a in addrs[::2]:
        p.munmap(a, PAGE)
    out["munmap"] = (time.perf_counter() - t) / len(addrs[::2])
    left = addrs[1::2]
    random.Random(11).shuffle(left)
    batch = np.array(left, dtype=np.uint64)
    t = time.perf_counter()
    r = p.access(batch)
    out["access_fault"] = (time.perf_counter() - t) / len(left)
    assert r.zero_page == len(left)
    t = time.perf_counter()
    r = p.access(batch)
    out["access_lookup"] = (time.perf_counter() - t) / len(left)
    assert r.hits == len(left)
    batch.sort()
    t = time.perf_counter()
    r = p.access(batch)
    out["access_lookup_in_order"] = (time.perf_counter() - t) / len(left)
    assert r.hits == len(left) and len(p.regions) == n - len(addrs[::2])
    return out


def test_regions_scaling(benchmark: Any) -> None:
    best: Dict[int, Dict[str, float]] = {}

    def run() -> None:  # both sizes in each round, so both see the same load
        for n in SIZES:
            got = regions_workload(n)
            best[n] = {k: min(v, best.get(n, got)[k]) for k, v in got.items()}

    benchmark.pedantic(run, rounds=3, iterations=1)
    small, large = SIZES
    for phase in PHASES:
        benchmark.extra_info[f"{phase}_ns_{small}"] = best[small][phase] * 1e9
        benchmark.extra_info[f"{phase}_ns_{large}"] = best[large][phase] * 1e9
        benchmark.extra_info[f"{phase}_ratio"] = best[large][phase] / best[small][phase]


_RSS_CHILD = r"""
import cowsim
def rss():
    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024
m = cowsim.Machine(memory='64MiB', store_data=False)
p = m.spawn(); n = 200_000
r0 = rss()
for _ in range(n):
    p.mmap(4096)
print((rss() - r0) / n)
"""


def test_host_bytes_per_region(benchmark: Any) -> None:
    """Host RSS growth per region (200,000 one-page regions, nothing touched), in a clean process."""

    def measure() -> None:
        # from a neutral directory, so the installed cowsim is imported, not the source tree
        out = subprocess.run([sys.executable, "-c", _RSS_CHILD], check=True, capture_output=True, text=True,
                             cwd=tempfile.gettempdir())
        benchmark.extra_info["bytes_per_region"] = float(out.stdout)

    benchmark.pedantic(measure, rounds=1, iterations=1)
