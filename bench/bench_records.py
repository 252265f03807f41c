"""Host memory of spawn/exit cycles (issue #11): an exited process's record must not
stay forever once nothing refers to it.

Run as a script for the audit's figure, on any checkout (``main`` included):

    python bench/bench_records.py 300000      # host RSS growth of 300,000 spawn/exit cycles

``test_spawn_exit_cycles`` times the cycles and reports the RSS growth per cycle in
``extra_info`` (``.ci/run`` runs it once with ``--benchmark-disable``).
"""
from __future__ import annotations

import gc
import re
import sys
import time
from typing import Any, Dict

import cowsim


def rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024  # type: ignore[union-attr]


def cycles(m: cowsim.Machine, n: int) -> None:
    """n spawn/exit cycles, each process touching one page; every object dropped at once."""
    for _ in range(n):
        p = m.spawn()
        p.touch(p.mmap(4096), write=True)
        p.exit()
        del p


def rss_growth(n: int, warmup: int = 2000) -> Dict[str, Any]:
    m = cowsim.Machine(memory="16MiB", store_data=False)
    keep = m.spawn()   # one process lives throughout
    cycles(m, warmup)  # allocator and interpreter caches settle
    gc.collect()
    before = rss()
    t0 = time.perf_counter()
    cycles(m, n)
    seconds = time.perf_counter() - t0
    gc.collect()
    grown = rss() - before
    s = m.stats
    out = {"cycles": n, "rss_growth_bytes": grown, "bytes_per_cycle": grown / n, "seconds": seconds,
           "processes": s.processes, "process_records": getattr(s, "process_records", None),
           "pid_map_slots": getattr(s, "pid_map_slots", None)}
    del keep
    m.close()
    return out


def test_spawn_exit_cycles(benchmark: Any) -> None:
    n = 20_000
    result: Dict[str, Any] = {}

    def run() -> None:
        result.update(rss_growth(n, warmup=200))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result["process_records"] == 1 and result["pid_map_slots"] == 16


if __name__ == "__main__":
    r = rss_growth(int(sys.argv[1]) if len(sys.argv) > 1 else 300_000)
    print(f"{cowsim.__file__}: {r['cycles']:,} spawn/exit cycles in {r['seconds']:.1f} s: "
          f"host RSS +{r['rss_growth_bytes'] / 2**20:.1f} MiB ({r['bytes_per_cycle']:.1f} B/cycle); "
          f"processes {r['processes']}, process_records {r['process_records']}, "
          f"pid_map_slots {r['pid_map_slots']}")
