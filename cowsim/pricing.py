"""Pricing: turn the events the core counts into modelled time with a :class:`CostModel`.

``costmodel.py`` holds the prices; this module gathers the *events* to price
from the simulator (entries and tables a fork copied, faults by kind, pages
copied) and applies the prices, so that every experiment prices the same way:

- a fork: ``fork_base_ns + ptes * fork_per_pte_ns + tables * fork_per_table_ns``
  (``tables`` = last-level tables the child got), plus ``copy_page_ns`` per page
  an eager fork copies;
- a phase of accesses: every fault priced by kind (``CostModel.fault_cost_ns``);
- an exit: ``exit_per_page_ns`` per resident page.

>>> import cowsim
>>> m = cowsim.Machine(memory="4MiB", store_data=False)
>>> p = m.spawn()
>>> a = p.mmap(8 * 4096)
>>> _ = p.access(a + 4096 * np.arange(8, dtype=np.uint64), write=True)
>>> before = m.stats
>>> c = p.fork()
>>> ev = fork_events(c, before, m.stats)
>>> (ev.ptes, ev.tables, ev.pages_copied, ev.frames_allocated == c.stats.page_table_frames)
(8, 1, 0, True)
>>> model = CostModel(fork_base_ns=1000, fork_per_pte_ns=10, fork_per_table_ns=100)
>>> fork_ns(model, ev)
1180.0
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from ._types import BatchResult, MachineStats, ProcessStats
from .costmodel import CostModel
from .errors import InvalidArgument
from .process import Process

__all__ = [
    "CostModelSpec",
    "ForkEvents",
    "resolve_cost_model",
    "fork_events",
    "fork_ns",
    "batch_ns",
    "faults_ns",
    "stats_delta",
    "exit_ns",
    "exit_priced",
    "NS_PER_MS",
]

NS_PER_MS = 1e6

#: What ``cost_model=`` accepts: a model, a dict of parameters, a profile file path, or None.
CostModelSpec = Union[CostModel, Mapping[str, Any], str, Path, None]


def resolve_cost_model(cost_model: CostModelSpec, what: str = "cost_model") -> CostModel:
    """Returns a :class:`CostModel` from what a user passed.

    Args:
        cost_model: None (the calibrated defaults), a ``CostModel``, a dict of
            parameters (missing ones default), or the path of a JSON profile.
        what: the parameter's name, for error messages.

    Raises:
        InvalidArgument: an unreadable file, or unknown/bad parameters.
        TypeError: anything else.

    >>> resolve_cost_model({"fault_ns": 1.0}).fault_ns
    1.0
    """
    if cost_model is None:
        return CostModel()
    if isinstance(cost_model, CostModel):
        return cost_model
    if isinstance(cost_model, (str, Path, Mapping)):
        try:
            return CostModel.load(cost_model)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{what}: {exc}") from None
    raise TypeError(
        f"{what} must be a CostModel, a dict of prices or a JSON file path, not {type(cost_model).__name__}"
    )


@dataclass(frozen=True)
class ForkEvents:
    """What one fork did, as counted by the core.

    Attributes:
        ptes: present entries copied into the child's new tables (zero-page entries
            included; 0 when the fork made no last-level table, e.g. ``vfork``).
        tables: last-level page tables the fork allocated for the child.
        table_frames: every table frame the fork allocated (root and upper levels included).
        pages_copied: pages copied at fork (an eager fork's copies; 0 for cow).
        frames_allocated: frames the fork took (tables plus copies).
    """

    ptes: int
    tables: int
    table_frames: int
    pages_copied: int
    frames_allocated: int


def upper_tables(vpages: np.ndarray, levels: int, entries_per_table: int) -> int:
    """Non-root, non-leaf tables needed to reach the given virtual pages."""
    bits = entries_per_table.bit_length() - 1
    total = 0
    for level in range(2, levels):
        total += len(np.unique(vpages >> np.uint64(bits * level)))
    return total


def fork_events(child: Process, before: MachineStats, after: MachineStats) -> ForkEvents:
    """The events of the fork that created ``child``, read right after it.

    Args:
        child: the new process (before it ran).
        before, after: the machine's stats just before and just after the fork.

    The frames, copies and table frames come from the machine's counters, so they
    hold for every strategy.  The leaf tables are the new table frames minus the
    child's root and the upper-level tables its present entries need (exact unless
    a whole upper-level subtree of the child holds no present entry); the entries
    copied are the child's present entries when the fork made leaf tables, else 0.
    """
    frames = after.frames_used - before.frames_used
    copied = after.pages_copied - before.pages_copied
    new_tables = frames - copied
    ptes = leaf = 0
    if new_tables > 1:  # more than a root: entries were copied
        m = child.machine
        vpages = child.page_table()["vpage"]
        leaf = max(new_tables - 1 - upper_tables(vpages, m.levels, m.entries_per_table), 0)
        ptes = len(vpages) if leaf else 0
    return ForkEvents(ptes=ptes, tables=leaf, table_frames=new_tables, pages_copied=copied, frames_allocated=frames)


def fork_ns(model: CostModel, events: ForkEvents) -> float:
    """Modelled fork latency: entry copy (``CostModel.fork_ns``) plus the page copies."""
    return model.fork_ns(events.ptes, events.tables) + events.pages_copied * model.copy_page_ns


def batch_ns(model: CostModel, result: BatchResult) -> float:
    """Modelled time of the faults a batch took (hits and segfaults are free)."""
    return (
        result.faults * model.fault_ns
        + result.zero_fill * model.zero_fill_ns
        + result.cow_copy * model.copy_page_ns
        + result.cow_reuse * model.cow_reuse_ns
    )


def faults_ns(model: CostModel, stats: ProcessStats) -> float:
    """Modelled time of the faults counted in ``stats`` (e.g. a :func:`stats_delta`)."""
    return model.faults_ns(stats)


def stats_delta(after: ProcessStats, before: Optional[ProcessStats] = None) -> ProcessStats:
    """The counters of a phase: ``after - before`` field by field (``before`` None: all of ``after``).

    ``page_table_frames`` is a level, not a counter: the delta keeps ``after``'s.
    """
    if before is None:
        return after
    values = {}
    for f in dataclasses.fields(ProcessStats):
        a, b = getattr(after, f.name), getattr(before, f.name)
        values[f.name] = a if f.name == "page_table_frames" else a - b
    return ProcessStats(**values)


def exit_ns(model: CostModel, resident_pages: int) -> float:
    """Modelled time to unmap ``resident_pages`` pages at exit."""
    return model.exit_ns(resident_pages)


def exit_priced(model: CostModel, proc: Process) -> float:
    """Exits ``proc`` and returns the modelled time of the unmapping.

    The pages unmapped are the process's resident pages when the exit released its
    page tables; a process that only gives a borrowed address space back (a vfork
    child) unmaps nothing.
    """
    m = proc.machine
    resident = proc.smaps()["Rss"] * 1024 // m.page_size
    tables = m.stats.page_table_frames
    proc.exit()
    return model.exit_ns(resident) if m.stats.page_table_frames < tables else 0.0
