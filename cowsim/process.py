"""``Process``: a simulated process — its regions, accesses, fork and exit."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union, Literal, overload

import numpy as np

from . import _batch
from ._ffi import bus_error, check, ffi, lib, segfault
from ._types import (
    Advice,
    BatchResultWithOutcomes,
    MemStatus,
    ForkMode,
    OnSegfault,
    Prot,
    PAGE_TABLE_DTYPE,
    PROT_VALUES,
    SMAPS_FIELDS,
    BatchResult,
    Outcome,
    ProcessState,
    ProcessStats,
    Region,
    Translation,
    _from_struct,
)
from .errors import HostMemoryError, InvalidArgument, ProcessExited
from .file import File
from .image import ProgramImage, exec_image
from .units import Size, parse_size

if TYPE_CHECKING:
    from .machine import Machine

_U64 = 2**64
_OUTCOMES: Tuple[Outcome, ...] = tuple(Outcome(i) for i in range(len(Outcome)))
_TOUCH_SEGV_UNMAPPED = int(lib.CS_TOUCH_SEGV_UNMAPPED)
_TOUCH_SIGNALS = (int(lib.CS_TOUCH_SEGV_UNMAPPED), int(lib.CS_SIGBUS), int(lib.CS_TOUCH_SEGV_PROTECTION))
_touch_fast = lib.cs_touch_fast
_FORK_MODES = {"cow": lib.CS_FORK_COW, "eager": lib.CS_FORK_EAGER, "odf": lib.CS_FORK_ODF,
               "vfork": lib.CS_FORK_VFORK}
#: The fork strategies, in the order experiments report them.
FORK_MODES = tuple(_FORK_MODES)
_ADVICE = {
    "dontfork": lib.CS_ADV_DONTFORK,
    "dofork": lib.CS_ADV_DOFORK,
    "wipeonfork": lib.CS_ADV_WIPEONFORK,
    "keeponfork": lib.CS_ADV_KEEPONFORK,
    "dontneed": lib.CS_ADV_DONTNEED,
    "random": lib.CS_ADV_RANDOM,
    "normal": lib.CS_ADV_NORMAL,
}


def _int_arg(op: str, name: str, value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, not {type(value).__name__}")
    number = int(value)
    if not low <= number < _U64:
        raise InvalidArgument(f"{op}: {name} {number} is out of range [{low}, 2**64)")
    return number


def _size_arg(op: str, name: str, value: Any, low: int = 0) -> int:
    """An int, or a size string ("64KiB"), in [low, 2**64)."""
    if isinstance(value, str):
        value = parse_size(value, f"{op}: {name}")
    return _int_arg(op, name, value, low)


def _bool_arg(op: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, not {type(value).__name__}")
    return bool(value)


def _choice(op: str, name: str, value: Any, choices: Dict[str, int]) -> int:
    if not isinstance(value, str):
        raise TypeError(f"{op}: {name} must be a str, not {type(value).__name__}")
    if value not in choices:
        raise InvalidArgument(f"{op}: unknown {name} {value!r}; expected one of {sorted(choices)}")
    return int(choices[value])


class Process:
    """A process of a :class:`Machine` (create with ``Machine.spawn`` or ``fork``).

    The object keeps its machine alive, and its process's record in the core: every
    method raises ``ProcessExited`` after :meth:`exit`, except :attr:`stats` (the final
    counters), which stay readable as long as this object (or another of the same
    pid) exists.  The record of an exited process goes with its last object.
    """

    _put = lib.cs_proc_put  # a class attribute: still there while the interpreter shuts down

    def __init__(self, machine: "Machine", pid: int, ppid: int) -> None:
        # Only Machine.process creates these, after taking the hold this object owns.
        self.machine = machine
        self.pid = pid
        self._ppid = ppid
        self._held = True

    def __del__(self) -> None:
        # put_task_struct.  Runs in whatever thread drops the last reference, or in the
        # cycle collector; reads the machine's pointer now, so a closed machine (whose
        # records went with it) is left alone and nothing keeps the core alive.
        if not self.__dict__.get("_held"):
            return
        self._held = False  # first: Machine.process no longer hands this object out
        machine: Optional["Machine"] = self.__dict__.get("machine")
        ptr = getattr(machine, "_ptr", None)
        if ptr is not None and machine is not None and machine._alive[0]:  # (freed already when a cycle went)
            self._put(ptr, self.pid)

    @property
    def _m(self) -> Any:
        return self.machine.ptr

    @property
    def parent(self) -> Optional["Process"]:
        """The process this one was forked from; None for a spawned process, and once
        the parent has exited and its record was released (no ``Process`` object of it
        was left), as an orphan is reparented.  A child's object does not keep its
        parent's alive, so a fork chain costs nothing once its ancestors are gone."""
        if not self._ppid:
            return None
        try:
            return self.machine.process(self._ppid)
        except ProcessExited:
            return None

    @property
    def state(self) -> ProcessState:
        """What the process is doing: ``RUNNING``, ``SUSPENDED`` (a vfork parent),
        ``BORROWING`` (a vfork child on its parent's space) or ``EXITED``."""
        state = ffi.new("int32_t *")
        check(lib.cs_proc_state(self.machine.ptr, self.pid, state), f"pid {self.pid}: state")
        return ProcessState(int(state[0]))

    @property
    def alive(self) -> bool:
        """True until :meth:`exit` (a suspended vfork parent is alive)."""
        return self.state is not ProcessState.EXITED

    @property
    def suspended(self) -> bool:
        """True while a vfork child holds this process's address space."""
        return self.state is ProcessState.SUSPENDED

    @property
    def borrowing(self) -> bool:
        """True while this vfork child runs on its parent's address space (until it execs
        or exits: its exit then gives the space back and unmaps nothing)."""
        return self.state is ProcessState.BORROWING

    # -- regions --------------------------------------------------------------------
    def mmap(self, length: Size, prot: Prot = "rw", shared: bool = False, addr: Optional[int] = None,
             huge: bool = False, file: Optional["File"] = None, offset: Size = 0) -> int:
        """Maps a region, anonymous or of a file, and returns its start address.

        Args:
            length: bytes (or a size string, "64KiB"), rounded up to whole pages.
            file: a :class:`File` of this machine: a file mapping (text, libraries, data
                files) whose pages come from the page cache: private (``shared=False``:
                writes copy the page, the file is unchanged) or shared (writes go to the
                page cache, seen by every mapper and by ``File.read``).  It may extend
                past the end of the file (accesses there raise ``BusError``).
            offset: the mapping's byte offset in ``file`` (page aligned).
            prot: "none", "r" or "rw".
            shared: MAP_SHARED (processes forked later share its pages) or private.
            addr: a page-aligned fixed address (must not overlap a region), or None
                to let the core pick the highest free range (2 MiB aligned when huge).
            huge: transparent huge pages (MADV_HUGEPAGE): faults in 2 MiB-aligned spans
                wholly inside the region map 2 MiB pages.  Private regions and 4 KiB
                pages only.

        Raises:
            InvalidArgument: bad length/prot/addr/offset, a fixed range that overlaps, huge
                with shared=True, a file or a page size other than 4096, or a file of
                another machine or deleted.
            OutOfMemory: no free virtual range is large enough.
        """
        op = (f"pid {self.pid}: mmap(length={length!r}, prot={prot!r}, shared={shared!r}, addr={addr!r}"
              + (f", huge={huge!r}" if huge is not False else "")
              + (f", file={file!r}, offset={offset!r})" if file is not None else ")"))
        length = _size_arg(op, "length", length, 1)
        offset_b = _size_arg(op, "offset", offset)
        file_id = 0
        if file is not None:
            if not isinstance(file, File):
                raise TypeError(f"{op}: file must be a cowsim.File, not {type(file).__name__}")
            if file.machine is not self.machine:
                raise InvalidArgument(f"{op}: the file belongs to another machine")
            if offset_b % self.machine.page_size:
                raise InvalidArgument(f"{op}: offset {offset_b:#x} is not page aligned")
            file_id = file.id
        elif offset_b:
            raise InvalidArgument(f"{op}: offset is for file mappings only")
        prot_v = _choice(op, "prot", prot, PROT_VALUES)
        shared = _bool_arg(op, "shared", shared)
        huge = _bool_arg(op, "huge", huge)
        if huge and shared:
            raise InvalidArgument(f"{op}: huge pages are for private regions only")
        if huge and file is not None:
            raise InvalidArgument(f"{op}: huge pages are for anonymous memory only (file THP is not modelled)")
        if huge and self.machine.page_size != 4096:
            raise InvalidArgument(f"{op}: huge pages need page_size 4096, not {self.machine.page_size}")
        fixed = 0 if addr is None else _int_arg(op, "addr", addr, 1)
        if fixed % self.machine.page_size:
            raise InvalidArgument(f"{op}: addr {fixed:#x} is not page aligned")
        out = ffi.new("uint64_t *")
        flags = (lib.CS_MAP_SHARED if shared else 0) | (lib.CS_VMA_HUGE if huge else 0)
        if file is None:
            rc = lib.cs_mmap(self._m, self.pid, fixed, length, prot_v, flags, out)
        else:
            rc = lib.cs_mmap_file(self._m, self.pid, fixed, length, prot_v, flags, file_id, offset_b, out)
        if rc == lib.CS_EINVAL and addr is not None:  # the core checks liveness first, then the range
            m = self.machine
            raise InvalidArgument(
                f"{op}: the range [{fixed:#x}, {fixed + length:#x}) is not inside user space "
                f"[{m.user_start:#x}, {m.user_end:#x})"
            )
        check(rc, op)
        return int(out[0])

    def _range(self, op: str, addr: Any, length: Any) -> Tuple[int, int]:
        addr = _int_arg(op, "addr", addr)
        length = _int_arg(op, "length", length, 1)
        if addr % self.machine.page_size:
            raise InvalidArgument(f"{op}: addr {addr:#x} is not page aligned")
        if addr + length > self.machine.user_end:
            raise InvalidArgument(f"{op}: range [{addr:#x}, {addr + length:#x}) leaves the address space")
        return addr, length

    def munmap(self, addr: int, length: int) -> None:
        """Unmaps ``[addr, addr+length)`` (holes allowed), freeing frames and tables."""
        op = f"pid {self.pid}: munmap({addr!r}, {length!r})"
        addr, length = self._range(op, addr, length)
        check(lib.cs_munmap(self._m, self.pid, addr, length), op)

    def mprotect(self, addr: int, length: int, prot: Prot) -> None:
        """Changes the protection of a fully mapped range (M1)."""
        op = f"pid {self.pid}: mprotect({addr!r}, {length!r}, {prot!r})"
        prot_v = _choice(op, "prot", prot, PROT_VALUES)
        addr, length = self._range(op, addr, length)
        check(lib.cs_mprotect(self._m, self.pid, addr, length, prot_v), op)

    def madvise(self, addr: int, length: int, advice: Advice) -> None:
        """Applies "dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed", "random"
        (MADV_RANDOM: a file fault reads only its own page, no readahead) or "normal"."""
        op = f"pid {self.pid}: madvise({addr!r}, {length!r}, {advice!r})"
        adv = _choice(op, "advice", advice, _ADVICE)
        addr, length = self._range(op, addr, length)
        check(lib.cs_madvise(self._m, self.pid, addr, length, adv), op)

    # -- accesses ---------------------------------------------------------------------
    def touch(self, addr: int, write: bool = False) -> Outcome:
        """Accesses one address without data and returns what happened.

        This is the single-access hot path: one C call, no allocation.

        Raises:
            SegmentationFault: no region, or no permission (only counted).
            OutOfMemory: the fault needed a frame and none is free.
        """
        if type(addr) is not int or not 0 <= addr < _U64:
            addr = _int_arg(f"pid {self.pid}: touch({addr!r}, write={write!r})", "addr", addr)
        if write is not True and write is not False:
            write = _bool_arg(f"pid {self.pid}: touch({addr:#x})", "write", write)
        ptr = self.machine._ptr
        if ptr is None:
            self.machine.ptr  # raises CowsimError("machine is closed")
        r: int = _touch_fast(ptr, self.pid, addr, 1 if write else 0)
        if r >= 0 and r not in _TOUCH_SIGNALS:
            return _OUTCOMES[r]
        op = f"pid {self.pid}: touch({addr:#x}, write={bool(write)!r})"
        if r == lib.CS_SIGBUS:
            raise bus_error(op, addr, bool(write))
        if r >= _TOUCH_SEGV_UNMAPPED:
            reason = lib.CS_SEGV_PROTECTION if r == lib.CS_TOUCH_SEGV_PROTECTION else lib.CS_SEGV_UNMAPPED
            raise segfault(op, addr, bool(write), reason)
        check(-r, op)
        raise AssertionError("unreachable")

    @overload
    def access(self, addrs: np.ndarray, write: "_batch.WriteSpec" = ..., outcomes: Literal[False] = ...,
               on_segfault: OnSegfault = ...) -> BatchResult: ...

    @overload
    def access(self, addrs: np.ndarray, write: "_batch.WriteSpec" = ..., *, outcomes: Literal[True],
               on_segfault: OnSegfault = ...) -> BatchResultWithOutcomes: ...

    @overload
    def access(self, addrs: np.ndarray, write: "_batch.WriteSpec", outcomes: Literal[True],
               on_segfault: OnSegfault = ...) -> BatchResultWithOutcomes: ...

    def access(
        self,
        addrs: np.ndarray,
        write: "_batch.WriteSpec" = False,
        outcomes: bool = False,
        on_segfault: OnSegfault = "continue",
    ) -> BatchResult:
        """Runs a batch of accesses in one C call (faults included).

        Args:
            addrs: 1-D contiguous ``uint64`` array of addresses.
            write: a bool for every access, or a ``bool`` array of the same length.
            outcomes: also return each access's :class:`Outcome` code (``uint8`` array).
            on_segfault: "continue" (count it and go on) or "raise" (stop at the first;
                the accesses before it have taken effect).

        Returns:
            A :class:`BatchResult` with counts per outcome.

        Raises:
            SegmentationFault: with ``on_segfault="raise"``; ``.index`` and ``.result`` tell
                where it stopped.
            OutOfMemory: a fault found no free frame (``.index``, ``.result`` as above).

        >>> import numpy as np, cowsim
        >>> p = cowsim.Machine(memory="1MiB").spawn()
        >>> a = p.mmap(4 * 4096)
        >>> r = p.access(a + np.arange(0, 4 * 4096, 512, dtype=np.uint64), write=True)
        >>> (r.zero_fill, r.hits)
        (4, 28)
        """
        op = f"pid {self.pid}: access({_batch.describe(addrs, 'addrs')})"
        m, pid = self._m, self.pid
        return _batch.run(op, addrs, write, outcomes, on_segfault, lambda *args: lib.cs_access_batch(m, pid, *args))

    def read(self, addr: int, n: int) -> bytes:
        """Reads ``n`` bytes (data mode only); faults as reads do."""
        op = f"pid {self.pid}: read({addr!r}, {n!r})"
        addr = _int_arg(op, "addr", addr)
        n = _int_arg(op, "n", n)
        if addr + n > _U64:
            raise InvalidArgument(f"{op}: range overflows the address space")
        self._m  # raises CowsimError once the machine is closed
        if not self.machine.store_data:
            raise InvalidArgument(f"{op}: the machine keeps no bytes (store_data=False)")
        if addr + n > self.machine.user_end:
            buf = ffi.NULL  # part of the range is beyond user space: C's permission pre-check faults first
        else:
            try:
                buf = ffi.new("char[]", max(n, 1))
            except MemoryError:
                raise HostMemoryError(f"{op}: the host cannot allocate a buffer of {n} bytes") from None
        info = ffi.new("cs_access_info *")
        check(lib.cs_read(self._m, self.pid, addr, buf, n, info), op, info, False)
        return bytes(ffi.buffer(buf, n)) if n else b""

    def write(self, addr: int, data: Union[bytes, bytearray, memoryview]) -> None:
        """Writes bytes (in metadata mode only the accesses happen)."""
        op = f"pid {self.pid}: write({addr!r}, <{type(data).__name__}>)"
        addr = _int_arg(op, "addr", addr)
        if isinstance(data, str):
            raise TypeError(f"{op}: data must be bytes-like, not str (encode it first)")
        try:
            view = memoryview(data)
        except TypeError:
            raise TypeError(f"{op}: data must be bytes-like, not {type(data).__name__}") from None
        if "O" in view.format or "P" in view.format:  # objects / pointers: host addresses, not data
            raise TypeError(f"{op}: data must hold plain bytes, not Python objects or pointers "
                            f"(buffer format {view.format!r})")
        raw = view.tobytes()  # any layout, strided included, in logical order
        if addr + len(raw) > _U64:
            raise InvalidArgument(f"{op}: range overflows the address space")
        info = ffi.new("cs_access_info *")
        check(lib.cs_write(self._m, self.pid, addr, raw, len(raw), info), op, info, True)

    # -- fork and exit ----------------------------------------------------------------
    def fork(self, mode: ForkMode = "cow") -> "Process":
        """Forks: "cow" (Linux: share and write-protect), "eager" (copy every page),
        "odf" (on-demand fork: share the last-level tables, write-protected, until one
        side changes one) or "vfork" (the child borrows this address space; this process
        is suspended, and raises ``ProcessSuspended``, until the child calls :meth:`exec`
        or exits).

        Raises:
            OutOfMemory: the child's tables (and eager copies) do not fit; nothing changed.
        """
        op = f"pid {self.pid}: fork(mode={mode!r})"
        mode_v = _choice(op, "mode", mode, _FORK_MODES)
        child = ffi.new("int32_t *")
        check(lib.cs_fork(self._m, self.pid, mode_v, child), op)
        return self.machine.process(int(child[0]))

    def exec(self, image: Optional["ProgramImage"] = None) -> Dict[str, Tuple[int, int]]:
        """Replaces the address space with a fresh one (execve): empty, or laid out from
        ``image`` as the ELF loader does (text and data mapped privately from the image's
        file, which stays in the page cache and is shared by every process running it;
        bss, heap and stack anonymous).

        A vfork child gives the borrowed space back to its parent, which resumes.
        Counters are kept, as the kernel keeps them across execve.

        Returns:
            The image's regions by name ("text", "data", "bss", "heap", "stack",
            "libc.so.6:text", ...) as ``(start, end)``; empty without an image.

        Raises:
            OutOfMemory: a vfork child on a machine with no free frame for its new root,
                or no frames for the image's cached file.
        """
        if image is not None and not isinstance(image, ProgramImage):
            raise TypeError(f"pid {self.pid}: exec(): image must be a cowsim.ProgramImage, not {type(image).__name__}")
        op = f"pid {self.pid}: exec({'' if image is None else repr(image.name)})"
        check(lib.cs_exec(self._m, self.pid), op)
        return {} if image is None else exec_image(self, image)

    def exit(self) -> None:
        """Exits: every mapping and table is released.  A second call raises ProcessExited."""
        op = f"pid {self.pid}: exit()"
        check(lib.cs_exit(self._m, self.pid), op)

    # -- inspection -----------------------------------------------------------------
    @property
    def stats(self) -> ProcessStats:
        out = ffi.new("cs_proc_stats *")
        check(lib.cs_proc_stats_get(self._m, self.pid, out), f"pid {self.pid}: stats")
        return _from_struct(ProcessStats, out)  # type: ignore[no-any-return]

    def smaps(self, addr: Optional[int] = None) -> Dict[str, int]:
        """Memory accounting in kB, as /proc/PID/smaps_rollup (or one region's smaps)."""
        op = f"pid {self.pid}: smaps({addr!r})"
        whole = addr is None
        at = 0 if addr is None else _int_arg(op, "addr", addr)
        out = ffi.new("cs_smaps *")
        check(lib.cs_smaps_get(self._m, self.pid, 1 if whole else 0, at, out), op)
        return {name: int(getattr(out, name)) for name in SMAPS_FIELDS}

    def status(self) -> MemStatus:
        """The memory lines of /proc/PID/status in kB: ``VmRSS``, ``RssAnon``, ``RssFile``,
        ``RssShmem`` (the mm's RSS counters: one per mapped page, by kind) and ``VmPTE``."""
        out = ffi.new("cs_status_mem *")
        check(lib.cs_status_mem_get(self._m, self.pid, out), f"pid {self.pid}: status()")
        return _from_struct(MemStatus, out)  # type: ignore[no-any-return]

    @property
    def regions(self) -> List[Region]:
        op = f"pid {self.pid}: regions"
        count = ffi.new("size_t *")
        check(lib.cs_regions(self._m, self.pid, ffi.NULL, 0, count), op)
        while True:  # another thread may split regions between the calls: retry until it fits
            cap = int(count[0]) + 4
            buf = ffi.new("cs_region[]", cap)
            check(lib.cs_regions(self._m, self.pid, buf, cap, count), op)
            if int(count[0]) <= cap:
                return [Region._from_c(buf[i]) for i in range(int(count[0]))]

    def translate(self, addr: int) -> Optional[Translation]:
        """The frame an address maps to now, or None when no entry is present."""
        op = f"pid {self.pid}: translate({addr!r})"
        addr = _int_arg(op, "addr", addr)
        out = ffi.new("cs_translation *")
        check(lib.cs_translate(self._m, self.pid, addr, out), op)
        if not out.present:
            return None
        return Translation(int(out.frame), bool(out.flags & lib.CS_PTE_WRITE), bool(out.flags & lib.CS_PTE_DIRTY))

    def page_table(self) -> np.ndarray:
        """Every present entry by virtual page: ``vpage``, ``frame``, ``writable``, ``dirty``."""
        op = f"pid {self.pid}: page_table()"
        count = ffi.new("size_t *")
        check(lib.cs_page_table(self._m, self.pid, ffi.NULL, ffi.NULL, ffi.NULL, 0, count), op)
        while True:  # another thread may fault pages in between the calls: retry until it fits
            cap = int(count[0]) + 64
            vpages = np.empty(cap, "u8")
            frames = np.empty(cap, "u8")
            flags = np.empty(cap, "u1")
            check(
                lib.cs_page_table(
                    self._m,
                    self.pid,
                    ffi.from_buffer("uint64_t[]", vpages),
                    ffi.from_buffer("uint64_t[]", frames),
                    ffi.from_buffer("uint8_t[]", flags),
                    cap,
                    count,
                ),
                op,
            )
            n = int(count[0])
            if n <= cap:
                break
        out = np.empty(n, PAGE_TABLE_DTYPE)
        out["vpage"], out["frame"] = vpages[:n], frames[:n]
        out["writable"] = (flags[:n] & lib.CS_PTE_WRITE) != 0
        out["dirty"] = (flags[:n] & lib.CS_PTE_DIRTY) != 0
        return out

    def __repr__(self) -> str:
        if self.machine.closed:
            return f"<cowsim.Process pid={self.pid} parent={self._ppid or None} machine closed>"
        state = {ProcessState.EXITED: "exited", ProcessState.SUSPENDED: "suspended",
                 ProcessState.BORROWING: "borrowing"}.get(self.state, "alive")
        return f"<cowsim.Process pid={self.pid} parent={self._ppid or None} {state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Process) and other.machine is self.machine and other.pid == self.pid

    def __hash__(self) -> int:
        return hash((id(self.machine), self.pid))
