"""A pure-Python reference model of cowsim: the executable specification.

This module implements docs/SEMANTICS.md in plain, slow, readable Python. It is the
oracle of the differential test (tests/test_differential.py), which drives the C core
(:class:`cowsim.Machine`) and this model (:class:`RefMachine`) with the same random
operation sequences and requires identical observable results: outcomes, exceptions,
bytes read, statistics, smaps, page tables, regions and the frame table, frame numbers
included.

The model exposes the same API as docs/API.md (``RefMachine`` for ``Machine``,
``RefProcess`` for ``Process``) and returns the same types.  Clarity wins over speed
everywhere: page tables are dictionaries, frames are Python lists, a multi-page access
is a loop over pages.

Orders that decide frame numbers (the free list is LIFO, so the order in which frames
are freed is observable).  Where docs/SEMANTICS.md leaves an order open, the model does
what Linux does:

* a fault allocates its missing tables top-down, then its data frame;
* fork allocates the child's root, then walks the parent's regions in address order and
  their tables depth-first in address order, allocating each child table when first
  reached and (eager mode) each page copy when its entry is reached;
* munmap, madvise(dontneed) and exit zap regions in address order, entries in address
  order.  munmap then frees the tables whose span overlaps no region (depth-first,
  children before their parent, in address order) and only then releases the shmem
  objects that lost their last region (Linux: unmap_vmas, free_pgtables, then
  remove_vma/fput).  exit frees all tables (bottom-up, the root last) and then releases
  its shmem objects in region order.

On-demand fork (``fork("odf")``) shares last-level tables: the child's upper-level entry
points at the parent's table object, whose frame's reference count counts its holders,
and both entries are write-protected (``_Table.wp``).  Data pages under a shared table
are counted once per table.  Before a process changes a write-protected table (a write
fault in its span; munmap, mprotect, madvise(dontneed) or mmap there) it takes the table
over if it is the only holder (a reuse), else copies it entry by entry as a cow fork
would have (a copy); a munmap or dontneed that empties the span just drops the
reference, and so does exit.  Reads fill a shared table in place.  Spans are unshared
in address order.

Transparent huge pages (``mmap(huge=True)``, 4 KiB pages): a huge mapping is a ``_Huge``
in the ``huge`` dict of a level ``levels - 2`` table, beside its ``children``; it holds
its deposited table's frame and maps a 512-frame block (0: the huge zero page), one
reference and one mapping per subpage.  Splitting turns the deposited table into the
span's last-level table with 512 entries.  Huge blocks come from ``_find_block`` /
``_alloc_block`` (the lowest fully free-listed block, else the first aligned block above
the never-used frames, whose skipped frames go onto the free list lowest on top).  A zap
of a whole huge entry frees the deposited table first, then the subpages in address order.

Region splits follow Linux too: mprotect and madvise split only the regions whose
protection or flags actually change (mprotect_fixup, madvise_update_vma), and
madvise(dontneed) splits nothing.

Example:
    >>> m = RefMachine(memory="1MiB")
    >>> p = m.spawn()
    >>> a = p.mmap(3 * 4096)
    >>> p.write(a, b"hi")
    >>> p.read(a, 2)
    b'hi'
    >>> p.stats.faults_zero_fill, m.stats.page_table_frames
    (1, 4)
"""
from __future__ import annotations

import copy
import re
import weakref
from dataclasses import dataclass, field
from typing import Dict, List, NoReturn, Optional, Tuple

import numpy as np

from cowsim import (
    BatchResult,
    CowsimError,
    InvalidArgument,
    InvariantViolation,
    MachineStats,
    Outcome,
    OutOfMemory,
    ProcessExited,
    ProcessStats,
    ProcessSuspended,
    Region,
    SegmentationFault,
    Translation,
)

__all__ = ["RefMachine", "RefProcess", "FRAME_DTYPE", "PAGE_TABLE_DTYPE", "parse_size"]

# Frame flags (FrameFlags in the API).
ANON, EXCLUSIVE, DIRTY, PAGETABLE, SHMEM, HUGE = 1, 2, 4, 8, 16, 32

HPAGE_NR = 512              # frames per transparent huge page (4 KiB pages only)
HPAGE_SIZE = HPAGE_NR * 4096
THP_COW_MODES = ("split", "copy-huge")

FRAME_DTYPE = np.dtype([("frame", "u8"), ("refcount", "u4"), ("mapcount", "u4"), ("flags", "u1")])
PAGE_TABLE_DTYPE = np.dtype([("vpage", "u8"), ("frame", "u8"), ("writable", "?"), ("dirty", "?")])

PROTS = ("none", "r", "rw")
ADVICES = ("dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed")
FORK_MODES = ("cow", "eager", "odf", "vfork")
ON_SEGFAULT = ("continue", "raise")
PAGE_SIZES = (4096, 16384, 65536)
MMAP_MIN_ADDR = 65536
SMAPS_FIELDS = ("Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Pss_Shmem", "Shared_Clean",
                "Shared_Dirty", "Private_Clean", "Private_Dirty", "Anonymous",
                "AnonHugePages")
PSS_SHIFT = 12

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value, what: str = "size") -> int:
    """An int byte count from an int or a string like ``"64KiB"``, ``"64K"``, ``"4096"``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} must be an int or a size string, not {type(value).__name__}")
    if isinstance(value, str):
        mt = re.fullmatch(r"\s*(\d+)\s*([kmgtp]?)(i?b)?\s*", value, re.IGNORECASE)
        if not mt:
            raise InvalidArgument(f"{what}: cannot parse size {value!r}")
        return int(mt.group(1)) * _UNITS[mt.group(2).lower()]
    if value < 0:
        raise InvalidArgument(f"{what} must not be negative")
    return value


def _int_arg(value, what: str, low: int = 0) -> int:
    """An int in [low, 2**64): TypeError for a non-int, InvalidArgument out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    value = int(value)
    if not low <= value < 1 << 64:
        raise InvalidArgument(f"{what} {value} out of range [{low}, 2**64)")
    return value


def _choice(value, what: str, choices) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if value not in choices:
        raise InvalidArgument(f"unknown {what} {value!r}; expected one of {choices}")
    return value


# --------------------------------------------------------------------------- state


def _batch_array(name: str, value, dtype: str, length: Optional[int] = None) -> np.ndarray:
    """A batch's array as cowsim checks it: an ndarray (else TypeError) of ``dtype`` (else
    TypeError), 1-D, C-contiguous and aligned (else InvalidArgument), of ``length``."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of {dtype}, not {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {dtype}, not {value.dtype}")
    if value.ndim != 1:
        raise InvalidArgument(f"{name} must be 1-D, got shape {value.shape}")
    if not value.flags.c_contiguous:
        raise InvalidArgument(f"{name} must be contiguous")
    if not value.flags.aligned:
        raise InvalidArgument(f"{name} must be aligned to {value.dtype.alignment} bytes")
    if length is not None and len(value) != length:
        raise InvalidArgument(f"{name} has length {len(value)}, expected {length}")
    return value


def _batch_writes(write, n: int) -> List[bool]:
    """The write flag of each access: a bool for all, or a bool array of length n."""
    if isinstance(write, (bool, np.bool_)):
        return [bool(write)] * n
    if not isinstance(write, np.ndarray):
        raise TypeError(f"write must be a bool or a NumPy bool array, not {type(write).__name__}")
    return [bool(w) for w in _batch_array("write", write, "bool", n)]


_BATCH_FIELD = {Outcome.HIT: "hits", Outcome.ZERO_PAGE: "zero_page", Outcome.ZERO_FILL: "zero_fill",
                Outcome.COW_COPY: "cow_copy", Outcome.COW_REUSE: "cow_reuse", Outcome.SHARED: "shared",
                Outcome.SEGFAULT: "segfaults"}


class _Batch:
    """A batch being run (Process.access, Machine.replay): access i either takes effect
    (its outcome is counted) or stops the batch with an exception that carries
    ``.index`` (i) and ``.result`` (the BatchResult of the accesses before it; a segfault
    that stops the batch is itself counted and done)."""

    def __init__(self, addrs: np.ndarray, write, outcomes: bool, on_segfault) -> None:
        self.addrs = [int(a) for a in addrs]
        self.writes = _batch_writes(write, len(self.addrs))
        if on_segfault not in ON_SEGFAULT:
            raise InvalidArgument(f"on_segfault must be one of {ON_SEGFAULT}, got {on_segfault!r}")
        self.stop = on_segfault == "raise"
        self.outcomes = np.zeros(len(self.addrs), np.uint8) if outcomes else None
        self.counts = dict.fromkeys(_BATCH_FIELD.values(), 0)
        self.done = 0

    def result(self) -> BatchResult:
        return BatchResult(**self.counts, done=self.done, outcomes=self.outcomes)

    def fail(self, err: CowsimError, i: int) -> NoReturn:
        err.index = i                       # type: ignore[attr-defined]
        err.result = self.result()          # type: ignore[attr-defined]
        raise err

    def step(self, p: "RefProcess", i: int) -> None:
        """Access i by process p (live, not suspended)."""
        a, w = self.addrs[i], self.writes[i]
        try:
            p._permission(a, w)
            outcome = p._access(a, w)[0]
        except SegmentationFault as e:
            self.record(i, Outcome.SEGFAULT)
            if self.stop:
                self.fail(SegmentationFault(f"segmentation fault at index {i}: {e}", e.address, e.access,
                                            e.reason), i)
            return
        except OutOfMemory as e:
            self.fail(OutOfMemory(f"out of simulated physical memory at index {i}: {e}"), i)
        self.record(i, outcome)

    def record(self, i: int, outcome: Outcome) -> None:
        self.counts[_BATCH_FIELD[outcome]] += 1
        if self.outcomes is not None:
            self.outcomes[i] = int(outcome)
        self.done = i + 1



@dataclass(eq=False)
class _Pte:
    frame: int          # 0 = the zero page
    writable: bool
    dirty: bool


@dataclass(eq=False)
class _Huge:
    """A huge (PMD) mapping of 2 MiB: one level-1 entry for 512 pages."""
    block: int          # first frame of the 512-frame block; 0 = the huge zero page
    deposit: int        # the table frame deposited for a later split
    writable: bool
    dirty: bool


@dataclass(eq=False)
class _Table:
    """One page-table page. ``level`` 0 is the root, ``levels - 1`` the last level."""
    frame: int
    level: int
    base: int                               # first virtual page number of its span
    children: Dict[int, "_Table"] = field(default_factory=dict)   # upper levels
    ptes: Dict[int, _Pte] = field(default_factory=dict)           # last level
    wp: set = field(default_factory=set)    # odf: children shared and write-protected here
    huge: Dict[int, _Huge] = field(default_factory=dict)          # level levels-2: THP entries


@dataclass(eq=False)
class _ShmemObject:
    pages: Dict[int, int] = field(default_factory=dict)   # page offset -> frame
    nregions: int = 0


@dataclass(eq=False)
class _Vma:
    start: int
    end: int
    prot: str
    shared: bool
    dontfork: bool = False
    wipeonfork: bool = False
    anon_vma: bool = False
    obj: Optional[_ShmemObject] = None
    pgoff: int = 0                          # object page of ``start``
    huge: bool = False                      # THP-eligible (mmap(huge=True))

    def public(self) -> Region:
        return Region(self.start, self.end, self.prot, self.shared, self.dontfork,
                      self.wipeonfork, self.anon_vma, self.huge)

    @property
    def shm(self) -> _ShmemObject:
        """The shmem object of a shared region."""
        assert self.obj is not None, "not a shared region"
        return self.obj


_COUNTERS = ("faults_zero_page", "faults_zero_fill", "faults_cow_copy", "faults_cow_reuse",
             "faults_shared", "segfaults", "pages_copied", "accesses", "table_copies",
             "table_reuses", "fork_ptes", "fork_tables", "thp_faults", "thp_splits")


class RefMachine:
    """Reference model of :class:`cowsim.Machine` (same constructor, same API)."""

    def __init__(self, memory="256MiB", page_size=4096, store_data=True, va_bits=48,
                 fault_around="64KiB", tlb_entries=64, thp_cow="split"):
        # tlb_entries: the core's software TLB changes speed and tlb_* counters only;
        # the model has none (its tlb_* counters stay 0).
        memory = parse_size(memory, "memory")
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise TypeError("page_size must be an int")
        if page_size not in PAGE_SIZES:
            raise InvalidArgument(f"page_size must be one of {PAGE_SIZES}, not {page_size}")
        if memory % page_size or not 2 <= memory // page_size < 1 << 32:
            raise InvalidArgument("memory must be a multiple of page_size holding 2 to 2**32-1 frames")
        if isinstance(va_bits, bool) or not isinstance(va_bits, int):
            raise TypeError("va_bits must be an int")
        self.page_size = page_size
        self.page_shift = page_size.bit_length() - 1
        # At least two levels; user space (the lower half) must fit in the tree.
        if not 2 * self.page_shift - 2 <= va_bits <= 63:
            raise InvalidArgument(f"va_bits {va_bits} out of range")
        fault_around = parse_size(fault_around, "fault_around")
        if fault_around & (fault_around - 1) or fault_around >= 1 << 32:
            raise InvalidArgument("fault_around must be 0 or a power of two")
        self.thp_cow = _choice(thp_cow, "thp_cow", THP_COW_MODES)
        self.memory = memory
        self.store_data = bool(store_data)
        self.va_bits = va_bits
        self.fault_around = fault_around
        self.entries_per_table = page_size // 8
        self.bits = self.entries_per_table.bit_length() - 1
        self.levels = -(-(va_bits - self.page_shift) // self.bits)
        self.nframes = memory // page_size
        self.user_start = -(-MMAP_MIN_ADDR // page_size) * page_size
        self.user_end = 1 << (va_bits - 1)
        # frames
        n = self.nframes
        self._ref = [0] * n
        self._map = [0] * n
        self._flags = [0] * n
        self._used = [False] * n
        self._data: Dict[int, bytearray] = {}
        self._free_list: List[int] = []        # LIFO: the last freed frame comes out first
        self._next_never = 1                    # lowest frame never handed out
        self._nused = 0
        self._peak = 0
        self._allocated = 0
        self._freed = 0
        # processes and objects
        self._procs: Dict[int, RefProcess] = {}
        self._next_pid = 1
        self._objects: List[_ShmemObject] = []
        self._pages_copied = 0
        self._forks = 0
        self._minflt = 0
        self._segfaults = 0
        self._odf_used = False
        self._closed = False
        # Records (pidmap.c): an exited process's record lives while an object of it
        # does; then its pid is reaped.  Counters of exited processes are summed here.
        self._exited: Dict[int, "weakref.ref[RefProcess]"] = {}
        self._exited_c = dict.fromkeys(("table_copies", "table_reuses", "thp_faults", "thp_splits"), 0)
        self._pid_slots = 0

    # ------------------------------------------------------------------ frames
    def _nfree(self) -> int:
        return self.nframes - 1 - self._nused

    def _need(self, nframes: int) -> None:
        """Raise OutOfMemory, before anything changes, unless ``nframes`` are free."""
        if nframes > self._nfree():
            raise OutOfMemory(f"{nframes} frames needed, {self._nfree()} free")

    def _alloc(self, flags: int) -> int:
        if self._free_list:
            f = self._free_list.pop()
        elif self._next_never < self.nframes:
            f = self._next_never
            self._next_never += 1
        else:  # pragma: no cover - every caller counts first
            raise AssertionError("model bug: allocation without counting")
        assert not self._used[f]
        self._used[f] = True
        self._ref[f], self._map[f], self._flags[f] = 1, 0, flags
        if self.store_data:
            self._data[f] = bytearray(self.page_size)
        self._count_alloc(1)
        return f

    def _free(self, f: int) -> None:
        assert f != 0 and self._used[f]
        self._used[f] = False
        self._ref[f] = self._map[f] = self._flags[f] = 0
        self._data.pop(f, None)
        self._free_list.append(f)
        self._nused -= 1
        self._freed += 1

    def _put(self, f: int) -> None:
        """Drop one reference of frame ``f``; free it at 0."""
        self._ref[f] -= 1
        if self._ref[f] == 0:
            self._free(f)

    def _count_alloc(self, n: int) -> None:
        self._nused += n
        self._peak = max(self._peak, self._nused)
        self._allocated += n

    # Huge pages: 512-aligned blocks of 512 frames (a buddy allocator's order-9 block).
    def _find_block(self) -> int:
        """A free block for a huge page (its first frame), or 0: the lowest-numbered block
        all of whose frames are on the free list, else the first aligned block at or above
        the never-used frames.  Block 0 holds the zero page and is never free."""
        free = set(self._free_list)
        for b in range(HPAGE_NR, self._next_never - self._next_never % HPAGE_NR, HPAGE_NR):
            if all(f in free for f in range(b, b + HPAGE_NR)):
                return b
        b = -(-self._next_never // HPAGE_NR) * HPAGE_NR
        return b if b + HPAGE_NR <= self.nframes else 0

    def _alloc_block(self, b: int) -> None:
        """Take block ``b`` (from _find_block) for a huge page: each frame ANON, EXCLUSIVE,
        HUGE, refcount 1, mapcount 1.  A block above the never-used frames skips the frames
        below it: they go onto the free list, the lowest on top, so that single frames
        still come out in increasing order."""
        if b >= self._next_never:
            for f in range(b - 1, self._next_never - 1, -1):
                self._free_list.append(f)
            self._next_never = b + HPAGE_NR
        else:
            block = set(range(b, b + HPAGE_NR))
            self._free_list = [f for f in self._free_list if f not in block]
        for f in range(b, b + HPAGE_NR):
            assert not self._used[f]
            self._used[f] = True
            self._ref[f], self._map[f], self._flags[f] = 1, 1, ANON | EXCLUSIVE | HUGE
            if self.store_data:
                self._data[f] = bytearray(self.page_size)
        self._count_alloc(HPAGE_NR)

    def _bytes(self, f: int) -> bytes:
        if f == 0:
            return bytes(self.page_size)
        return bytes(self._data[f])

    def _release_object(self, obj: _ShmemObject) -> None:
        """A region referring to ``obj`` is gone; at the last one the pages go too."""
        obj.nregions -= 1
        if obj.nregions == 0:
            for off in sorted(obj.pages):
                self._put(obj.pages[off])
            obj.pages.clear()
            self._objects.remove(obj)

    # ------------------------------------------------------------------ API
    def _check_open(self) -> None:
        if self._closed:
            raise CowsimError("machine is closed")

    def close(self) -> None:
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def spawn(self) -> "RefProcess":
        self._check_open()
        self._need(1)
        p = RefProcess(self, self._next_pid, None)
        self._next_pid += 1
        p._root = _Table(self._alloc(PAGETABLE), 0, 0)
        self._procs[p.pid] = p
        self._records_changed()
        return p

    def _records_changed(self) -> None:
        """The core's pid map size: it doubles past half full, halves below one eighth."""
        n = len(self._procs) + len(self._exited)
        if n * 2 > self._pid_slots:
            self._pid_slots = max(16, self._pid_slots * 2)
        elif self._pid_slots > 16 and n * 8 < self._pid_slots:
            self._pid_slots //= 2

    def _exit_record(self, p: "RefProcess") -> None:
        """An exited process's record stays while an object of it exists (put_task_struct)."""
        del self._procs[p.pid]
        for k in self._exited_c:
            self._exited_c[k] += p._c[k]

        def reap(_ref: object, pid: int = p.pid, machine: "weakref.ref[RefMachine]" = weakref.ref(self)) -> None:
            m = machine()
            if m is not None:
                del m._exited[pid]
                m._records_changed()

        self._exited[p.pid] = weakref.ref(p, reap)

    @property
    def processes(self) -> List["RefProcess"]:
        self._check_open()
        return [p for pid, p in sorted(self._procs.items()) if p.alive]

    def process(self, pid) -> "RefProcess":
        self._check_open()
        pid = _int_arg(pid, "pid", -(1 << 63))
        p = self._procs.get(pid) or (self._exited[pid]() if pid in self._exited else None)
        if p is None:
            if 0 < pid < self._next_pid:
                raise ProcessExited(f"process {pid} has exited and its record was released")
            raise InvalidArgument(f"no process with pid {pid}")
        return p

    def replay(self, pids, addrs, write=False, outcomes=False, on_segfault="continue") -> BatchResult:
        """Access i by ``pids[i]``, in order; a pid that is not a live, running process
        stops the replay there (InvalidArgument for a pid never created, ProcessExited,
        ProcessSuspended) with ``.index`` and ``.result`` as the other stops."""
        self._check_open()
        n = len(_batch_array("addrs", addrs, "uint64"))
        pid_list = [int(p) for p in _batch_array("pids", pids, "int32", n)]
        batch = _Batch(addrs, write, outcomes, on_segfault)
        for i, pid in enumerate(pid_list):
            p = self._procs.get(pid)   # live processes only: exited ones (held or reaped) are not here
            if p is None:
                if 0 < pid < self._next_pid:
                    batch.fail(ProcessExited(f"replay: pid {pid} at index {i}: the process has exited"), i)
                batch.fail(InvalidArgument(f"replay: no process with pid {pid} at index {i}"), i)
            try:
                p._m
            except CowsimError as e:        # ProcessExited, ProcessSuspended
                batch.fail(type(e)(f"replay: pid {pid} at index {i}: {e}"), i)
            batch.step(p, i)
        return batch.result()

    @property
    def stats(self) -> MachineStats:
        self._check_open()
        npt = sum(1 for f in range(1, self.nframes) if self._used[f] and self._flags[f] & PAGETABLE)
        return MachineStats(
            frames_total=self.nframes - 1,
            frames_used=self._nused,
            frames_free=self._nfree(),
            page_table_frames=npt,
            data_frames=self._nused - npt,
            frames_peak=self._peak,
            frames_allocated=self._allocated,
            frames_freed=self._freed,
            pages_copied=self._pages_copied,
            shared_objects=len(self._objects),
            processes=len(self.processes),
            forks=self._forks,
            minflt=self._minflt,
            segfaults=self._segfaults,
            table_copies=sum(p._c["table_copies"] for p in self._procs.values()) + self._exited_c["table_copies"],
            thp_faults=sum(p._c["thp_faults"] for p in self._procs.values()) + self._exited_c["thp_faults"],
            thp_splits=sum(p._c["thp_splits"] for p in self._procs.values()) + self._exited_c["thp_splits"],
            table_reuses=sum(p._c["table_reuses"] for p in self._procs.values()) + self._exited_c["table_reuses"],
            page_tables_shared=sum(1 for f in range(1, self.nframes)
                                   if self._used[f] and self._flags[f] & PAGETABLE
                                   and self._ref[f] > 1),
            process_records=len(self._procs) + len(self._exited),
            pid_map_slots=self._pid_slots,
        )

    def _logical_mapcounts(self) -> List[int]:
        """Per frame, the (process, entry) pairs mapping it: a table held by k processes
        maps its pages k times, though the frame's mapcount counts it once."""
        lmap = list(self._map)
        seen = set()
        for p in self._procs.values():
            if not p.alive:
                continue
            for t in p._tables():
                k = self._ref[t.frame]
                if t.level == self.levels - 1 and k > 1 and id(t) not in seen:
                    seen.add(id(t))
                    for pte in t.ptes.values():
                        if pte.frame:
                            lmap[pte.frame] += k - 1
        return lmap

    def frames(self) -> np.ndarray:
        self._check_open()
        rows = [(f, self._ref[f], self._map[f], self._flags[f])
                for f in range(1, self.nframes) if self._used[f]]
        return np.array(rows, dtype=FRAME_DTYPE)

    def check(self) -> None:
        """Recompute every reference count from scratch and compare (InvariantViolation)."""
        self._check_open()

        def fail(msg: str) -> NoReturn:
            raise InvariantViolation(msg)

        ref = [0] * self.nframes
        mapc = [0] * self.nframes
        kind = [0] * self.nframes
        seen = set()                      # last-level tables already counted (odf shares them)
        unprotected = set()               # table frames some holder reaches without wp
        for p in self._procs.values():
            if not p.alive:
                continue
            for t in p._tables():
                ref[t.frame] += 1
                kind[t.frame] |= PAGETABLE
                for idx in t.children:
                    if idx not in t.wp:
                        unprotected.add(t.children[idx].frame)
                for idx, h in t.huge.items():
                    self._check_huge(p, t, idx, h, ref, mapc, kind, fail)
                if t.level != self.levels - 1:
                    continue
                first = id(t) not in seen
                seen.add(id(t))
                for idx, pte in t.ptes.items():
                    vp = t.base + idx
                    v = p._vma_at(vp * self.page_size)
                    if v is None:
                        fail(f"pid {p.pid}: entry for vpage {vp} outside every region")
                    if pte.frame == 0:
                        if pte.writable:
                            fail(f"pid {p.pid}: writable zero page at vpage {vp}")
                        continue
                    if first:
                        ref[pte.frame] += 1
                        mapc[pte.frame] += 1
                        kind[pte.frame] |= SHMEM if v.shared else ANON
            for v in p._vmas:
                if v.shared != (v.obj is not None):
                    fail("shared region without object")
        for obj in self._objects:
            for f in obj.pages.values():
                ref[f] += 1
                kind[f] |= SHMEM
        if sum(o.nregions for o in self._objects) != sum(
                1 for p in self._procs.values() if p.alive for v in p._vmas if v.shared):
            fail("shmem object region counts")
        for f in range(1, self.nframes):
            if kind[f] & PAGETABLE and ref[f] > 1 and f in unprotected:
                fail(f"table frame {f}: shared by {ref[f]} holders, not all write-protected")
        free = set(self._free_list)
        if len(free) != len(self._free_list) or 0 in free:
            fail("free list corrupt")
        for f in range(1, self.nframes):
            used = self._used[f]
            if used != (ref[f] > 0):
                fail(f"frame {f}: used={used} but {ref[f]} references")
            if used and (self._ref[f], self._map[f]) != (ref[f], mapc[f]):
                fail(f"frame {f}: counts {self._ref[f]}/{self._map[f]}, expected {ref[f]}/{mapc[f]}")
            if used and kind[f] & ~(self._flags[f]) or kind[f] not in (0, ANON, SHMEM, PAGETABLE):
                fail(f"frame {f}: flags {self._flags[f]} but used as {kind[f]}")
            if (not used) != (f in free or f >= self._next_never):
                fail(f"frame {f}: free list / never-used inconsistent")
        if self._nused != sum(self._used):
            fail("used count")

    def _check_huge(self, p: "RefProcess", t: _Table, idx: int, h: _Huge, ref, mapc, kind, fail):
        """A huge entry: inside one huge private region, with a deposited table of its own
        and (unless the huge zero page) an aligned block of 512 live HUGE anonymous frames,
        one reference and one mapping of each."""
        base = t.base + idx * self.entries_per_table
        a = base * self.page_size
        v = p._vma_at(a)
        if (v is None or not v.huge or v.shared or v.end < a + HPAGE_SIZE or idx in t.children
                or t.level != self.levels - 2 or self.page_size != 4096):
            fail(f"pid {p.pid}: huge entry at {a:#x} outside a huge region")
        if h.writable and v.prot != "rw":
            fail(f"pid {p.pid}: writable huge entry at {a:#x} in a read-only region")
        ref[h.deposit] += 1
        kind[h.deposit] |= PAGETABLE
        if h.block == 0:
            if h.writable:
                fail(f"pid {p.pid}: writable huge zero page at {a:#x}")
            return
        if h.block % HPAGE_NR or not v.anon_vma:
            fail(f"pid {p.pid}: huge entry at {a:#x}: block {h.block} unaligned or no anon_vma")
        for f in range(h.block, h.block + HPAGE_NR):
            if not self._used[f] or self._flags[f] & (ANON | HUGE) != ANON | HUGE:
                fail(f"pid {p.pid}: huge entry at {a:#x} maps frame {f}, not a live huge subpage")
            if h.writable and not self._flags[f] & EXCLUSIVE:
                fail(f"pid {p.pid}: writable huge entry at {a:#x} to non-exclusive frame {f}")
            ref[f] += 1
            mapc[f] += 1
            kind[f] |= ANON


class RefProcess:
    """Reference model of :class:`cowsim.Process`."""

    def __init__(self, machine: RefMachine, pid: int, parent: Optional["RefProcess"]):
        self.machine = machine
        self.pid = pid
        self._ppid = parent.pid if parent is not None else 0
        self.alive = True
        self._root: Optional[_Table] = None
        self._vmas: List[_Vma] = []             # sorted, non-overlapping
        self._lender: Optional["RefProcess"] = None     # a vfork child: whose space it holds
        self._borrower: Optional["RefProcess"] = None   # a vfork parent: who holds its space
        self._c = dict.fromkeys(_COUNTERS, 0)

    def __repr__(self):
        return f"RefProcess(pid={self.pid}, alive={self.alive})"

    @property
    def parent(self) -> Optional["RefProcess"]:
        """None for a spawned process, and once the parent's record was released."""
        if not self._ppid:
            return None
        try:
            return self.machine.process(self._ppid)
        except ProcessExited:
            return None

    # ------------------------------------------------------------------ helpers
    @property
    def suspended(self) -> bool:
        """True while a vfork child holds this process's address space."""
        return self._borrower is not None

    @property
    def _m(self) -> RefMachine:
        m = self.machine
        m._check_open()
        if not self.alive:
            raise ProcessExited(f"process {self.pid} has exited")
        if self._borrower is not None:
            raise ProcessSuspended(f"process {self.pid} is suspended until its vfork child execs or exits")
        return m

    def _vma_at(self, addr: int) -> Optional[_Vma]:
        for v in self._vmas:
            if v.start <= addr < v.end:
                return v
        return None

    def _count(self, name: str, n: int = 1) -> None:
        self._c[name] += n
        if name.startswith("faults_"):
            self.machine._minflt += n

    def _range(self, addr, length) -> Tuple[int, int]:
        """Validated [start, end) from a page-aligned addr and a length (> 0) rounded up
        to pages; the range must end inside user space (it may begin below user_start)."""
        m = self.machine
        m._check_open()
        addr = _int_arg(addr, "addr")
        length = _int_arg(length, "length", 1)
        ps = m.page_size
        if addr % ps:
            raise InvalidArgument(f"address {addr:#x} is not page aligned")
        if addr + length > m.user_end:
            raise InvalidArgument(f"range {addr:#x}+{length:#x} outside user space")
        self._m
        end = addr + -(-length // ps) * ps
        if end > m.user_end:
            raise InvalidArgument(f"range {addr:#x}+{length:#x} outside user space")
        return addr, end

    def _fully_mapped(self, start: int, end: int) -> bool:
        pos = start
        for v in self._vmas:
            if v.end <= pos:
                continue
            if v.start > pos:
                return False
            pos = v.end
            if pos >= end:
                return True
        return pos >= end

    def _split(self, addr: int) -> None:
        """Split the region containing ``addr`` (if any, and not at its start) at ``addr``."""
        v = self._vma_at(addr)
        if v is not None:
            self._split_vma(v, addr)

    def _split_vma(self, v: _Vma, addr: int) -> _Vma:
        """Split region ``v`` at ``addr`` if ``addr`` lies strictly inside it; return the
        part from ``addr`` on (``v`` itself when there was nothing to split)."""
        if not v.start < addr < v.end:
            return v
        hi = copy.copy(v)
        hi.start = addr
        v.end = addr
        if v.shared:
            hi.pgoff = v.pgoff + (addr - v.start) // self.machine.page_size
            v.shm.nregions += 1
        self._vmas.insert(self._vmas.index(v) + 1, hi)
        if v.huge:
            self._split_huge_at(addr)      # vma_adjust_trans_huge
        return hi

    def _vmas_in(self, start: int, end: int) -> List[_Vma]:
        """Split at the boundaries, then the regions inside [start, end)."""
        self._split(start)
        self._split(end)
        return [v for v in self._vmas if start <= v.start and v.end <= end]

    # page tables --------------------------------------------------------
    @property
    def _top(self) -> _Table:
        """The root table (a live process always has one)."""
        assert self._root is not None, "process without a root table"
        return self._root

    def _index(self, vpage: int, level: int) -> int:
        m = self.machine
        return (vpage >> (m.bits * (m.levels - 1 - level))) & (m.entries_per_table - 1)

    def _span(self, level: int) -> int:
        """Pages covered by one table at ``level``."""
        m = self.machine
        return m.entries_per_table ** (m.levels - level)

    def _leaf(self, vpage: int) -> Optional[_Table]:
        t = self._top
        for level in range(self.machine.levels - 1):
            child = t.children.get(self._index(vpage, level))
            if child is None:
                return None
            t = child
        return t

    def _pte(self, vpage: int) -> Optional[_Pte]:
        t = self._leaf(vpage)
        return None if t is None else t.ptes.get(self._index(vpage, self.machine.levels - 1))

    def _missing_tables(self, vpage: int) -> int:
        t = self._top
        for level in range(self.machine.levels - 1):
            child = t.children.get(self._index(vpage, level))
            if child is None:
                return self.machine.levels - 1 - level
            t = child
        return 0

    def _new_table(self, parent: _Table, idx: int) -> _Table:
        span = self._span(parent.level + 1)
        t = _Table(self.machine._alloc(PAGETABLE), parent.level + 1, parent.base + idx * span)
        parent.children[idx] = t
        return t

    def _leaf_alloc(self, vpage: int) -> _Table:
        """The last-level table for ``vpage``, allocating missing levels top-down."""
        t = self._top
        for level in range(self.machine.levels - 1):
            idx = self._index(vpage, level)
            t = t.children.get(idx) or self._new_table(t, idx)
        return t

    def _level1(self, start_vp: int = 0, end_vp: Optional[int] = None):
        """(table, index, first vpage) of every present level-1 entry -- a last-level
        table or a huge entry -- whose span overlaps [start_vp, end_vp), in address order.
        ``table`` is the level ``levels - 2`` table holding the entry."""
        if end_vp is None:
            end_vp = 1 << 64
        m = self.machine
        n = m.entries_per_table
        out: List[Tuple[_Table, int, int]] = []

        def walk(t: _Table) -> None:
            if t.level == m.levels - 2:
                for idx in sorted(set(t.children) | set(t.huge)):
                    base = t.base + idx * n
                    if base < end_vp and start_vp < base + n:
                        out.append((t, idx, base))
                return
            span = self._span(t.level + 1)
            for idx in sorted(t.children):
                lo = t.base + idx * span
                if lo < end_vp and start_vp < lo + span:
                    walk(t.children[idx])

        if self._root is not None:
            walk(self._root)
        del walk   # a recursive closure is a cycle through self: keep records freed by refcount
        return out

    def _mappings(self, start_vp: int = 0, end_vp: Optional[int] = None):
        """(vpage, frame, writable, dirty, huge) of every mapped page in [start_vp, end_vp),
        in address order, as the hardware sees it: a huge entry as its 512 pages (frame
        block + i, or 0 for the huge zero page), an odf write-protected table's pages
        read-only."""
        if end_vp is None:
            end_vp = 1 << 64
        out = []
        for up, idx, base in self._level1(start_vp, end_vp):
            h = up.huge.get(idx)
            if h is not None:
                for k in range(HPAGE_NR):
                    if start_vp <= base + k < end_vp:
                        out.append((base + k, h.block + k, h.writable, h.dirty, True) if h.block
                                   else (base + k, 0, False, False, True))
                continue
            leaf, wp = up.children[idx], idx in up.wp
            for i in sorted(leaf.ptes):
                if start_vp <= base + i < end_vp:
                    pte = leaf.ptes[i]
                    out.append((base + i, pte.frame, pte.writable and not wp, pte.dirty, False))
        return out

    # transparent huge pages -------------------------------------------------
    def _huge_at(self, vpage: int) -> Optional[_Huge]:
        up = self._upper(vpage)
        return None if up is None else up.huge.get(self._index(vpage, self.machine.levels - 2))

    def _huge_span_ok(self, v: _Vma, vpage: int) -> bool:
        """A huge entry may map vpage's 2 MiB span: it lies wholly inside huge region v."""
        ps = self.machine.page_size
        s = vpage * ps - vpage * ps % HPAGE_SIZE
        return v.huge and v.start <= s and s + HPAGE_SIZE <= v.end

    def _upper_alloc(self, vpage: int) -> _Table:
        """The level ``levels - 2`` table over ``vpage``, allocating missing levels top-down."""
        t = self._top
        for level in range(self.machine.levels - 2):
            idx = self._index(vpage, level)
            t = t.children.get(idx) or self._new_table(t, idx)
        return t

    def _split_huge(self, up: _Table, idx: int) -> _Table:
        """__split_huge_pmd_locked: the deposited table gets 512 entries with the huge
        entry's write and dirty bits (the huge zero page: zero-page entries, read-only,
        clean) and becomes the span's last-level table.  No frame, no count changes."""
        m = self.machine
        h = up.huge.pop(idx)
        leaf = _Table(h.deposit, m.levels - 1, up.base + idx * m.entries_per_table)
        for k in range(HPAGE_NR):
            leaf.ptes[k] = _Pte(h.block + k, h.writable, h.dirty) if h.block else _Pte(0, False, False)
        up.children[idx] = leaf
        self._count("thp_splits")
        return leaf

    def _split_huge_at(self, addr: int) -> None:
        """vma_adjust_trans_huge: a region boundary at ``addr`` inside a huge mapping."""
        if addr % HPAGE_SIZE == 0:
            return
        vp = addr // self.machine.page_size
        up = self._upper(vp)
        idx = self._index(vp, self.machine.levels - 2)
        if up is not None and idx in up.huge:
            self._split_huge(up, idx)

    def _zap_huge(self, up: _Table, idx: int) -> None:
        """zap_huge_pmd: the deposited table goes first, then one reference and mapping of
        each subpage (those reaching 0 freed in address order)."""
        m = self.machine
        h = up.huge.pop(idx)
        m._put(h.deposit)
        for f in range(h.block, h.block + HPAGE_NR) if h.block else ():
            m._map[f] -= 1
            m._put(f)

    def _folio_reusable(self, leaf: _Table, idx: int, f: int) -> bool:
        """Large-folio reuse (__wp_can_reuse_large_anon_folio): every mapping of every live
        subpage of f's huge page is one of the writer's own entries.  The writer can map
        subpage k only at index k of the table over the page's span."""
        m = self.machine
        b = f - f % HPAGE_NR
        if idx != f - b:
            return False
        maps = sum(m._map[g] for g in range(b, b + HPAGE_NR) if m._used[g] and m._flags[g] & HUGE)
        own = sum(1 for k, pte in leaf.ptes.items() if pte.frame == b + k)
        return maps == own and maps > 1   # a last mapped subpage is copied: the folio goes

    def _reusable(self, leaf: _Table, idx: int, f: int) -> bool:
        """F5: may a write to the read-only entry ``idx`` of ``leaf`` (frame f) reuse f?"""
        m = self.machine
        if m._flags[f] & EXCLUSIVE:
            return True
        if m._flags[f] & HUGE:
            return self._folio_reusable(leaf, idx, f)
        return m._ref[f] == 1

    def _huge_fault_none(self, v: _Vma, vp: int, write: bool):
        """do_huge_pmd_anonymous_page: a fault in an empty 2 MiB span of huge region v.
        Returns (outcome, frame), or None when a write falls back to 4 KiB (no free block,
        or the block and the deposited table do not both fit; the tables above the last
        level are then in place)."""
        m = self.machine
        m._need(self._missing_tables(vp) + (1 if write else 0))
        up = self._upper_alloc(vp)
        idx = self._index(vp, m.levels - 2)
        b = 0
        if write:
            b = m._find_block()
            if not b or m._nfree() < HPAGE_NR + 1:
                return None
            m._alloc_block(b)
        up.huge[idx] = _Huge(b, m._alloc(PAGETABLE), write, write)
        if not write:
            self._count("faults_zero_page")
            return Outcome.ZERO_PAGE, 0
        v.anon_vma = True
        self._count("thp_faults")
        self._count("faults_zero_fill")
        return Outcome.ZERO_FILL, b + vp % HPAGE_NR

    def _drop_huge_mapping(self, b: int) -> None:
        """One mapping of each subpage of huge page b goes (freed at 0, in address order)."""
        m = self.machine
        for f in range(b, b + HPAGE_NR):
            m._map[f] -= 1
            m._put(f)

    def _huge_unshared(self, b: int) -> bool:
        """do_huge_pmd_wp_page's reuse test: the head is exclusive, or no subpage has
        another reference or mapping."""
        m = self.machine
        return bool(m._flags[b] & EXCLUSIVE) or all(
            m._ref[f] == 1 and m._map[f] == 1 for f in range(b, b + HPAGE_NR))

    def _huge_fault(self, up: _Table, idx: int, vp: int, write: bool):
        """An access under a huge entry (do_huge_pmd_wp_page for writes): (outcome,
        frame), or None after a split, for the 4 KiB write fault to go on (F4 on the huge
        zero page, F5 -- a copy -- otherwise)."""
        m = self.machine
        h = up.huge[idx]
        k = vp % HPAGE_NR
        if not write:
            return Outcome.HIT, (h.block + k if h.block else 0)
        if h.writable:
            h.dirty = True
            return Outcome.HIT, h.block + k
        if h.block:
            b = h.block
            if self._huge_unshared(b):                          # reuse the whole page
                for f in range(b, b + HPAGE_NR):
                    m._flags[f] |= EXCLUSIVE
                h.writable = h.dirty = True
                self._count("faults_cow_reuse")
                return Outcome.COW_REUSE, b + k
        b = h.block
        if not b or m.thp_cow == "copy-huge":   # zero page: Linux >= 6.13 and < 5.8 alike
            nb = m._find_block()
            if nb and m._nfree() >= HPAGE_NR:
                m._alloc_block(nb)
                if b:                                           # copy 2 MiB
                    if m.store_data:
                        for j in range(HPAGE_NR):
                            m._data[nb + j][:] = m._data[b + j]
                    self._drop_huge_mapping(b)
                    self._count("pages_copied", HPAGE_NR)
                    m._pages_copied += HPAGE_NR
                else:                                           # the huge zero page: goto alloc
                    self._vma_at(vp * m.page_size).anon_vma = True
                h.block, h.writable, h.dirty = nb, True, True
                self._count("thp_faults")
                self._count("faults_cow_copy" if b else "faults_zero_fill")
                return (Outcome.COW_COPY if b else Outcome.ZERO_FILL), nb + k
            if b and m._nfree() >= HPAGE_NR:                    # do_huge_pmd_wp_page_fallback
                del up.huge[idx]
                leaf = _Table(h.deposit, m.levels - 1, up.base + idx * m.entries_per_table)
                for j in range(HPAGE_NR):
                    f = m._alloc(ANON | EXCLUSIVE)
                    m._map[f] = 1
                    if m.store_data:
                        m._data[f][:] = m._data[b + j]
                    leaf.ptes[j] = _Pte(f, True, True)
                up.children[idx] = leaf
                self._drop_huge_mapping(b)
                self._count("pages_copied", HPAGE_NR)
                m._pages_copied += HPAGE_NR
                self._count("faults_cow_copy")
                return Outcome.COW_COPY, leaf.ptes[k].frame
        m._need(1)                        # the 4 KiB fault after the split takes a frame
        self._split_huge(up, idx)
        return None

    # on-demand fork -------------------------------------------------------
    def _upper(self, vpage: int) -> Optional[_Table]:
        """The table holding the entry that points at ``vpage``'s last-level table."""
        t = self._top
        for level in range(self.machine.levels - 2):
            child = t.children.get(self._index(vpage, level))
            if child is None:
                return None
            t = child
        return t

    def _write_protected(self, vpage: int) -> bool:
        up = self._upper(vpage)
        return up is not None and self._index(vpage, self.machine.levels - 2) in up.wp

    def _shareable(self, base: int) -> bool:
        """odf fork: a span's table is shared when every region over it is one whose
        entries a cow fork copies."""
        ps = self.machine.page_size
        lo, hi = base * ps, (base + self.machine.entries_per_table) * ps
        return all(not (v.dontfork or v.wipeonfork or v.shared) and v.anon_vma
                   for v in self._vmas if v.start < hi and lo < v.end)

    def _write_need(self, leaf: _Table, idx: int) -> int:
        """Frames a write fault to entry ``idx`` under a write-protected table needs."""
        m = self.machine
        if m._ref[leaf.frame] > 1:
            return 2                      # the table's copy, then the page's
        pte = leaf.ptes.get(idx)
        if pte is None:
            return 1
        f = pte.frame
        return 0 if pte.writable or (f and self._reusable(leaf, idx, f)) else 1

    def _unshare(self, up: _Table, idx: int) -> _Table:
        """Make the write-protected table ``up.children[idx]`` this process's own."""
        m = self.machine
        leaf = up.children[idx]
        up.wp.discard(idx)
        if m._ref[leaf.frame] == 1:
            self._count("table_reuses")
            return leaf
        new = _Table(m._alloc(PAGETABLE), leaf.level, leaf.base)
        for i in sorted(leaf.ptes):
            pte = leaf.ptes[i]
            if pte.frame:                 # K2 for this one table
                m._ref[pte.frame] += 1
                m._map[pte.frame] += 1
                m._flags[pte.frame] &= ~EXCLUSIVE
                pte.writable = False
            new.ptes[i] = _Pte(pte.frame, pte.writable, pte.dirty)
        m._ref[leaf.frame] -= 1
        up.children[idx] = new
        self._count("table_copies")
        return new

    def _wp_spans(self, start: int, end: int) -> List[Tuple[_Table, int, int, int]]:
        """(upper table, index, span start, span end) of the write-protected entries whose
        span overlaps [start, end), in address order."""
        m = self.machine
        ps, n = m.page_size, m.entries_per_table
        out = []
        for t in self._tables():
            if t.level == m.levels - 2:
                for idx in sorted(t.wp):
                    lo, hi = (t.base + idx * n) * ps, (t.base + idx * n + n) * ps
                    if lo < end and start < hi:
                        out.append((t, idx, lo, hi))
        return out

    def _unshare_plan(self, start: int, end: int, zap: bool):
        """What a change of [start, end) does to each write-protected span: "skip" (a zap
        of a part with no region), "drop" (a zap that empties the span: the reference
        goes) or "own" (reuse or copy)."""
        m = self.machine

        def mapped(a: int, b: int) -> bool:
            return a < b and any(v.start < b and a < v.end for v in self._vmas)

        plan = []
        for up, idx, lo, hi in self._wp_spans(start, end):
            if zap and not mapped(max(lo, start), min(hi, end)):
                continue
            empties = not mapped(lo, min(start, hi)) and not mapped(max(end, lo), hi)
            shared = m._ref[up.children[idx].frame] > 1
            plan.append((up, idx, lo, "drop" if zap and shared and empties else "own", shared))
        return plan

    def _unshare_need(self, ranges, zap: bool) -> int:
        spans = set()
        for start, end in ranges:
            for _up, _idx, lo, action, shared in self._unshare_plan(start, end, zap):
                if action == "own" and shared:
                    spans.add(lo)
        return len(spans)

    def _unshare_range(self, start: int, end: int, zap: bool) -> None:
        for up, idx, _lo, action, _shared in self._unshare_plan(start, end, zap):
            if action == "drop":
                self.machine._ref[up.children[idx].frame] -= 1
                del up.children[idx]
                up.wp.discard(idx)
            else:
                self._unshare(up, idx)

    def _tables(self, t: Optional[_Table] = None):
        """All tables, depth-first, children (in address order) before their parent (none
        while a vfork child holds the space, or after exit)."""
        if t is None and self._root is None:
            return
        t = self._top if t is None else t
        for idx in sorted(t.children):
            yield from self._tables(t.children[idx])
        yield t

    def _entries(self, start_vp: int = 0, end_vp: Optional[int] = None):
        """(vpage, pte) of present entries in [start_vp, end_vp), in address order (the
        entries of last-level tables; huge entries are not in them: see ``_mappings``)."""
        if end_vp is None:
            end_vp = 1 << 64
        out: List[Tuple[int, _Pte]] = []
        for up, idx, base in self._level1(start_vp, end_vp):
            leaf = up.children.get(idx)
            for i in sorted(leaf.ptes) if leaf is not None else ():
                if start_vp <= base + i < end_vp:
                    out.append((base + i, leaf.ptes[i]))
        return out

    def _zap(self, start: int, end: int) -> None:
        """Unmap the entries of [start, end) in address order.  A huge entry wholly inside
        goes whole (zap_huge_pmd); one partly inside is split first."""
        m = self.machine
        ps = m.page_size
        lo, hi = start // ps, end // ps
        for up, idx, base in self._level1(lo, hi):
            if idx in up.huge:
                if lo <= base and base + HPAGE_NR <= hi:
                    self._zap_huge(up, idx)
                    continue
                self._split_huge(up, idx)
            leaf = up.children[idx]
            for i in sorted(leaf.ptes):
                if lo <= base + i < hi:
                    self._zap_pte(leaf, i)

    def _zap_pte(self, leaf: _Table, i: int) -> None:
        m = self.machine
        pte = leaf.ptes.pop(i)
        f = pte.frame
        if f == 0:
            return
        m._map[f] -= 1
        if m._flags[f] & SHMEM and pte.dirty:
            m._flags[f] |= DIRTY
        m._put(f)

    def _free_unused_tables(self, t: Optional[_Table] = None) -> None:
        """Free every non-root table whose span overlaps no region (bottom-up)."""
        t = self._top if t is None else t
        ps = self.machine.page_size
        for idx in sorted(t.children):
            child = t.children[idx]
            self._free_unused_tables(child)
            lo = child.base * ps
            hi = (child.base + self._span(child.level)) * ps
            if not any(v.start < hi and lo < v.end for v in self._vmas):
                assert not child.children and not child.ptes and not child.huge
                del t.children[idx]
                t.wp.discard(idx)
                self.machine._free(child.frame)

    # ------------------------------------------------------------------ regions
    def mmap(self, length, prot="rw", shared=False, addr=None, huge=False) -> int:
        self.machine._check_open()
        length = _int_arg(length, "length", 1)
        _choice(prot, "prot", PROTS)
        if not isinstance(shared, (bool, np.bool_)) or not isinstance(huge, (bool, np.bool_)):
            raise TypeError("shared and huge must be bools")
        shared, huge = bool(shared), bool(huge)
        if huge and shared:
            raise InvalidArgument("huge pages are for private regions only")
        if huge and self.machine.page_size != 4096:
            raise InvalidArgument("huge pages need page_size 4096")
        if addr is not None:
            addr = _int_arg(addr, "addr", 1)
            if addr % self.machine.page_size:
                raise InvalidArgument(f"address {addr:#x} is not page aligned")
        m = self._m
        ps = m.page_size
        length = -(-length // ps) * ps
        if length > m.user_end - m.user_start:
            raise InvalidArgument(f"length {length:#x} larger than user space")
        if addr is None:
            start = None
            if huge:                      # thp_get_unmapped_area: len + 2 MiB, aligned
                base = self._free_range(length + HPAGE_SIZE)
                if base is not None:
                    start = base + (-base % HPAGE_SIZE or HPAGE_SIZE)
            if start is None:
                start = self._free_range(length)
            if start is None:
                raise OutOfMemory(f"no free range of {length} bytes")
        else:
            start = addr
            if start < m.user_start or start + length > m.user_end:
                raise InvalidArgument(f"range {start:#x}+{length:#x} outside user space")
            if any(v.start < start + length and start < v.end for v in self._vmas):
                raise InvalidArgument(f"range {start:#x}+{length:#x} overlaps a region")
        m._need(self._unshare_need([(start, start + length)], False))
        self._unshare_range(start, start + length, False)
        v = _Vma(start, start + length, prot, bool(shared), huge=huge)
        if v.shared:
            v.obj = _ShmemObject(nregions=1)
            m._objects.append(v.obj)
        self._vmas.append(v)
        self._vmas.sort(key=lambda r: r.start)
        return start

    def _free_range(self, length: int) -> Optional[int]:
        """The start of the highest free range of ``length`` bytes (top-down), or None."""
        m = self.machine
        top = m.user_end
        for v in reversed(self._vmas):
            if top - v.end >= length:
                return top - length
            top = v.start
        return top - length if top - m.user_start >= length else None

    def munmap(self, addr, length) -> None:
        start, end = self._range(addr, length)
        m = self.machine
        if not any(v.start < end and start < v.end for v in self._vmas):
            return
        m._need(self._unshare_need([(start, end)], True))
        self._unshare_range(start, end, True)
        gone = self._vmas_in(start, end)
        for v in gone:
            self._zap(v.start, v.end)
        self._vmas = [v for v in self._vmas if v not in gone]
        self._free_unused_tables()
        for v in gone:
            if v.shared:
                m._release_object(v.shm)

    def mprotect(self, addr, length, prot) -> None:
        _choice(prot, "prot", PROTS)
        start, end = self._range(addr, length)
        m = self.machine
        if not self._fully_mapped(start, end):
            raise InvalidArgument("mprotect of a range that is not fully mapped")
        ps = m.page_size
        parts = [(max(v.start, start), min(v.end, end)) for v in self._vmas
                 if v.start < end and start < v.end and v.prot != prot]
        m._need(self._unshare_need(parts, False))
        for lo, hi in parts:
            self._unshare_range(lo, hi, False)
        # mprotect_fixup: a region whose prot does not change is neither split nor touched.
        for v in self._changing(start, end, lambda v: v.prot != prot):
            v.prot = prot
            for _vp, pte in self._entries(v.start // ps, v.end // ps):
                if prot != "rw":
                    pte.writable = False
                elif v.shared:
                    pte.writable = True
                else:
                    pte.writable = pte.frame != 0 and bool(m._flags[pte.frame] & EXCLUSIVE)
            for up, idx, _base in self._level1(v.start // ps, v.end // ps):
                h = up.huge.get(idx)      # change_huge_pmd (wholly inside v)
                if h is None:
                    continue
                if prot != "rw":
                    h.writable = False
                elif h.block and m._flags[h.block] & EXCLUSIVE:   # can_change_pmd_writable
                    h.writable = True

    def _changing(self, start: int, end: int, changes) -> List[_Vma]:
        """The regions overlapping [start, end) for which ``changes(v)`` holds, each split
        at the range boundaries (regions left unchanged are not split)."""
        for v in [v for v in self._vmas if v.start < end and start < v.end and changes(v)]:
            self._split_vma(self._split_vma(v, start), end)
        return [v for v in self._vmas if start <= v.start and v.end <= end and changes(v)]

    def madvise(self, addr, length, advice) -> None:
        _choice(advice, "advice", ADVICES)
        start, end = self._range(addr, length)
        if not self._fully_mapped(start, end):
            raise InvalidArgument("madvise of a range that is not fully mapped")
        if advice == "dontneed":               # zaps entries; regions and (unshared) tables stay
            self.machine._need(self._unshare_need([(start, end)], True))
            self._unshare_range(start, end, True)
            self._zap(start, end)
            return
        if advice == "wipeonfork" and any(
                v.shared and v.start < end and start < v.end for v in self._vmas):
            raise InvalidArgument("madvise wipeonfork of a shared region")   # EINVAL
        attr, value = {"dontfork": ("dontfork", True), "dofork": ("dontfork", False),
                       "wipeonfork": ("wipeonfork", True),
                       "keeponfork": ("wipeonfork", False)}[advice]
        # madvise_update_vma: a region whose flags do not change is not split.
        for v in self._changing(start, end, lambda v: getattr(v, attr) != value):
            setattr(v, attr, value)

    @property
    def regions(self) -> List[Region]:
        self._m
        return [v.public() for v in self._vmas]

    # ------------------------------------------------------------------ accesses
    def _permission(self, addr: int, write: bool) -> _Vma:
        """F1: the region of ``addr`` if the access is allowed, else a counted segfault."""
        v = self._vma_at(addr)
        reason = ""
        if v is None:
            reason = "unmapped"
        elif v.prot == "none" or (write and v.prot != "rw"):
            reason = "protection"
        if v is None or reason:
            self._count("segfaults")
            self._count("accesses")
            self.machine._segfaults += 1
            access = "write" if write else "read"
            raise SegmentationFault(f"{access} at {addr:#x}: {reason}", addr, access, reason)
        return v

    def _access(self, addr: int, write: bool) -> Tuple[Outcome, int]:
        """One access that passed F1; counted once it happened (not when out of frames)."""
        result = self._access_page(addr, write)
        self._count("accesses")
        return result

    def _access_page(self, addr: int, write: bool) -> Tuple[Outcome, int]:
        """One access to the page of ``addr`` (permission already checked): (outcome, frame)."""
        m = self.machine
        ps = m.page_size
        v = self._vma_at(addr)
        assert v is not None, "access without permission check"
        vp = addr // ps
        last = self._index(vp, m.levels - 1)
        if not v.shared:                                        # transparent huge pages
            up, idx = self._upper(vp), self._index(vp, m.levels - 2)
            result = None
            if up is not None and idx in up.huge:
                result = self._huge_fault(up, idx, vp, write)   # None: split, 4 KiB goes on
            elif (up is None or idx not in up.children) and self._huge_span_ok(v, vp):
                result = self._huge_fault_none(v, vp, write)
            if result is not None:
                return result
        took_table = write and self._write_protected(vp)
        if took_table:                                          # odf: own the table first
            up = self._upper(vp)
            assert up is not None
            idx = self._index(vp, m.levels - 2)
            m._need(self._write_need(up.children[idx], last))
            self._unshare(up, idx)
        pte = self._pte(vp)
        if v.shared:
            return self._shared_fault(v, vp, pte, write)
        if pte is None:
            if not write:                                       # F2
                m._need(self._missing_tables(vp))
                self._leaf_alloc(vp).ptes[last] = _Pte(0, False, False)
                self._count("faults_zero_page")
                return Outcome.ZERO_PAGE, 0
            m._need(self._missing_tables(vp) + 1)               # F3
            leaf = self._leaf_alloc(vp)
            f = m._alloc(ANON | EXCLUSIVE)
            m._map[f] = 1
            leaf.ptes[last] = _Pte(f, True, True)
            v.anon_vma = True
            self._count("faults_zero_fill")
            return Outcome.ZERO_FILL, f
        if not write:
            return Outcome.HIT, pte.frame
        if pte.writable:
            pte.dirty = True
            if took_table:                # a fault that only took the table over
                self._count("faults_cow_reuse")
                return Outcome.COW_REUSE, pte.frame
            return Outcome.HIT, pte.frame
        old = pte.frame
        if old == 0:                                            # F4
            m._need(1)
            f = m._alloc(ANON | EXCLUSIVE)
            m._map[f] = 1
            pte.frame, pte.writable, pte.dirty = f, True, True
            v.anon_vma = True
            self._count("faults_zero_fill")
            return Outcome.ZERO_FILL, f
        leaf = self._leaf(vp)
        assert leaf is not None
        if self._reusable(leaf, last, old):                    # F5 reuse
            m._flags[old] |= EXCLUSIVE
            pte.writable = pte.dirty = True
            v.anon_vma = True
            self._count("faults_cow_reuse")
            return Outcome.COW_REUSE, old
        m._need(1)                                              # F5 copy
        f = m._alloc(ANON | EXCLUSIVE)
        m._map[f] = 1
        if m.store_data:
            m._data[f][:] = m._data[old]
        m._map[old] -= 1
        m._put(old)                       # a huge page's subpage may go (large-folio rule)
        pte.frame, pte.writable, pte.dirty = f, True, True
        v.anon_vma = True
        self._count("faults_cow_copy")
        self._count("pages_copied")
        m._pages_copied += 1
        return Outcome.COW_COPY, f

    def _shared_fault(self, v: _Vma, vp: int, pte: Optional[_Pte], write: bool):
        """F6 (plus fault-around on read faults)."""
        m = self.machine
        writable = v.prot == "rw"
        if pte is not None:
            if not write:
                return Outcome.HIT, pte.frame
            if pte.writable:
                pte.dirty = True
                return Outcome.HIT, pte.frame
            pte.writable = pte.dirty = True
            m._flags[pte.frame] |= DIRTY
            self._count("faults_shared")
            return Outcome.SHARED, pte.frame
        vstart = v.start // m.page_size
        off = v.pgoff + vp - vstart
        have = off in v.shm.pages
        m._need(self._missing_tables(vp) + (0 if have else 1))
        leaf = self._leaf_alloc(vp)
        if not have:
            v.shm.pages[off] = m._alloc(SHMEM)
        f = v.shm.pages[off]
        m._ref[f] += 1
        m._map[f] += 1
        i = self._index(vp, m.levels - 1)
        leaf.ptes[i] = _Pte(f, writable, write)
        if write:
            m._flags[f] |= DIRTY
        self._count("faults_shared")
        n = m.fault_around // m.page_size
        if not write and n > 1:
            vbefore = vp - vstart
            r = v.end // m.page_size - vstart
            lo = max(i - i % n, i - min(i, vbefore))
            hi = min(lo + n, m.entries_per_table, i + r - vbefore)
            for j in range(lo, hi):
                g = v.shm.pages.get(off + j - i)
                if j not in leaf.ptes and g is not None:
                    m._ref[g] += 1
                    m._map[g] += 1
                    leaf.ptes[j] = _Pte(g, writable, False)
        return Outcome.SHARED, f

    def touch(self, addr, write=False) -> Outcome:
        self.machine._check_open()
        addr = _int_arg(addr, "addr")
        write = bool(write)
        self._m
        self._permission(addr, write)
        return self._access(addr, write)[0]

    def access(self, addrs, write=False, outcomes=False, on_segfault="continue") -> BatchResult:
        """A batch: each access as ``touch`` (docs/API.md); see ``_Batch`` for the stops."""
        self.machine._check_open()
        batch = _Batch(_batch_array("addrs", addrs, "uint64"), write, outcomes, on_segfault)
        try:
            self._m
        except (ProcessExited, ProcessSuspended) as e:   # a stop before access 0, as the core's
            batch.fail(e, 0)
        for i in range(len(batch.addrs)):
            batch.step(self, i)
        return batch.result()

    def _pages(self, addr: int, n: int) -> List[Tuple[int, int, int]]:
        """(address, offset in page, byte count) of each page of [addr, addr + n)."""
        ps = self.machine.page_size
        out, pos, end = [], addr, addr + n
        while pos < end:
            take = min(end, (pos // ps + 1) * ps) - pos
            out.append((pos, pos % ps, take))
            pos += take
        return out

    def read(self, addr, n) -> bytes:
        m = self.machine
        m._check_open()
        addr = _int_arg(addr, "addr")
        n = _int_arg(n, "n")
        if addr + n > 1 << 64:
            raise InvalidArgument("range overflows the address space")
        if not m.store_data:
            raise InvalidArgument("read needs a machine with store_data=True")
        self._m
        pages = self._pages(addr, n)
        for a, _, _ in pages:
            self._permission(a, False)
        out = bytearray()
        for a, off, take in pages:
            f = self._access(a, False)[1]
            out += m._bytes(f)[off:off + take]
        return bytes(out)

    def write(self, addr, data) -> None:
        m = self.machine
        m._check_open()
        addr = _int_arg(addr, "addr")
        if isinstance(data, str):
            raise TypeError("data must be bytes-like, not str")
        try:
            data = memoryview(data).cast("B").tobytes()     # any bytes-like object (API.md)
        except TypeError:
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}") from None
        if addr + len(data) > 1 << 64:
            raise InvalidArgument("range overflows the address space")
        self._m
        pages = self._pages(addr, len(data))
        for a, _, _ in pages:
            self._permission(a, True)
        pos = 0
        for a, off, take in pages:
            f = self._access(a, True)[1]
            if m.store_data:
                m._data[f][off:off + take] = data[pos:pos + take]
            pos += take

    # ------------------------------------------------------------------ fork / exit
    def fork(self, mode="cow") -> "RefProcess":
        self.machine._check_open()
        _choice(mode, "mode", FORK_MODES)
        m = self._m
        if mode == "vfork":
            return self._vfork()
        # K5: count every frame the fork will take before taking any.
        need_tables = set()
        deposits = copies = 0
        for v in self._vmas:
            if v.dontfork or v.wipeonfork or v.shared or not v.anon_vma:
                continue
            for t in self._tables():
                lo, hi = t.base * m.page_size, (t.base + self._span(t.level)) * m.page_size
                if t.level > 0 and v.start < hi and lo < v.end:
                    if mode == "odf" and t.level == m.levels - 1 and self._shareable(t.base):
                        continue                # shared, not copied
                    need_tables.add((t.level, t.base))
            lo_vp, hi_vp = v.start // m.page_size, v.end // m.page_size
            for up, idx, _base in self._level1(lo_vp, hi_vp):
                h = up.huge.get(idx)
                if h is not None:               # a deposited table (+ 512 eager copies)
                    deposits += 1
                    copies += HPAGE_NR if mode == "eager" and h.block else 0
            if mode == "eager":
                copies += sum(1 for _, pte in self._entries(lo_vp, hi_vp) if pte.frame)
        m._need(1 + len(need_tables) + deposits + copies)

        child = RefProcess(m, m._next_pid, self)
        m._next_pid += 1
        child._root = _Table(m._alloc(PAGETABLE), 0, 0)
        if mode == "odf":
            m._odf_used = True
        for v in self._vmas:
            if v.dontfork:                                      # K3
                continue
            cv = copy.copy(v)
            child._vmas.append(cv)
            if v.wipeonfork:                                    # K3
                cv.anon_vma = False
            elif v.shared:                                      # K1
                v.shm.nregions += 1
            elif v.anon_vma:                                    # K1/K2
                self._copy_tables(child, self._top, child._top, v, mode)
        m._procs[child.pid] = child
        m._records_changed()
        m._forks += 1
        return child

    def _copy_tables(self, child: "RefProcess", pt: _Table, ct: _Table, v: _Vma, mode: str):
        m = self.machine
        ps = m.page_size
        lo_vp, hi_vp = v.start // ps, v.end // ps
        if pt.level == m.levels - 1:
            for idx in sorted(pt.ptes):
                vp = pt.base + idx
                if not lo_vp <= vp < hi_vp:
                    continue
                pte = pt.ptes[idx]
                f = pte.frame
                child._c["fork_ptes"] += 1
                if f == 0:
                    ct.ptes[idx] = _Pte(0, False, pte.dirty)
                elif mode != "eager":           # cow, and odf in spans it cannot share
                    m._ref[f] += 1
                    m._map[f] += 1
                    m._flags[f] &= ~EXCLUSIVE
                    pte.writable = False
                    ct.ptes[idx] = _Pte(f, False, pte.dirty)
                else:
                    g = m._alloc(ANON | EXCLUSIVE)
                    m._map[g] = 1
                    if m.store_data:
                        m._data[g][:] = m._data[f]
                    ct.ptes[idx] = _Pte(g, v.prot == "rw", pte.dirty)
                    child._c["pages_copied"] += 1
                    m._pages_copied += 1
            return
        span = self._span(pt.level + 1)
        for idx in sorted(set(pt.children) | set(pt.huge)):
            base = pt.base + idx * span
            if base < hi_vp and lo_vp < base + span:
                if idx in pt.huge:              # copy_huge_pmd (odf never shares it)
                    self._fork_huge(child, pt, ct, idx, v, mode)
                    continue
                if mode == "odf" and pt.level == m.levels - 2 and self._shareable(base):
                    if idx not in ct.children:  # once per span, however many regions
                        leaf = pt.children[idx]
                        m._ref[leaf.frame] += 1
                        ct.children[idx] = leaf
                        pt.wp.add(idx)
                        ct.wp.add(idx)
                    continue
                sub = ct.children.get(idx)
                if sub is None:
                    sub = child._new_table(ct, idx)
                    if sub.level == m.levels - 1:
                        child._c["fork_tables"] += 1
                self._copy_tables(child, pt.children[idx], sub, v, mode)

    def _fork_huge(self, child: "RefProcess", pt: _Table, ct: _Table, idx: int, v: _Vma,
                   mode: str) -> None:
        """copy_huge_pmd: the child gets the same entry and a deposited table of its own;
        an anonymous huge page is shared (each subpage +1 reference and mapping, no longer
        exclusive) and write-protected in both.  An eager fork instead copies the page as
        512 ordinary pages in a last-level table (the deposit's frame)."""
        m = self.machine
        h = pt.huge[idx]
        deposit = m._alloc(PAGETABLE)
        child._c["fork_tables"] += 1
        if mode == "eager" and h.block:
            leaf = _Table(deposit, m.levels - 1, pt.base + idx * m.entries_per_table)
            for k in range(HPAGE_NR):
                g = m._alloc(ANON | EXCLUSIVE)
                m._map[g] = 1
                if m.store_data:
                    m._data[g][:] = m._data[h.block + k]
                leaf.ptes[k] = _Pte(g, v.prot == "rw", h.dirty)
            ct.children[idx] = leaf
            child._c["fork_ptes"] += HPAGE_NR
            child._c["pages_copied"] += HPAGE_NR
            m._pages_copied += HPAGE_NR
            return
        for f in range(h.block, h.block + HPAGE_NR) if h.block else ():
            m._ref[f] += 1
            m._map[f] += 1
            m._flags[f] &= ~EXCLUSIVE
        if h.block:
            h.writable = False
        ct.huge[idx] = _Huge(h.block, deposit, h.writable, h.dirty)
        child._c["fork_ptes"] += 1

    def _vfork(self) -> "RefProcess":
        """vfork: the child takes this address space as it is (no frame, nothing
        write-protected); this process is suspended until the child execs or exits."""
        m = self.machine
        child = RefProcess(m, m._next_pid, self)
        m._next_pid += 1
        child._root, child._vmas = self._root, self._vmas
        self._root, self._vmas = None, []
        child._lender, self._borrower = self, child
        m._procs[child.pid] = child
        m._records_changed()
        m._forks += 1
        return child

    def _give_back(self) -> None:
        """A vfork child returns the borrowed space; its parent resumes."""
        lender = self._lender
        assert lender is not None
        lender._root, lender._vmas = self._root, self._vmas
        self._root, self._vmas = None, []
        lender._borrower = self._lender = None

    def _release_space(self) -> None:
        """exit_mmap: drop shared (odf) tables, zap every region in address order, free
        every table (bottom-up, root last), then release the shmem objects."""
        m = self.machine
        for up, idx, _lo, _hi in self._wp_spans(0, m.user_end):
            if m._ref[up.children[idx].frame] > 1:   # odf: others still hold it
                m._ref[up.children[idx].frame] -= 1
                del up.children[idx]
                up.wp.discard(idx)
        for v in self._vmas:
            self._zap(v.start, v.end)
        for t in list(self._tables()):
            m._free(t.frame)
        self._root = None
        gone, self._vmas = self._vmas, []
        for v in gone:
            if v.shared:
                m._release_object(v.shm)

    def exec(self) -> None:
        """A fresh, empty address space (its root table); a vfork child first gives the
        borrowed space back (then the root needs a free frame).  Counters are kept."""
        m = self._m
        if self._lender is not None:
            m._need(1)
            self._give_back()
        else:
            self._release_space()
        self._root = _Table(m._alloc(PAGETABLE), 0, 0)

    def exit(self) -> None:
        m = self._m
        if self._lender is not None:
            self._give_back()
        self._release_space()
        self.alive = False
        m._exit_record(self)

    # ------------------------------------------------------------------ inspection
    @property
    def stats(self) -> ProcessStats:
        """Counters; an exited process keeps its final counters (and holds no table)."""
        self.machine._check_open()
        c = self._c
        minflt = sum(c[k] for k in _COUNTERS if k.startswith("faults_"))
        tables = list(self._tables()) if self.alive else []
        deposits = sum(len(t.huge) for t in tables)
        last = self.machine.levels - 1
        shared = sum(1 for t in tables if t.level == last and self.machine._ref[t.frame] > 1)
        return ProcessStats(minflt=minflt, page_table_frames=len(tables) + deposits, tlb_hits=0,
                            tlb_misses=0, tlb_flushes=0, page_tables_shared=shared, **c)

    def smaps(self, addr=None) -> Dict[str, int]:
        self.machine._check_open()
        if addr is not None:
            addr = _int_arg(addr, "addr")
        m = self._m
        if addr is None:
            vmas = self._vmas
        else:
            v = self._vma_at(addr)
            if v is None:
                raise InvalidArgument(f"no region contains {addr:#x}")
            vmas = [v]
        ps = m.page_size
        acc = dict.fromkeys(SMAPS_FIELDS, 0)
        lmap = m._logical_mapcounts()
        for v in vmas:
            for _vp, f, _writable, pte_dirty, huge in self._mappings(v.start // ps, v.end // ps):
                if f == 0:
                    continue
                mc = lmap[f]
                pss = (ps << PSS_SHIFT) // mc if mc >= 2 else ps << PSS_SHIFT
                dirty = pte_dirty or bool(m._flags[f] & DIRTY)
                if huge:                  # smaps_pmd_entry: a subpage at a time
                    acc["AnonHugePages"] += ps
                acc["Rss"] += ps
                acc["Pss"] += pss
                kind = "Shared" if mc >= 2 else "Private"
                acc[f"{kind}_{'Dirty' if dirty else 'Clean'}"] += ps
                if m._flags[f] & ANON:
                    acc["Anonymous"] += ps
                    acc["Pss_Anon"] += pss
                elif m._flags[f] & SHMEM:
                    acc["Pss_Shmem"] += pss
                if dirty:
                    acc["Pss_Dirty"] += pss
        return {k: (val >> PSS_SHIFT >> 10 if k.startswith("Pss") else val >> 10)
                for k, val in acc.items()}

    def translate(self, addr) -> Optional[Translation]:
        self.machine._check_open()
        addr = _int_arg(addr, "addr")
        m = self._m
        if addr >= m.user_end:
            return None
        vp = addr // m.page_size
        rows = self._mappings(vp, vp + 1)
        if not rows:
            return None
        _vp, frame, writable, dirty, _huge = rows[0]
        return Translation(frame, writable, dirty)

    def page_table(self) -> np.ndarray:
        self._m
        rows = [row[:4] for row in self._mappings()]
        return np.array(rows, dtype=PAGE_TABLE_DTYPE)
