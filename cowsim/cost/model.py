"""``CostModel``: nanosecond prices for the events cowsim counts, and every price of them.

cowsim counts what the kernel would do (entries copied at fork, tables
allocated, faults by kind, pages copied); a cost model turns those counts into
a modelled time.  The events come from :mod:`cowsim.cost.events` (reads of the
simulator's counters, never a change to a machine); this module is the one
place that prices them.  ``cowsim calibrate`` measures the prices on the host
kernel (see ``cowsim.host.calibrate`` and docs/VALIDATION.md) and writes a
profile that :meth:`CostModel.load` reads (:mod:`cowsim.cost.profile`).

Fault prices are additive: every fault pays ``fault_ns`` (entry, walk, exit:
the whole cost of the cheapest fault, a zero-page read), plus

==============  ===========================================================
fault kind      extra
==============  ===========================================================
zero page       nothing
zero fill       ``zero_fill_ns`` (allocate and clear a frame)
CoW copy        ``copy_page_ns`` (allocate, copy 4 KiB, rmap, free-side work)
CoW reuse       ``cow_reuse_ns`` (the exclusivity check and remap)
shared (shmem)  nothing (the fault-around mapping is part of ``fault_ns``)
==============  ===========================================================

A fork costs ``fork_base_ns + ptes * fork_per_pte_ns + tables *
fork_per_table_ns`` (``tables`` = last-level tables the child gets), plus
``fork_per_shared_table_ns`` per last-level table an odf fork shares; an odf
table copy later costs a table and its entries (:meth:`CostModel.table_copy_ns`).

The defaults are calibrated values (``cowsim calibrate``, full mode; the
per-parameter median of six runs) from Linux 6.18.44-fc-v782 x86_64 on an
"AMD EPYC" (family 25 model 1, Zen 3) virtual machine with 2 vCPUs and 24 GiB,
a Firecracker guest shared with other jobs; docs/VALIDATION.md has the
profile.  On bare metal expect faults and forks to cost less.

>>> m = CostModel()
>>> m.fork_ns(ptes=512, tables=1) > m.fork_base_ns
True
>>> CostModel.load({"fault_ns": 500.0}).fault_ns
500.0
>>> CostModel(fork_base_ns=1000, fork_per_pte_ns=10, fork_per_table_ns=100).price_fork(
...     ForkEvents(ptes=8, tables=1, table_frames=4, pages_copied=0, frames_allocated=4))
1180.0
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from .. import BatchResult, Outcome, ProcessStats
from ..errors import InvalidArgument
from .events import ExitEvents, ForkEvents

__all__ = ["CostModel", "NS_PER_MS"]

NS_PER_MS = 1e6


@dataclass(frozen=True)
class CostModel:
    """Prices in nanoseconds (floats >= 0, finite).

    Attributes:
        fork_base_ns: a fork of a process with no resident page (process and
            VMA duplication, the parent's return).
        fork_per_pte_ns: per present entry the child gets (refcount, rmap,
            write-protect).
        fork_per_table_ns: per last-level page table the child gets.
        fork_per_shared_table_ns: per last-level table an odf fork shares (a
            level-1 entry written, write-protected, and a reference taken).  Not
            measurable on a stock kernel: set so that an odf fork of 1 GiB models
            65x faster than a cow fork with the default prices, the ratio
            On-Demand-Fork (Zhao et al., EuroSys 2021) reports at 1 GB.
        fault_ns: entry, walk and exit of any fault (a zero-page read fault).
        zero_fill_ns: extra for allocating and zeroing a frame.
        copy_page_ns: extra for a CoW copy (allocate, copy 4 KiB, remap).
        cow_reuse_ns: extra for a CoW reuse (no copy).
        tlb_flush_ns: a TLB flush of one page (mprotect of a present page
            minus mprotect of an absent one).
        exit_per_page_ns: unmapping and freeing one resident page (munmap/exit).
        exec_ns: an execve of a small program beyond the unmapping of the old
            address space: not calibrated; set so that vfork + exec models at
            about 0.5 ms, what posix_spawn (vfork + exec) is reported to cost
            whatever the parent's size.
    """

    fork_base_ns: float = 87_000.0
    fork_per_pte_ns: float = 136.0
    fork_per_table_ns: float = 2_600.0
    fork_per_shared_table_ns: float = 940.0
    fault_ns: float = 965.0
    zero_fill_ns: float = 1_670.0
    copy_page_ns: float = 2_860.0
    cow_reuse_ns: float = 420.0
    tlb_flush_ns: float = 390.0
    exit_per_page_ns: float = 350.0
    exec_ns: float = 410_000.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidArgument(f"CostModel: {f.name} must be a number of ns, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise InvalidArgument(f"CostModel: {f.name} must be finite and >= 0, got {value!r}")
            object.__setattr__(self, f.name, float(value))

    # -- prices ---------------------------------------------------------------------
    def fork_ns(self, ptes: int, tables: int = -1, entries_per_table: int = 512) -> float:
        """Modelled fork latency for a child that gets ``ptes`` entries in
        ``tables`` last-level tables (default: the fewest that hold them)."""
        if tables < 0:
            tables = -(-ptes // entries_per_table)
        return self.fork_base_ns + ptes * self.fork_per_pte_ns + tables * self.fork_per_table_ns

    def fault_cost_ns(self, kind: Union[Outcome, int, str]) -> float:
        """The price of one access outcome (``Outcome`` or its name; hits and
        segfaults cost 0 here).

        >>> CostModel(fault_ns=1, zero_fill_ns=2).fault_cost_ns("ZERO_FILL")
        3.0
        """
        if isinstance(kind, str):
            try:
                kind = Outcome[kind.upper()]
            except KeyError:
                raise InvalidArgument(f"CostModel: unknown outcome {kind!r}") from None
        kind = Outcome(kind)
        extra = {
            Outcome.ZERO_PAGE: 0.0,
            Outcome.ZERO_FILL: self.zero_fill_ns,
            Outcome.COW_COPY: self.copy_page_ns,
            Outcome.COW_REUSE: self.cow_reuse_ns,
            Outcome.SHARED: 0.0,
        }
        if kind not in extra:
            return 0.0
        return self.fault_ns + extra[kind]

    def table_copy_ns(self, entries_per_table: int = 512) -> float:
        """An odf table copy: the fork work deferred for one full table (a table
        and each of its entries), done by the fault or change that unshares it."""
        return self.fork_per_table_ns + entries_per_table * self.fork_per_pte_ns

    def faults_ns(self, stats: ProcessStats) -> float:
        """The modelled time of all faults a process took (its ``ProcessStats``),
        odf table copies included (priced as full tables)."""
        return (
            stats.minflt * self.fault_ns
            + stats.faults_zero_fill * self.zero_fill_ns
            + stats.faults_cow_copy * self.copy_page_ns
            + stats.faults_cow_reuse * self.cow_reuse_ns
            + stats.table_copies * self.table_copy_ns()
        )

    def exit_ns(self, resident_pages: int) -> float:
        """Modelled time to unmap ``resident_pages`` pages at exit or munmap."""
        return resident_pages * self.exit_per_page_ns

    # -- events (cowsim.cost.events) --------------------------------------------------
    def price_fork(self, events: ForkEvents) -> float:
        """Modelled fork latency: the entry copy (:meth:`fork_ns`), the tables an odf fork
        shared, and the pages an eager fork copied."""
        return (
            self.fork_ns(events.ptes, events.tables)
            + events.tables_shared * self.fork_per_shared_table_ns
            + events.pages_copied * self.copy_page_ns
        )

    def price_batch(self, result: BatchResult, pages_copied: Optional[int] = None) -> float:
        """Modelled time of the faults a batch took (hits and segfaults are free).

        ``pages_copied``: the 4 KiB pages the batch's CoW faults copied, when a fault may copy
        more than one (a huge page under ``thp_cow="copy-huge"`` copies 512); default: one
        per CoW copy fault.
        """
        copies = result.cow_copy if pages_copied is None else pages_copied
        return (
            result.faults * self.fault_ns
            + result.zero_fill * self.zero_fill_ns
            + copies * self.copy_page_ns
            + result.cow_reuse * self.cow_reuse_ns
        )

    def price_exit(self, events: ExitEvents) -> float:
        """Modelled time of an exit (or exec): the pages it unmapped."""
        return self.exit_ns(events.pages_unmapped)

    # -- files ----------------------------------------------------------------------
    def to_dict(self) -> Dict[str, float]:
        """The parameters by name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CostModel":
        """A model from parameters by name; missing ones take the defaults.

        Raises:
            InvalidArgument: an unknown name or a bad value.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"CostModel: expected a mapping of parameters, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidArgument(
                f"CostModel: unknown parameter(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(names))}"
            )
        return cls(**dict(data))

    @classmethod
    def load(cls, source: Union[str, Path, Mapping[str, Any]]) -> "CostModel":
        """A model from a profile file (JSON, as ``cowsim calibrate`` writes), a
        profile dict (with a ``cost_model`` table), or a dict of parameters
        (:func:`cowsim.cost.profile.load`).

        Raises:
            InvalidArgument: unreadable file, not JSON, or bad parameters.
        """
        from .profile import load

        return load(source)

    def save(self, path: Union[str, Path]) -> None:
        """Writes the model as a profile file that :meth:`load` reads."""
        from .profile import save

        save(self, path)
