"""The events to price, read from the simulator's counters -- never a change to a machine.

An event is what the core counted for one operation: the entries and tables a
fork copied, the pages an exit unmapped.  :class:`cowsim.cost.CostModel` prices
them (``price_fork``, ``price_exit``, ``price_batch``, ``faults_ns``).

>>> import numpy as np, cowsim
>>> m = cowsim.Machine(memory="4MiB", store_data=False)
>>> p = m.spawn()
>>> a = p.mmap(8 * 4096)
>>> _ = p.access(a + 4096 * np.arange(8, dtype=np.uint64), write=True)
>>> before = m.stats
>>> c = p.fork()
>>> ev = fork_events(c, before, m.stats)
>>> (ev.ptes, ev.tables, ev.tables_shared, ev.pages_copied, ev.frames_allocated == c.stats.page_table_frames)
(8, 1, 0, 0, True)
>>> exit_events(c).pages_unmapped     # the child maps the 8 pages it shares
8
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from .. import MachineStats, ProcessStats

if TYPE_CHECKING:
    from ..process import Process

__all__ = ["ForkEvents", "ExitEvents", "fork_events", "exit_events", "stats_delta"]


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


@dataclass(frozen=True)
class ExitEvents:
    """What an exit (or an exec) of a process will unmap, read just before it.

    Attributes:
        pages_unmapped: the resident pages of the address space the exit tears down;
            0 for a vfork child, which gives the borrowed space back instead.
    """

    pages_unmapped: int


def fork_events(child: "Process", before: MachineStats, after: MachineStats) -> ForkEvents:
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
    s = child.stats
    return ForkEvents(ptes=s.fork_ptes, tables=s.fork_tables, table_frames=frames - copied,
                      pages_copied=copied, frames_allocated=frames, tables_shared=s.page_tables_shared)


def exit_events(proc: "Process") -> ExitEvents:
    """What ``proc``'s exit would unmap, read before it exits (nothing changes).

    A vfork child that still runs on its parent's address space unmaps nothing: the exit
    gives the space back.
    """
    if proc.borrowing:
        return ExitEvents(pages_unmapped=0)
    return ExitEvents(pages_unmapped=proc.smaps()["Rss"] * 1024 // proc.machine.page_size)


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
