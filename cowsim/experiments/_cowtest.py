"""cowtest: the teaching kernels' copy-on-write test (xv6's ``cowtest``), under each fork strategy.

The tests run in data mode on a small machine (``memory``, default 32 MiB), in
xv6's order; each test spawns its own process, and ends by checking that every
frame it used is free again:

- ``simple`` (twice): allocate two thirds of memory, write each page's first
  word, fork, the child exits, free.  Without copy-on-write the fork cannot fit.
- ``three`` (three times): allocate a quarter of memory (zeroed, as ``sbrk``
  does), fork a child, which forks a grandchild; page by page in turn the
  parent writes its pid to every page, the grandchild its pid to the first four
  fifths and the child 9999 to the first half; each verifies what it wrote
  (the contents are read back); the grandchild and the child exit, the parent
  verifies again and frees.
- ``forkloop``: hold two fifths of memory, then ``rounds`` times: fork a
  child, which forks a grandchild; each writes one page and exits.

A step that raises (e.g. ``OutOfMemory``) or reads back wrong contents fails
its test; the test's processes exit and the next test runs.  Under ``cow``
every test passes; under ``eager`` ``simple`` fails at its fork and
``forkloop`` at the child's fork of the grandchild (out of memory), while
``three`` passes (three copies of a quarter of memory fit).  Under ``vfork``
``simple`` passes, ``three`` fails because the parent cannot run beside its
child (``ProcessSuspended``), and ``forkloop`` because the grandchild's write
lands in the memory the others read (wrong content).

>>> r = cowtest(memory="4MiB", rounds=2)
>>> [(row["mode"], row["test"], row["status"], row["failed_step"]) for row in r.records()][:4]
[('cow', 'simple #1', 'ok', ''), ('cow', 'simple #2', 'ok', ''), ('cow', 'three #1', 'ok', ''), ('cow', 'three #2', 'ok', '')]
>>> r.first_failure("eager")
('simple #1', 'fork')
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import numpy as np

from .. import ForkMode
from ..errors import CowsimError, InvalidArgument
from ..machine import Machine
from ..cost import CostModel, CostModelSpec, NS_PER_MS, exit_events, fork_events, resolve_cost_model, stats_delta
from ..process import Process
from ..units import Size, format_size
from ._common import (
    FORK_MODES,
    PAGE_SIZE,
    Column,
    ExperimentResult,
    Table,
    check_int,
    check_modes,
    renamed_keywords,
    check_size,
    frozen_map,
    log,
    progress_bar,
)

__all__ = ["cowtest", "CowtestResult", "COWTESTS"]

_OP = "cowtest"

#: The tests, in the order they run (name, repetitions), as in xv6's cowtest.
COWTESTS: Tuple[Tuple[str, int], ...] = (("simple", 2), ("three", 3), ("forkloop", 1))

TEST_COLUMNS = (
    Column("mode", "U8", "mode"),
    Column("test", "U16", "test"),
    Column("status", "U8", "status"),
    Column("failed_step", "U40", "failed step"),
    Column("error", "U120", "error"),
    Column("steps", "i8", "steps"),
    Column("frames_peak", "i8", "peak frames", ",d"),
    Column("pages_copied", "i8", "copies", ",d"),
    Column("model_ms", "f8", "model ms", ".2f"),
)

STEP_COLUMNS = (
    Column("mode", "U8", "mode"),
    Column("test", "U16", "test"),
    Column("step", "U40", "step"),
    Column("status", "U8", "status"),
    Column("error", "U120", "error"),
    Column("frames_used", "i8", "frames used", ",d"),
    Column("pages_copied", "i8", "copies", ",d"),
    Column("model_ms", "f8", "model ms", ".3f"),
)


@dataclass(frozen=True)
class CowtestResult(ExperimentResult):
    """Result of :func:`cowtest`: tables ``tests`` (one row per mode and test) and
    ``steps`` (every step run)."""

    experiment = "cowtest"

    def passed(self, mode: str) -> bool:
        """True when every test passed under ``mode``."""
        return all(r["status"] == "ok" for r in self.records() if r["mode"] == mode)

    def first_failure(self, mode: str) -> Optional[Tuple[str, str]]:
        """(test, step) of the first failure under ``mode``, or None."""
        for r in self.records():
            if r["mode"] == mode and r["status"] != "ok":
                return r["test"], r["failed_step"]
        return None

    def _figure(self, plt: Any) -> Any:
        data = self.to_numpy()
        modes = list(dict.fromkeys(data["mode"].tolist()))
        tests = list(dict.fromkeys(data["test"].tolist()))
        total = self.params["frames_total"]
        fig, ax = plt.subplots(figsize=(9, 3.8))
        width = 0.8 / len(modes)
        for j, mode in enumerate(modes):
            rows = data[data["mode"] == mode]
            x = np.arange(len(tests)) + (j - (len(modes) - 1) / 2) * width
            failed = rows["status"] != "ok"
            ax.bar(x, rows["frames_peak"], width, color=f"C{j}", label=mode)
            ax.bar(x[failed], rows["frames_peak"][failed], width, color="none", edgecolor="C3", hatch="///")
            for xi, row in zip(x[failed], rows[failed]):
                short = "OOM" if row["error"].startswith("OutOfMemory") else "fails"
                ax.annotate(short, (xi, row["frames_peak"]), fontsize=7, ha="center", va="bottom",
                            color="C3", xytext=(0, 2), textcoords="offset points")
        grouped: Dict[Tuple[str, str], List[str]] = {}
        for r in self.records():
            if r["status"] != "ok":
                grouped.setdefault((r["mode"], r["failed_step"]), []).append(r["test"])
        failures = [f"{mode} fails {', '.join(names)} at '{step}'" for (mode, step), names in grouped.items()]
        if failures:
            ax.text(0.01, 0.97, "\n".join(failures), transform=ax.transAxes, fontsize=7, va="top", ha="left")
        ax.axhline(total, color="grey", linestyle=":", linewidth=1)
        ax.annotate("physical memory", (len(tests) - 0.5, total), fontsize=7, ha="right", va="bottom")
        ax.set_xticks(np.arange(len(tests)))
        ax.set_xticklabels(tests, fontsize=8)
        ax.set_ylim(0, total * (1.25 + 0.09 * len(failures)))
        ax.set_ylabel("peak frames used")
        verdicts = ", ".join(f"{m}: {'all pass' if self.passed(m) else 'fails'}" for m in modes)
        ax.set_title(f"xv6 cowtest on {format_size(self.params['memory'])} ({verdicts})", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        return fig


class _Failed(Exception):
    pass


class _Test:
    """Runs the steps of one test on one machine, recording and pricing each step."""

    def __init__(self, m: Machine, mode: str, name: str, model: CostModel, steps: List[Tuple[Any, ...]]) -> None:
        self.m, self.mode, self.name, self.model = m, mode, name, model
        self.steps = steps
        self.procs: List[Process] = []
        self.extra_price = 0.0
        self.start_frames = m.stats.frames_used
        self.start_copied = m.stats.pages_copied
        self.peak = self.start_frames
        self.count = 0
        self.priced = 0.0

    def spawn(self) -> Process:
        p = self.m.spawn()
        self.procs.append(p)
        return p

    def fork(self, parent: Process) -> Process:
        before = self.m.stats
        child = parent.fork(cast(ForkMode, self.mode))
        self.procs.append(child)
        self.extra_price += self.model.price_fork(fork_events(child, before, self.m.stats))
        return child

    def exit(self, p: Process) -> None:
        events = exit_events(p)  # read before: pricing never changes the machine
        p.exit()
        self.extra_price += self.model.price_exit(events)

    def munmap(self, p: Process, addr: int, length: int) -> None:
        resident = p.smaps(addr)["Rss"] * 1024 // PAGE_SIZE
        p.munmap(addr, length)
        self.extra_price += self.model.exit_ns(resident)

    def step(self, name: str, fn: Callable[[], None]) -> None:
        before = {p.pid: p.stats for p in self.procs}
        copied = self.m.stats.pages_copied
        self.extra_price = 0.0
        error = ""
        try:
            fn()
        except (CowsimError, _Failed) as exc:
            if isinstance(exc, CowsimError):  # the core's message starts with the operation: keep the reason
                error = f"{type(exc).__name__}: {' '.join(str(exc).split()).rsplit(': ', 1)[-1]}"
            else:
                error = str(exc)
        price = self.extra_price
        for p in self.procs:
            price += self.model.faults_ns(stats_delta(p.stats, before.get(p.pid)))
        s = self.m.stats
        self.peak = max(self.peak, s.frames_used)
        self.count += 1
        self.priced += price
        self.steps.append(
            (self.mode, self.name, name, "FAILED" if error else "ok", error, s.frames_used,
             s.pages_copied - copied, price / NS_PER_MS)
        )
        if error:
            raise _Failed(name, error)

    def cleanup(self) -> None:
        for p in reversed(self.procs):  # children first: a vfork parent waits for its child
            if p.alive:
                p.exit()

    def no_leak(self) -> None:
        def check() -> None:
            used = self.m.stats.frames_used
            if used != self.start_frames:
                raise _Failed(f"frames leaked: {used - self.start_frames} still in use")

        self.step("no frame leaked", check)


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB"


def _word(value: int) -> bytes:
    return struct.pack("<i", value)


def _pages(p: Process, addr: int, length: int) -> range:
    return range(addr, addr + length, PAGE_SIZE)


def _write_words(p: Process, addr: int, length: int, value: int) -> None:
    word = _word(value)
    for q in _pages(p, addr, length):
        p.write(q, word)


def _verify(p: Process, addr: int, length: int, value: int) -> None:
    word = _word(value)
    for q in _pages(p, addr, length):
        got = p.read(q, 4)
        if got != word:
            raise _Failed(f"wrong content at {q:#x} in pid {p.pid}: {struct.unpack('<i', got)[0]}, expected {value}")


def _simple(t: _Test, phys: int) -> None:
    sz = (phys // 3) * 2 // PAGE_SIZE * PAGE_SIZE
    box: Dict[str, Any] = {}
    p = t.spawn()

    def allocate() -> None:
        box["a"] = p.mmap(sz)
        _write_words(p, box["a"], sz, p.pid)

    t.step(f"allocate {_mib(sz)}, write each page", allocate)
    t.step("fork", lambda: box.__setitem__("c", t.fork(p)))
    t.step("child exits", lambda: t.exit(box["c"]))
    t.step("free", lambda: t.munmap(p, box["a"], sz))
    t.step("parent exits", lambda: t.exit(p))


def _three(t: _Test, phys: int) -> None:
    sz = phys // 4 // PAGE_SIZE * PAGE_SIZE
    box: Dict[str, Any] = {}
    p = t.spawn()

    def allocate() -> None:
        box["a"] = p.mmap(sz)
        _write_words(p, box["a"], sz, 0)  # sbrk hands out zeroed pages

    t.step(f"allocate {_mib(sz)} (zeroed)", allocate)
    t.step("fork child", lambda: box.__setitem__("c", t.fork(p)))
    t.step("child forks grandchild", lambda: box.__setitem__("g", t.fork(box["c"])))
    a, c, g = box["a"], box["c"], box["g"]
    g_len = (sz // 5) * 4 // PAGE_SIZE * PAGE_SIZE
    c_len = sz // 2 // PAGE_SIZE * PAGE_SIZE

    def interleaved() -> None:
        for q in _pages(p, a, sz):
            p.write(q, _word(p.pid))
            if q < a + g_len:
                g.write(q, _word(g.pid))
            if q < a + c_len:
                c.write(q, _word(9999))

    t.step("all three write, page by page", interleaved)
    t.step("grandchild verifies its pid", lambda: _verify(g, a, g_len, g.pid))
    t.step("child verifies 9999", lambda: _verify(c, a, c_len, 9999))
    t.step("grandchild exits", lambda: t.exit(g))
    t.step("child exits", lambda: t.exit(c))
    t.step("parent verifies its pid", lambda: _verify(p, a, sz, p.pid))
    t.step("free", lambda: t.munmap(p, a, sz))
    t.step("parent exits", lambda: t.exit(p))


def _forkloop(t: _Test, phys: int, rounds: int) -> None:
    sz = (phys // 5) * 2 // PAGE_SIZE * PAGE_SIZE
    box: Dict[str, Any] = {}
    p = t.spawn()

    def allocate() -> None:
        box["a"] = p.mmap(sz)
        _write_words(p, box["a"], sz, p.pid)

    t.step(f"allocate {_mib(sz)}, write each page", allocate)
    a = box["a"]
    for i in range(1, rounds + 1):
        t.step(f"round {i}: fork child", lambda: box.__setitem__("c", t.fork(p)))
        t.step(f"round {i}: child forks grandchild", lambda: box.__setitem__("g", t.fork(box["c"])))

        def writes_and_exits() -> None:
            g, c = box["g"], box["c"]
            g.write(a, _word(g.pid))
            _verify(g, a, PAGE_SIZE, g.pid)
            t.exit(g)
            c.write(a + PAGE_SIZE, _word(c.pid))
            _verify(c, a, PAGE_SIZE, p.pid)
            t.exit(c)

        t.step(f"round {i}: both write a page and exit", writes_and_exits)
    t.step("parent verifies its pid", lambda: _verify(p, a, sz, p.pid))
    t.step("parent exits", lambda: t.exit(p))


@renamed_keywords(modes="fork_modes")
def cowtest(
    memory: Size = "32MiB",
    fork_modes: Optional[Sequence[str]] = None,
    rounds: int = 10,
    cost_model: CostModelSpec = None,
    progress: bool = False,
) -> CowtestResult:
    """Runs xv6's copy-on-write tests under each fork strategy.

    Args:
        memory: the machine's physical memory (1 MiB to 1 GiB; data mode).
        fork_modes: fork strategies (default: every one in ``FORK_MODES``; old name ``modes``).
        rounds: fork/fork/exit rounds of ``forkloop`` (1 to 10000).
        cost_model: prices (a ``CostModel``, a dict, a JSON profile path; None: defaults).
        progress: show a progress bar on stderr (when it is a terminal).

    The run is deterministic (no randomness, so no seed).

    Raises:
        InvalidArgument: a parameter out of range (the message names it).
    """
    nbytes = check_size(_OP, "memory", memory, low_pages=256)
    if nbytes > 1 << 30:
        raise InvalidArgument(f"{_OP}: memory must be <= 1GiB (data mode), got {format_size(nbytes)}")
    mode_list = check_modes(_OP, "fork_modes", FORK_MODES if fork_modes is None else fork_modes)
    rounds = check_int(_OP, "rounds", rounds, 1, 10_000)
    model = resolve_cost_model(cost_model)
    tests: List[Tuple[Any, ...]] = []
    steps: List[Tuple[Any, ...]] = []
    runs = [(name, i) for name, count in COWTESTS for i in range(1, count + 1)]
    log.info("cowtest: %d tests under %s on %s", len(runs), ", ".join(mode_list), format_size(nbytes))
    started = time.perf_counter()
    bar = progress_bar(len(mode_list) * len(runs), "cowtest", progress, unit="test")
    frames_total = 0
    try:
        for mode in mode_list:
            with Machine(memory=nbytes, page_size=PAGE_SIZE, store_data=True) as m:
                frames_total = m.stats.frames_total
                phys = frames_total * PAGE_SIZE
                for name, i in runs:
                    label = f"{name} #{i}"
                    t = _Test(m, mode, label, model, steps)
                    failed_step, error = "", ""
                    try:
                        if name == "simple":
                            _simple(t, phys)
                        elif name == "three":
                            _three(t, phys)
                        else:
                            _forkloop(t, phys, rounds)
                        t.no_leak()
                    except _Failed as exc:
                        failed_step, error = exc.args
                        t.cleanup()
                    status = "FAILED" if failed_step else "ok"
                    if failed_step:
                        log.info("cowtest: %s: %s FAILED at %r: %s", mode, label, failed_step, error)
                    tests.append(
                        (mode, label, status, failed_step, error, t.count, t.peak,
                         m.stats.pages_copied - t.start_copied, t.priced / NS_PER_MS)
                    )
                    bar.update(1)
    finally:
        bar.close()
    log.info("cowtest: done in %.1f s", time.perf_counter() - started)
    params = {"memory": nbytes, "fork_modes": list(mode_list), "rounds": rounds, "page_size": PAGE_SIZE,
              "frames_total": frames_total}
    result_tables = (
        Table.build("tests", TEST_COLUMNS, tests,
                    title=f"cowtest: xv6's copy-on-write tests on a {format_size(nbytes)} machine (data mode)"),
        Table.build("steps", STEP_COLUMNS, steps, show=False),
    )
    notes = []
    summary: Dict[str, Any] = {}
    for mode in mode_list:
        bad = [r for r in tests if r[0] == mode and r[2] != "ok"]
        summary[f"passed_{mode}"] = not bad
        if bad:
            notes.append(f"{mode}: FAILED: {len(bad)} of {len(runs)} tests; first at {bad[0][1]}, "
                         f"step '{bad[0][3]}' ({bad[0][4]})")
        else:
            notes.append(f"{mode}: ALL COW TESTS PASSED ({len(runs)} tests)")
    return CowtestResult(frozen_map(params), model, result_tables, frozen_map(summary), tuple(notes))

