"""A/B speed of two builds of cowsim on the same anonymous-memory workloads, interleaved.

    python bench/ab_builds.py OLD_TREE NEW_TREE [ROUNDS]

Each tree is a source checkout with its core built in place (``setup.py build_ext
--inplace``).  The rounds alternate A, B, A, B, ... in fresh subprocesses, so both builds
see the same minutes of this shared, noisy VM; the table gives each build's median and the
ratio new / old per workload (> 1: the new build is faster).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

WORK = r'''
import json, time, numpy as np, cowsim
PS = 4096
out = {}
m = cowsim.Machine(memory="4GiB", store_data=False)
p = m.spawn()
a = p.mmap(1 << 30)
pages = np.arange(a, a + (1 << 30), PS, dtype=np.uint64)
p.access(pages, write=True)
seq = np.repeat(pages, 8)
t = time.perf_counter(); p.access(seq); out["seq reads (M/s)"] = len(seq) / (time.perf_counter() - t) / 1e6
rnd = np.random.default_rng(1).choice(pages, 8 << 20)
t = time.perf_counter(); p.access(rnd); out["random reads (M/s)"] = len(rnd) / (time.perf_counter() - t) / 1e6
t = time.perf_counter(); c = p.fork(); out["cow fork 1 GiB (ms)"] = (time.perf_counter() - t) * 1e3
t = time.perf_counter(); c.access(pages, write=True); out["cow write faults (M/s)"] = len(pages) / (time.perf_counter() - t) / 1e6
c.exit()
q = m.spawn(); b = q.mmap(256 << 20)
zp = np.arange(b, b + (256 << 20), PS, dtype=np.uint64)
t = time.perf_counter(); q.access(zp, write=True); out["zero-fill faults (M/s)"] = len(zp) / (time.perf_counter() - t) / 1e6
print(json.dumps(out))
'''


def run(tree: str) -> dict:
    r = subprocess.run([sys.executable, "-c", WORK], env=dict(os.environ, PYTHONPATH=tree),
                       cwd="/", capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{tree}: {r.stderr}")
    return json.loads(r.stdout)


def main() -> None:
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    res: dict = {"old": [], "new": []}
    for _ in range(rounds):
        res["old"].append(run(old))
        res["new"].append(run(new))
    print(f"| workload | old median | new median | new / old (speed) |\n|---|---|---|---|")
    for key in res["old"][0]:
        o = statistics.median(r[key] for r in res["old"])
        n = statistics.median(r[key] for r in res["new"])
        speed = o / n if "(ms)" in key else n / o
        print(f"| {key} | {o:.2f} | {n:.2f} | {speed:.3f} |")


if __name__ == "__main__":
    main()
