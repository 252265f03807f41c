"""The machine and its process records (csrc/machine.c, csrc/pidmap.c).

``RefMachine`` is the frame table (:class:`~cowsim.reference.frames.Frames`) plus the
processes, the shmem objects and the machine-wide counters; ``RefProcess`` is one
process's record: its root table, its regions and its counters.  The operations live in
the modules named after the C files that implement them; the classes bind them as
methods, so that a model object has the API of docs/API.md.
"""
from __future__ import annotations

import weakref
from typing import Dict, List, Optional, Union

from cowsim import (
    CowsimError,
    InvalidArgument,
    MachineStats,
    ProcessExited,
    ProcessStats,
    ProcessSuspended,
    Region,
)

from .batch import access_batch, replay
from .check import check
from .fault import read_bytes, touch, write_bytes
from .fork import do_exec, do_exit, do_fork
from .filemap import RefFile, drop_caches, file_new, live_files
from .frames import Frames
from .internal import (
    COUNTERS,
    FAULT_KINDS,
    MMAP_MIN_ADDR,
    PAGE_SIZES,
    PAGETABLE,
    THP_COW_MODES,
    ShmemObject,
    Table,
    Vma,
    choice,
    int_arg,
    parse_size,
)
from .pagetable import pte_walk, pte_walk_small, tables_all
from .regions import do_madvise, do_mmap, do_mprotect, do_munmap, vma_find
from .stats import (
    machine_frames,
    machine_stats,
    page_table,
    proc_regions,
    proc_stats,
    proc_status,
    smaps,
    translate,
)


class RefMachine(Frames):
    """Reference model of :class:`cowsim.Machine` (same constructor, same API)."""

    def __init__(self, memory: Union[int, str] = "256MiB", page_size: int = 4096,
                 store_data: bool = True, va_bits: int = 48,
                 fault_around: Union[int, str] = "64KiB", tlb_entries: int = 64,
                 thp_cow: str = "split", readahead_kb: int = 128, large_folios: bool = True) -> None:
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
        self.page_shift = page_size.bit_length() - 1
        # At least two levels; user space (the lower half) must fit in the tree.
        if not 2 * self.page_shift - 2 <= va_bits <= 63:
            raise InvalidArgument(f"va_bits {va_bits} out of range")
        fault_around = parse_size(fault_around, "fault_around")
        if fault_around & (fault_around - 1) or fault_around >= 1 << 32:
            raise InvalidArgument("fault_around must be 0 or a power of two")
        self.thp_cow = choice(thp_cow, "thp_cow", THP_COW_MODES)
        if isinstance(readahead_kb, bool) or not isinstance(readahead_kb, int):
            raise TypeError("readahead_kb must be an int")
        if not 0 <= readahead_kb < 1 << 32:
            raise InvalidArgument(f"readahead_kb {readahead_kb} out of range")
        self.readahead_kb = readahead_kb
        self.large_folios = bool(large_folios)
        super().__init__(memory // page_size, page_size, bool(store_data))
        self.memory = memory
        self.va_bits = va_bits
        self.fault_around = fault_around
        self.entries_per_table = page_size // 8
        self.bits = self.entries_per_table.bit_length() - 1
        self.levels = -(-(va_bits - self.page_shift) // self.bits)
        self.user_start = -(-MMAP_MIN_ADDR // page_size) * page_size
        self.user_end = 1 << (va_bits - 1)
        # processes and objects
        self._procs: Dict[int, RefProcess] = {}
        self._next_pid = 1
        self._objects: List[ShmemObject] = []
        self._pages_copied = 0
        self._forks = 0
        self._minflt = 0
        self._segfaults = 0
        self._odf_used = False
        self._closed = False
        # files (filemap.py): every file not yet freed (deleted ones while mapped)
        self._files: Dict[int, RefFile] = {}
        self._next_file_id = 1
        self._ra_pages = readahead_kb * 1024 // page_size
        self._majflt = self._sigbus = self._page_cache_hits = 0
        self._pages_read = self._pages_written = 0
        # Records (pidmap.c): an exited process's record lives while an object of it
        # does; then its pid is reaped.  Counters of exited processes are summed here.
        self._exited: Dict[int, weakref.ref[RefProcess]] = {}
        self._exited_c = dict.fromkeys(("table_copies", "table_reuses", "thp_faults", "thp_splits"), 0)
        self._pid_slots = 0

    # ------------------------------------------------------------------ API
    def _check_open(self) -> None:
        if self._closed:
            raise CowsimError("machine is closed")

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> RefMachine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _proc_new(self, parent: Optional[RefProcess]) -> RefProcess:
        """proc_new: a record with the next pid, not yet in the process table."""
        p = RefProcess(self, self._next_pid, parent)
        self._next_pid += 1
        return p

    def spawn(self) -> RefProcess:
        self._check_open()
        self._need(1)
        p = self._proc_new(None)
        p._root = Table(self._alloc(PAGETABLE), 0, 0)
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

    def _exit_record(self, p: RefProcess) -> None:
        """An exited process's record stays while an object of it exists (put_task_struct)."""
        del self._procs[p.pid]
        for k in self._exited_c:
            self._exited_c[k] += p._c[k]

        def reap(_ref: object, pid: int = p.pid,
                 machine: weakref.ref[RefMachine] = weakref.ref(self)) -> None:
            m = machine()
            if m is not None:
                del m._exited[pid]
                m._records_changed()

        self._exited[p.pid] = weakref.ref(p, reap)

    @property
    def processes(self) -> List[RefProcess]:
        self._check_open()
        return [p for pid, p in sorted(self._procs.items()) if p.alive]

    def process(self, pid: int) -> RefProcess:
        self._check_open()
        pid = int_arg(pid, "pid", -(1 << 63))
        p = self._procs.get(pid) or (self._exited[pid]() if pid in self._exited else None)
        if p is None:
            if 0 < pid < self._next_pid:
                raise ProcessExited(f"process {pid} has exited and its record was released")
            raise InvalidArgument(f"no process with pid {pid}")
        return p

    @property
    def stats(self) -> MachineStats:
        return machine_stats(self)

    replay = replay
    frames = machine_frames
    check = check
    file = file_new
    drop_caches = drop_caches
    files = property(live_files)


class RefProcess:
    """Reference model of :class:`cowsim.Process`."""

    def __init__(self, machine: RefMachine, pid: int, parent: Optional[RefProcess]) -> None:
        self.machine = machine
        self.pid = pid
        self._ppid = parent.pid if parent is not None else 0
        self.alive = True
        self._root: Optional[Table] = None
        self._vmas: List[Vma] = []             # sorted, non-overlapping
        self._lender: Optional[RefProcess] = None     # a vfork child: whose space it holds
        self._borrower: Optional[RefProcess] = None   # a vfork parent: who holds its space
        self._c = dict.fromkeys(COUNTERS, 0)

    def __repr__(self) -> str:
        return f"RefProcess(pid={self.pid}, alive={self.alive})"

    @property
    def parent(self) -> Optional[RefProcess]:
        """None for a spawned process, and once the parent's record was released."""
        if not self._ppid:
            return None
        try:
            return self.machine.process(self._ppid)
        except ProcessExited:
            return None

    @property
    def suspended(self) -> bool:
        """True while a vfork child holds this process's address space."""
        return self._borrower is not None

    @property
    def _m(self) -> RefMachine:
        """The machine, once this process may act: open, alive and not suspended."""
        m = self.machine
        m._check_open()
        if not self.alive:
            raise ProcessExited(f"process {self.pid} has exited")
        if self._borrower is not None:
            raise ProcessSuspended(f"process {self.pid} is suspended until its vfork child execs or exits")
        return m

    @property
    def _top(self) -> Table:
        """The root table (a live process always has one)."""
        assert self._root is not None, "process without a root table"
        return self._root

    def _count(self, name: str, n: int = 1) -> None:
        self._c[name] += n
        if name in FAULT_KINDS:
            self.machine._minflt += n

    def _give_back(self) -> None:
        """mm_give_back: a vfork child returns the borrowed space; its parent resumes."""
        lender = self._lender
        assert lender is not None
        lender._root, lender._vmas = self._root, self._vmas
        self._root, self._vmas = None, []
        lender._borrower = self._lender = None

    # The operations, from the modules that mirror csrc/ (docs/API.md for each).
    mmap = do_mmap
    munmap = do_munmap
    mprotect = do_mprotect
    madvise = do_madvise
    touch = touch
    access = access_batch
    read = read_bytes
    write = write_bytes
    fork = do_fork
    exec = do_exec
    exit = do_exit
    smaps = smaps
    status = proc_status
    translate = translate
    page_table = page_table

    @property
    def regions(self) -> List[Region]:
        return proc_regions(self)

    @property
    def stats(self) -> ProcessStats:
        """Counters; an exited process keeps its final counters (and holds no table)."""
        return proc_stats(self)

    # Inspection helpers that tests/test_differential.py uses to aim its operations.
    _vma_at = vma_find
    _mappings = pte_walk
    _entries = pte_walk_small
    _tables = tables_all
