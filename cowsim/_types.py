"""Plain result types: enums, frozen dataclasses and NumPy dtypes.

Enum values come from the C header through ``lib``, so there is one source.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from ._ffi import ffi, lib


class ProcessState(enum.IntEnum):
    """What a process is doing (``Process.state``); the core's ``cs_proc_state_t``."""

    EXITED = lib.CS_PROC_EXITED
    RUNNING = lib.CS_PROC_RUNNING
    SUSPENDED = lib.CS_PROC_SUSPENDED  # a vfork parent: its space is lent to the child
    BORROWING = lib.CS_PROC_BORROWING  # a vfork child, on its parent's space until exec or exit


class Outcome(enum.IntEnum):
    """What one access did (also the codes of batched accesses)."""

    HIT = lib.CS_HIT
    ZERO_PAGE = lib.CS_FAULT_ZERO_PAGE
    ZERO_FILL = lib.CS_FAULT_ZERO_FILL
    COW_COPY = lib.CS_FAULT_COW_COPY
    COW_REUSE = lib.CS_FAULT_COW_REUSE
    SHARED = lib.CS_FAULT_SHARED
    SEGFAULT = lib.CS_SEGFAULT


class FrameFlags(enum.IntFlag):
    """Flags of a physical frame, as in ``Machine.frames()['flags']``."""

    ANON = lib.CS_FRAME_ANON
    EXCLUSIVE = lib.CS_FRAME_EXCLUSIVE
    DIRTY = lib.CS_FRAME_DIRTY
    PAGETABLE = lib.CS_FRAME_PAGETABLE
    SHMEM = lib.CS_FRAME_SHMEM
    HUGE = lib.CS_FRAME_HUGE


def _from_struct(cls: Any, cdata: Any) -> Any:
    return cls(**{f.name: int(getattr(cdata, f.name)) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class MachineStats:
    """Machine-wide counters (frames are counted in pages of ``page_size``)."""

    frames_total: int
    frames_used: int
    frames_free: int
    page_table_frames: int
    data_frames: int
    frames_peak: int
    frames_allocated: int
    frames_freed: int
    pages_copied: int
    shared_objects: int
    processes: int
    forks: int
    minflt: int
    segfaults: int
    table_copies: int        # odf: shared last-level tables copied before a change
    table_reuses: int        # odf: write-protected tables taken over by their sole holder
    page_tables_shared: int  # odf: last-level tables held by several processes now
    thp_faults: int = 0      # huge pages allocated by faults
    thp_splits: int = 0      # huge mappings split into 512 entries
    process_records: int = 0  # records kept: live processes + exited ones a Process object holds
    pid_map_slots: int = 0   # slots of the core's pid -> record map (16 to 8 x process_records)

    def as_dict(self) -> Dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ProcessStats:
    """Per-process counters; ``minflt`` is the sum of the five fault kinds."""

    minflt: int
    faults_zero_page: int
    faults_zero_fill: int
    faults_cow_copy: int
    faults_cow_reuse: int
    faults_shared: int
    segfaults: int
    pages_copied: int
    page_table_frames: int
    accesses: int
    tlb_hits: int
    tlb_misses: int
    tlb_flushes: int
    table_copies: int        # odf: shared last-level tables this process copied
    table_reuses: int        # odf: write-protected tables it took over as sole holder
    page_tables_shared: int  # odf: of page_table_frames, tables other processes hold too
    fork_ptes: int           # entries copied into this process's tables by its fork
    fork_tables: int         # last-level tables its fork allocated for it
    thp_faults: int = 0      # huge pages its faults allocated
    thp_splits: int = 0      # huge mappings of its own it split

    def as_dict(self) -> Dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BatchResult:
    """What a batch of accesses did: counts per outcome, and how far it got.

    ``done`` accesses took effect (all of them unless the batch stopped);
    ``outcomes`` holds each access's :class:`Outcome` code when asked for.
    """

    hits: int
    zero_page: int
    zero_fill: int
    cow_copy: int
    cow_reuse: int
    shared: int
    segfaults: int
    done: int
    outcomes: Optional[np.ndarray] = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def faults(self) -> int:
        """Minor faults taken (every kind but hits and segfaults)."""
        return self.zero_page + self.zero_fill + self.cow_copy + self.cow_reuse + self.shared

    def counts(self) -> Dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "outcomes"}

    @classmethod
    def _from_c(cls, res: Any, outcomes: Optional[np.ndarray]) -> "BatchResult":
        c = res.counts
        return cls(
            hits=int(c[lib.CS_HIT]),
            zero_page=int(c[lib.CS_FAULT_ZERO_PAGE]),
            zero_fill=int(c[lib.CS_FAULT_ZERO_FILL]),
            cow_copy=int(c[lib.CS_FAULT_COW_COPY]),
            cow_reuse=int(c[lib.CS_FAULT_COW_REUSE]),
            shared=int(c[lib.CS_FAULT_SHARED]),
            segfaults=int(c[lib.CS_SEGFAULT]),
            done=int(res.done),
            outcomes=outcomes,
        )


PROT_NAMES = {lib.CS_PROT_NONE: "none", lib.CS_PROT_READ: "r", lib.CS_PROT_READ | lib.CS_PROT_WRITE: "rw"}
PROT_VALUES = {name: value for value, name in PROT_NAMES.items()}


@dataclass(frozen=True)
class Region:
    """One region (VMA): ``[start, end)`` with its protection and flags."""

    start: int
    end: int
    prot: str
    shared: bool
    dontfork: bool
    wipeonfork: bool
    written: bool  # has an anon_vma: fork copies its entries
    huge: bool = False  # THP-eligible (mmap(huge=True))

    @property
    def length(self) -> int:
        return self.end - self.start

    @classmethod
    def _from_c(cls, r: Any) -> "Region":
        flags = int(r.flags)
        return cls(
            start=int(r.start),
            end=int(r.end),
            prot=PROT_NAMES[int(r.prot)],
            shared=bool(flags & lib.CS_MAP_SHARED),
            dontfork=bool(flags & lib.CS_VMA_DONTFORK),
            wipeonfork=bool(flags & lib.CS_VMA_WIPEONFORK),
            written=bool(flags & lib.CS_VMA_ANON_VMA),
            huge=bool(flags & lib.CS_VMA_HUGE),
        )


@dataclass(frozen=True)
class Translation:
    """Where a virtual address maps: its frame (0 = the zero page) and entry bits."""

    frame: int
    writable: bool
    dirty: bool


PAGE_TABLE_DTYPE = np.dtype([("vpage", "u8"), ("frame", "u8"), ("writable", "?"), ("dirty", "?")])
FRAMES_DTYPE = np.dtype([("frame", "u8"), ("refcount", "u4"), ("mapcount", "u4"), ("flags", "u1")])
SMAPS_FIELDS = tuple(name for name, _ in ffi.typeof("cs_smaps").fields)
