"""Pricing: turn the events the core counts into modelled time with a :class:`CostModel`.

``costmodel.py`` holds the prices; this module gathers the *events* to price
from the simulator (entries and tables a fork copied, faults by kind, pages
copied) and applies the prices, so that every experiment prices the same way:

- a fork: ``fork_base_ns + ptes * fork_per_pte_ns + tables * fork_per_table_ns``
  (``tables`` = last-level tables the child got), plus
  ``fork_per_shared_table_ns`` per table an odf fork shared and ``copy_page_ns``
  per page an eager fork copies;
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
>>> (ev.ptes, ev.tables, ev.tables_shared, ev.pages_copied, ev.frames_allocated == c.stats.page_table_frames)
(8, 1, 0, 0, True)
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
        tables_shared: last-level tables the child shares with its parent (odf).
    """

    ptes: int
    tables: int
    table_frames: int
    pages_copied: int
    frames_allocated: int
    tables_shared: int = 0


def fork_events(child: Process, before: MachineStats, after: MachineStats) -> ForkEvents:
    """The events of the fork that created ``child``, read right after it.

    Args:
        child: the new process (before it ran).
        before, after: the machine's stats just before and just after the fork.

    The frames, copies and table frames come from the machine's counters; the entries
    and last-level tables copied and the tables shared, from the child's own counters
    (``fork_ptes``, ``fork_tables``, ``page_tables_shared``), exact for every strategy.
    """
    frames = after.frames_used - before.frames_used
    copied = after.pages_copied - before.pages_copied
    new_tables = frames - copied
    s = child.stats
    return ForkEvents(ptes=s.fork_ptes, tables=s.fork_tables, table_frames=new_tables, pages_copied=copied,
                      frames_allocated=frames, tables_shared=s.page_tables_shared)


def fork_ns(model: CostModel, events: ForkEvents) -> float:
    """Modelled fork latency: entry copy (``CostModel.fork_ns``), tables shared, page copies."""
    return (
        model.fork_ns(events.ptes, events.tables)
        + events.tables_shared * model.fork_per_shared_table_ns
        + events.pages_copied * model.copy_page_ns
    )


def batch_ns(model: CostModel, result: BatchResult, pages_copied: Optional[int] = None) -> float:
    """Modelled time of the faults a batch took (hits and segfaults are free).

    ``pages_copied``: the 4 KiB pages the batch's CoW faults copied, when a fault may copy
    more than one (a huge page under ``thp_cow="copy-huge"`` copies 512); default: one
    per CoW copy fault.
    """
    copies = result.cow_copy if pages_copied is None else pages_copied
    return (
        result.faults * model.fault_ns
        + result.zero_fill * model.zero_fill_ns
        + copies * model.copy_page_ns
        + result.cow_reuse * model.cow_reuse_ns
    )


def faults_ns(model: CostModel, stats: ProcessStats) -> float:
    """Modelled time of the faults counted in ``stats`` (e.g. a :func:`stats_delta`)."""
    return model.faults_ns(stats)


def stats_delta(after: ProcessStats, before: Optional[ProcessStats] = None) -> ProcessStats:
    """The counters of a phase: ``after - before`` field by field (``before`` None: all of ``after``).

    ``page_table_frames`` and ``page_tables_shared`` are levels, not counters: the
    delta keeps ``after``'s.
    """
    if before is None:
        return after
    values = {}
    for f in dataclasses.fields(ProcessStats):
        a, b = getattr(after, f.name), getattr(before, f.name)
        values[f.name] = a if f.name in ("page_table_frames", "page_tables_shared") else a - b
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
