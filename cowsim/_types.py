"""Plain result types: enums, frozen dataclasses and NumPy dtypes.

Enum values come from the C header through ``lib``, so there is one source.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Literal, Optional

import numpy as np

from ._ffi import ffi, lib


#: The string choices of the API, for type checkers (the values are checked at run time too).
ForkMode = Literal["cow", "eager", "odf", "vfork"]
Prot = Literal["none", "r", "rw"]
Advice = Literal["dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed", "random", "normal"]
ThpCow = Literal["split", "copy-huge"]
OnSegfault = Literal["continue", "raise"]


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
    FILE = lib.CS_FAULT_FILE  # FR1: a read fault in a private file mapping
    SIGBUS = lib.CS_SIGBUS  # FB1: a file page wholly past the end of the file


class FrameFlags(enum.IntFlag):
    """Flags of a physical frame, as in ``Machine.frames()['flags']``."""

    ANON = lib.CS_FRAME_ANON
    EXCLUSIVE = lib.CS_FRAME_EXCLUSIVE
    DIRTY = lib.CS_FRAME_DIRTY
    PAGETABLE = lib.CS_FRAME_PAGETABLE
    SHMEM = lib.CS_FRAME_SHMEM
    HUGE = lib.CS_FRAME_HUGE
    FILE = lib.CS_FRAME_FILE  # a page-cache page (DIRTY: its folio is dirty)


def _from_struct(cls: Any, cdata: Any) -> Any:
    return cls(**{f.name: int(getattr(cdata, f.name)) for f in dataclasses.fields(cls)})


def _counters(name: str, ctype: str, doc: str) -> Any:
    """A frozen dataclass with one ``int`` field per field of the C struct ``ctype``, in its
    order: a new counter is one line in ``csrc/cowsim.h`` (where each field is documented)."""
    fields = [(field, int) for field, _ in ffi.typeof(ctype).fields]
    return dataclasses.make_dataclass(
        name, fields, frozen=True, namespace={"as_dict": dataclasses.asdict, "__doc__": doc, "__module__": __name__}
    )


if TYPE_CHECKING:  # the fields are the C struct's: every counter is an int

    class _Counters:
        __dataclass_fields__: ClassVar[Dict[str, "dataclasses.Field[int]"]]

        def __init__(self, **counters: int) -> None: ...
        def __getattr__(self, name: str) -> int: ...
        def as_dict(self) -> Dict[str, int]: ...

    class MachineStats(_Counters):
        """Machine-wide counters (``cs_machine_stats``)."""

    class ProcessStats(_Counters):
        """Per-process counters (``cs_proc_stats``)."""

    class FileStats(_Counters):
        """A file and its page cache (``cs_file_stats``)."""

    class MemStatus(_Counters):
        """The memory lines of /proc/PID/status in kB (``cs_status_mem``)."""

else:
    MachineStats = _counters(
        "MachineStats", "cs_machine_stats",
        "Machine-wide counters, the fields of ``cs_machine_stats`` (csrc/cowsim.h documents each);\n"
        "frames are counted in pages of ``page_size``.")
    ProcessStats = _counters(
        "ProcessStats", "cs_proc_stats",
        "Per-process counters, the fields of ``cs_proc_stats`` (csrc/cowsim.h documents each);\n"
        "``minflt + majflt`` is the sum of the six fault kinds.")
    FileStats = _counters(
        "FileStats", "cs_file_stats",
        "A file and its page cache, the fields of ``cs_file_stats`` (csrc/cowsim.h documents each).")
    MemStatus = _counters(
        "MemStatus", "cs_status_mem",
        "The memory lines of /proc/PID/status in kB (``VmRSS``, ``RssAnon``, ``RssFile``, ``RssShmem``,\n"
        "``VmPTE``), the fields of ``cs_status_mem``.")


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
    file: int = 0  # FR1: read faults in private file mappings
    sigbus: int = 0  # FB1: accesses past the end of a mapped file

    @property
    def faults(self) -> int:
        """Faults taken, minor and major (every kind but hits, segfaults and SIGBUS)."""
        return self.zero_page + self.zero_fill + self.cow_copy + self.cow_reuse + self.shared + self.file

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
            file=int(c[lib.CS_FAULT_FILE]),
            sigbus=int(c[lib.CS_SIGBUS]),
        )


if TYPE_CHECKING:

    class BatchResultWithOutcomes(BatchResult):
        """A :class:`BatchResult` of a batch run with ``outcomes=True``."""

        outcomes: np.ndarray
else:
    BatchResultWithOutcomes = BatchResult


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
    file_id: int = 0  # the file of a file mapping (File.id), 0 for anonymous memory
    offset: int = 0  # a file mapping's byte offset in its file
    random: bool = False  # madvise "random" (MADV_RANDOM): no readahead

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
            file_id=int(r.file),
            offset=int(r.offset),
            random=bool(flags & lib.CS_VMA_RANDOM),
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
