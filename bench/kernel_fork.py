"""Times a real fork() on the host kernel, for side-by-side comparison.

A fresh, small Python child process maps ``pages`` anonymous pages (huge
pages off), touches each one, then times ``os.fork()`` several times (writing
every page again before each, so every fork write-protects them all) and
prints the best time.  The child imports nothing heavy, so its own baseline
is small; ``kernel_fork_seconds(0)`` measures that baseline.
"""
from __future__ import annotations

import json
import subprocess
import sys

_CHILD = r"""
import json, mmap, os, sys, time
pages, repeat = int(sys.argv[1]), int(sys.argv[2])
size = max(pages, 1) * 4096
buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
if hasattr(mmap, "MADV_NOHUGEPAGE"):
    buf.madvise(mmap.MADV_NOHUGEPAGE)
for i in range(pages):
    buf[i * 4096] = 1
best = float("inf")
for _ in range(repeat):
    for i in range(pages):  # writable again (after a fork the entries are write-protected)
        buf[i * 4096] = 2
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    dt = time.perf_counter() - t
    os.waitpid(pid, 0)
    best = min(best, dt)
print(json.dumps({"pages": pages, "seconds": best}))
"""


def kernel_fork_seconds(pages: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` wall time of the host kernel forking a process with ``pages`` resident."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", _CHILD, str(pages), str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out)["seconds"])


if __name__ == "__main__":
    for n in (0, 16384, 65536, 262144):
        print(n, f"{kernel_fork_seconds(n) * 1e3:.2f} ms")
