"""fork-cost: what a fork costs, by resident size, fork strategy and child write fraction.

For each resident size a parent writes every page of one private region (so
every page is resident and fork copies its entries), then, for each fork
strategy and each write fraction, it forks, the child writes that fraction of
the pages (a seeded random subset; the subsets are nested, 1 % inside 10 % …),
and the child exits.  The same populated parent serves every fork of a size:
after the child's exit the parent's frames are its own again, so each fork
sees the same state (the counts are the same as from a fresh parent).

Reported per row: the simulator's wall time of the fork, the modelled fork
latency (``CostModel.price_fork``), the frames the fork took, both page-table
sizes, the pages copied after the fork, the peak frames in use, and the memory
saved against an eager copy: the pages an eager fork copies (every resident
private page) minus the pages this strategy copied in all (at fork and after).

A second table, ``spawn``, prices starting a new program: for each size and
strategy the child calls exec() at once (fork + exec; vfork + exec is what
posix_spawn does).  The exec unmaps the entries the fork gave the child
(``fork_ptes``: none after vfork, none in the tables odf shares) and costs
``CostModel.exec_ns`` on top.

Between forks the parent writes every page again: a cow fork leaves the
parent's entries write-protected, and the rewrite (reuse faults, no copy)
brings back the freshly populated state, so that every fork, not only the
first, pays for write-protecting the parent's entries, as a fork of a busy
parent does.  Before the measured forks of each strategy, one unmeasured fork
(and exit) warms the simulator up: the first fork on a fresh machine also pays
for the host's first touch of the simulator's own memory.

With ``thp="split"`` (or ``"copy-huge"``) the parent's region is in 2 MiB
transparent huge pages: a fork shares one write-protected entry per 2 MiB (plus
the page table Linux deposits for the child), and the child's first write to a
huge page splits its mapping and copies 4 KiB (``"copy-huge"``: copies the
whole 2 MiB, as kernels before 5.8 did).

>>> r = fork_cost(sizes=["1MiB"], fork_modes=["cow", "eager"], write_fractions=[0.0, 1.0])
>>> [(row["mode"], row["write_fraction"], row["copied_after"], row["saved_pages"]) for row in r.records()]
[('cow', 0.0, 0, 256), ('cow', 1.0, 256, 0), ('eager', 0.0, 0, 0), ('eager', 1.0, 0, 0)]
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

import numpy as np

from .. import ForkMode, ThpCow
from ..machine import Machine
from ..cost import CostModel, CostModelSpec, NS_PER_MS, exit_events, fork_events, resolve_cost_model
from ..units import Size, format_size
from ._common import (
    FORK_MODES,
    PAGE_SIZE,
    Column,
    ExperimentResult,
    Table,
    check_float,
    check_modes,
    check_thp,
    renamed_keywords,
    check_seed,
    check_seq,
    check_size,
    frozen_map,
    log,
    machine_memory,
    mib,
    progress_bar,
)

__all__ = ["fork_cost", "ForkCostResult", "DEFAULT_SIZES", "DEFAULT_WRITE_FRACTIONS"]

DEFAULT_SIZES: Tuple[str, ...] = ("64MiB", "256MiB", "1GiB", "4GiB")
DEFAULT_WRITE_FRACTIONS: Tuple[float, ...] = (0.0, 0.01, 0.10, 0.50, 1.0)

_OP = "fork_cost"

COLUMNS = (
    Column("size", "U12", "size"),
    Column("size_bytes", "i8", text=False),
    Column("resident_pages", "i8", text=False),
    Column("mode", "U8", "mode"),
    Column("write_fraction", "f8", "writes", ".0%"),
    Column("pages_written", "i8", text=False),
    Column("fork_wall_ms", "f8", "sim fork ms", ".3f", wallclock=True),
    Column("fork_model_ms", "f8", "model fork ms", ".2f"),
    Column("frames_at_fork", "i8", "frames@fork", ",d"),
    Column("pt_parent", "i8", "PT parent", ",d"),
    Column("pt_child", "i8", "PT child", ",d"),
    Column("ptes_copied", "i8", text=False),
    Column("leaf_tables", "i8", text=False),
    Column("tables_shared", "i8", text=False),
    Column("table_copies_after", "i8", text=False),
    Column("copied_at_fork", "i8", text=False),
    Column("copied_after", "i8", "copied after", ",d"),
    Column("peak_frames", "i8", "peak frames", ",d"),
    Column("saved_pages", "i8", "saved pages", ",d"),
    Column("saved_mib", "f8", "saved MiB", ",.1f"),
    Column("writes_model_ms", "f8", text=False),
    Column("exit_model_ms", "f8", text=False),
)


SPAWN_COLUMNS = (
    Column("size", "U12", "size"),
    Column("size_bytes", "i8", text=False),
    Column("mode", "U8", "fork"),
    Column("fork_model_ms", "f8", "model fork ms", ".2f"),
    Column("exec_model_ms", "f8", "model exec ms", ".2f"),
    Column("spawn_model_ms", "f8", "model fork+exec ms", ".2f"),
    Column("frames_at_fork", "i8", "frames@fork", ",d"),
    Column("entries_unmapped", "i8", "entries unmapped", ",d"),
    Column("spawn_wall_ms", "f8", "sim fork+exec ms", ".3f", wallclock=True),
)


@dataclass(frozen=True)
class ForkCostResult(ExperimentResult):
    """Result of :func:`fork_cost`; the main table ``forks`` has one row per
    (size, mode, write fraction), in that order; the table ``spawn`` one per
    (size, mode): the child execs right after the fork."""

    experiment = "fork-cost"

    def _figure(self, plt: Any) -> Any:
        data = self.to_numpy()
        modes = list(dict.fromkeys(data["mode"].tolist()))
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        sizes = np.unique(data["size_bytes"])
        for i, mode in enumerate(modes):
            rows = data[data["mode"] == mode]
            model_ms = [rows["fork_model_ms"][rows["size_bytes"] == sz][0] for sz in sizes]
            wall_ms = [np.median(rows["fork_wall_ms"][rows["size_bytes"] == sz]) for sz in sizes]
            left.plot(sizes / (1 << 20), model_ms, marker="o", color=f"C{i}", label=f"{mode}: modelled kernel")
            left.plot(sizes / (1 << 20), wall_ms, marker="x", linestyle=":", color=f"C{i}",
                      label=f"{mode}: simulator (median)")
        left.set_xscale("log", base=2)
        left.set_yscale("log")
        low, high = left.get_ylim()
        left.set_ylim(low, high * 100)  # room for the legend
        left.set_xlabel("resident size (MiB)")
        left.set_ylabel("fork latency (ms)")
        left.set_title("fork latency")
        left.legend(fontsize=6, loc="upper left")
        big = data[data["size_bytes"] == data["size_bytes"].max()]
        for i, mode in enumerate(modes):
            rows = big[big["mode"] == mode]
            right.plot(100 * rows["write_fraction"], mib(1) * rows["peak_frames"], marker="o", color=f"C{i}",
                       label=mode)
        right.set_xlabel("pages the child writes (%)")
        right.set_ylabel("peak memory (MiB)")
        right.set_title(f"peak memory, {format_size(int(big['size_bytes'][0]))} parent")
        right.legend(fontsize=7)
        fig.tight_layout()
        return fig


def _fraction(op: str, name: str, value: Any) -> float:
    return check_float(op, name, value, 0.0, 1.0)


@renamed_keywords(modes="fork_modes")
def fork_cost(
    sizes: Sequence[Size] = DEFAULT_SIZES,
    fork_modes: Optional[Sequence[str]] = None,
    write_fractions: Sequence[float] = DEFAULT_WRITE_FRACTIONS,
    seed: int = 0,
    cost_model: CostModelSpec = None,
    progress: bool = False,
    thp: str = "off",
) -> ForkCostResult:
    """Measures and models the cost of fork() by resident size, strategy and child writes.

    Args:
        sizes: resident sizes of the parent (bytes or "64MiB"; rounded up to pages).
        fork_modes: fork strategies (default: every one in ``FORK_MODES``; old name ``modes``).
        write_fractions: fractions of the pages the child writes after the fork, in [0, 1].
        seed: chooses which pages the child writes.
        cost_model: prices (a ``CostModel``, a dict, a JSON profile path; None: defaults).
        progress: show a progress bar on stderr (when it is a terminal).
        thp: "off", or the parent's memory in 2 MiB transparent huge pages with a child's write
            to a shared one splitting it ("split") or copying 2 MiB ("copy-huge"); the old
            bool spelling (True = "split") still works, with a ``DeprecationWarning``.

    Returns:
        A :class:`ForkCostResult`.

    Raises:
        InvalidArgument: a parameter out of range (the message names it).
    """
    size_list = check_seq(_OP, "sizes", sizes, lambda o, n, v: check_size(o, n, v))
    mode_list = check_modes(_OP, "fork_modes", FORK_MODES if fork_modes is None else fork_modes)
    fractions = check_seq(_OP, "write_fractions", write_fractions, _fraction)
    seed = check_seed(_OP, seed)
    thp = check_thp(_OP, thp)
    model = resolve_cost_model(cost_model)
    params = {
        "sizes": list(size_list),
        "fork_modes": list(mode_list),
        "write_fractions": list(fractions),
        "seed": seed,
        "page_size": PAGE_SIZE,
        "thp": thp,
    }
    log.info(
        "fork-cost: %d sizes x %d modes x %d write fractions", len(size_list), len(mode_list), len(fractions)
    )
    started = time.perf_counter()
    rows: List[Tuple[Any, ...]] = []
    spawn_rows: List[Tuple[Any, ...]] = []
    bar = progress_bar(len(size_list) * len(mode_list) * len(fractions), "fork-cost", progress, unit="fork")
    try:
        for size in size_list:
            rows.extend(_one_size(size, mode_list, fractions, seed, model, bar, thp, spawn_rows))
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    log.info("fork-cost: done in %.1f s", elapsed)
    table = Table.build(
        "forks",
        COLUMNS,
        rows,
        title=f"fork-cost: fork of a parent with every page resident{_huge_title(thp)}, "
        f"then the child writes a fraction of the pages (seed {seed})",
    )
    spawn = Table.build(
        "spawn",
        SPAWN_COLUMNS,
        spawn_rows,
        title="spawn: the child calls exec() right after the fork (vfork + exec is posix_spawn)",
    )
    summary: Dict[str, Any] = {"run_wall_s": elapsed}
    wallclock_notes = (f"sim fork ms: the simulator's wall time for the fork (this run: {elapsed:.1f} s in all).",)
    notes: Tuple[str, ...] = (
        "model fork ms: modelled kernel fork latency, fork_base + ptes*per_pte + leaf tables*per_table"
        " (+ copy_page per page an eager fork copies).",
        "frames@fork: frames the fork took (the child's page tables, plus the copies of an eager fork);"
        " PT: page-table frames each process holds right after the fork; copied after: pages copied by"
        " the child's writes.",
        "saved: pages an eager fork would copy minus the pages this strategy copied (at fork and after);"
        " peak frames: machine-wide (parent + child), tables included.",
        "spawn: model exec ms = exec + entries unmapped*exit_per_page; the exec unmaps the entries the"
        " fork gave the child (none after vfork; none in tables an odf fork shares).",
    )
    if "odf" in mode_list:
        notes += (
            "odf: the child shares the parent's last-level tables (write-protected) and copies one on its"
            " first write in its 2 MiB span; model fork ms adds fork_per_shared_table per table shared.",
        )
    if thp != "off":
        notes += (
            "thp: the parent's memory is in 2 MiB huge pages; a fork shares each as one entry (eager copies"
            " its 512 pages), PT counts the deposited tables, and a child's first write to a huge page"
            + (" splits its mapping and copies 4 KiB." if thp == "split" else " copies the whole 2 MiB."),
        )
    if "vfork" in mode_list:
        notes += (
            "vfork: the child borrows the parent's address space (the parent waits), so nothing is copied"
            " and the child's writes land in the parent's own pages.",
        )
    return ForkCostResult(frozen_map(params), model, (table, spawn), frozen_map(summary), notes, wallclock_notes)


def _huge_title(thp: str) -> str:
    return "" if thp == "off" else " in huge pages" + ("" if thp == "split" else f" ({thp})")


def _one_size(
    size: int,
    modes: Tuple[str, ...],
    fractions: Tuple[float, ...],
    seed: int,
    model: CostModel,
    bar: Any,
    thp: str = "off",
    spawn_rows: Optional[List[Tuple[Any, ...]]] = None,
) -> List[Tuple[Any, ...]]:
    pages = size // PAGE_SIZE
    rows: List[Tuple[Any, ...]] = []
    huge = thp != "off"
    memory = machine_memory(2 * pages + (1024 if huge else 0))   # thp: room to align the blocks
    with Machine(memory=memory, page_size=PAGE_SIZE, store_data=False, thp_cow=cast(ThpCow, "split" if not huge else thp)) as m:
        parent = m.spawn()
        base = parent.mmap(size, huge=huge)
        offsets = np.arange(pages, dtype=np.uint64) * np.uint64(PAGE_SIZE)
        every_page = offsets + np.uint64(base)
        parent.access(every_page, write=True)
        resident = parent.smaps()["Anonymous"] * 1024 // PAGE_SIZE  # what an eager fork copies
        order = np.random.default_rng([seed, pages]).permutation(pages)
        for mode in modes:
            parent.fork(cast(ForkMode, mode)).exit()  # warm-up, unmeasured
            parent.access(every_page, write=True)
            if spawn_rows is not None:
                spawn_rows.append(_spawn(m, parent, mode, size, model))
                parent.access(every_page, write=True)
            for fraction in fractions:
                bar.set_postfix_str(f"{format_size(size)} {mode} {fraction:.0%}")
                before = m.stats
                t0 = time.perf_counter_ns()
                child = parent.fork(cast(ForkMode, mode))
                wall_ns = time.perf_counter_ns() - t0
                after_fork = m.stats
                ev = fork_events(child, before, after_fork)
                pt_parent, pt_child = parent.stats.page_table_frames, child.stats.page_table_frames
                k = math.floor(fraction * pages + 0.5)
                written = np.sort(order[:k]).astype(np.uint64) * np.uint64(PAGE_SIZE) + np.uint64(base)
                res = child.access(written, write=True)
                after_writes = m.stats
                table_copies = child.stats.table_copies  # odf: tables the writes unshared
                writes_ns = model.price_batch(res) + table_copies * model.table_copy_ns()
                exit_ev = exit_events(child)
                child.exit()
                exit_model_ns = model.price_exit(exit_ev)
                parent.access(every_page, write=True)  # writable and exclusive again (reuse, no copy)
                copied_after = after_writes.pages_copied - after_fork.pages_copied
                peak = max(after_fork.frames_used, after_writes.frames_used)
                saved = resident - (ev.pages_copied + copied_after)
                rows.append(
                    (
                        format_size(size),
                        size,
                        pages,
                        mode,
                        fraction,
                        k,
                        wall_ns / NS_PER_MS,
                        model.price_fork(ev) / NS_PER_MS,
                        ev.frames_allocated,
                        pt_parent,
                        pt_child,
                        ev.ptes,
                        ev.tables,
                        ev.tables_shared,
                        table_copies,
                        ev.pages_copied,
                        copied_after,
                        peak,
                        saved,
                        mib(saved),
                        writes_ns / NS_PER_MS,
                        exit_model_ns / NS_PER_MS,
                    )
                )
                bar.update(1)
    return rows


def _spawn(m: Machine, parent: Any, mode: str, size: int, model: CostModel) -> Tuple[Any, ...]:
    """fork + exec at once: the exec unmaps what the fork gave the child."""
    before = m.stats
    t0 = time.perf_counter_ns()
    child = parent.fork(mode)
    wall_ns = time.perf_counter_ns() - t0
    after = m.stats
    events = fork_events(child, before, after)   # before the exec: tables shared is a level
    t0 = time.perf_counter_ns()
    child.exec()
    wall_ns += time.perf_counter_ns() - t0
    unmapped = child.stats.fork_ptes   # the child's own entries: all of them, right after the fork
    child.exit()
    fork_model = model.price_fork(events)
    exec_model = model.exec_ns + unmapped * model.exit_per_page_ns
    return (
        format_size(size),
        size,
        mode,
        fork_model / NS_PER_MS,
        exec_model / NS_PER_MS,
        (fork_model + exec_model) / NS_PER_MS,
        after.frames_used - before.frames_used,
        unmapped,
        wall_ns / NS_PER_MS,
    )
