"""``Machine``: simulated physical memory, its frames and its processes."""
from __future__ import annotations

import weakref
from typing import Any, Dict, List, Literal, Optional, overload

import numpy as np

from . import _batch
from ._ffi import check, ffi, lib
from ._types import (
    FRAMES_DTYPE,
    BatchResult,
    BatchResultWithOutcomes,
    MachineStats,
    OnSegfault,
    ThpCow,
    _from_struct,
)
from .errors import CowsimError, InvalidArgument, InvariantViolation, ProcessExited
from .units import Size, format_size, parse_size

PAGE_SIZES = (4096, 16384, 65536)
THP_COW_MODES = {"split": lib.CS_THP_COW_SPLIT, "copy-huge": lib.CS_THP_COW_COPY_HUGE}


class Machine:
    """A simulated machine: physical frames, page tables, processes.

    Args:
        memory: simulated physical memory, bytes or a size string ("256MiB").
        page_size: 4096, 16384 or 65536.
        store_data: keep each frame's bytes (reads return what was written);
            False keeps only metadata, so huge memories cost little.
        va_bits: virtual address bits of the page-table tree (48 → 4 levels
            with 4 KiB pages); user space is the lower half.
        fault_around: shmem read fault-around window in bytes (Linux: 64 KiB);
            0 disables it.
        tlb_entries: entries of each process's software TLB (a power of two;
            0 turns it off).  It changes speed and the TLB counters, never results.
        thp_cow: what a write to a write-protected, shared huge page does: "split"
            (Linux >= 5.8: split the mapping, copy 4 KiB) or "copy-huge" (older
            kernels: copy the whole 2 MiB page when a free block exists).
        readahead_kb: the simulated disk's ``read_ahead_kb``: a fault on an uncached
            file page reads this much around it (Linux's default 128; 0: none).
        large_folios: ``File.write`` caches large folios for large aligned writes, as
            ext4 does (FL); False caches every page as a folio of its own.

    Raises:
        InvalidArgument: a size or option out of range.
        TypeError: an argument of the wrong type.

    >>> m = Machine(memory="1MiB")
    >>> m.stats.frames_total
    255
    """

    def __init__(
        self,
        memory: Size = "256MiB",
        page_size: int = 4096,
        store_data: bool = True,
        va_bits: int = 48,
        fault_around: Size = "64KiB",
        tlb_entries: int = 64,
        thp_cow: ThpCow = "split",
        readahead_kb: int = 128,
        large_folios: bool = True,
    ) -> None:
        memory_b = parse_size(memory, "Machine: memory")
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise TypeError(f"Machine: page_size must be an int, not {type(page_size).__name__}")
        if page_size not in PAGE_SIZES:
            raise InvalidArgument(f"Machine: page_size must be one of {PAGE_SIZES}, got {page_size}")
        if memory_b % page_size:
            raise InvalidArgument(f"Machine: memory {memory_b} is not a multiple of page_size {page_size}")
        nframes = memory_b // page_size
        if not 2 <= nframes < 2**32:
            raise InvalidArgument(f"Machine: memory must hold 2 to 2**32-1 frames, got {nframes}")
        if not isinstance(store_data, (bool, np.bool_)):
            raise TypeError(f"Machine: store_data must be a bool, not {type(store_data).__name__}")
        if isinstance(va_bits, bool) or not isinstance(va_bits, int):
            raise TypeError(f"Machine: va_bits must be an int, not {type(va_bits).__name__}")
        shift = page_size.bit_length() - 1
        if not shift + (shift - 3) + 1 <= va_bits <= 63:
            raise InvalidArgument(f"Machine: va_bits must be in [{2 * shift - 2}, 63], got {va_bits}")
        fault_b = parse_size(fault_around, "Machine: fault_around")
        if fault_b and (fault_b & (fault_b - 1) or fault_b >= 2**32):
            raise InvalidArgument(f"Machine: fault_around must be 0 or a power of two, got {fault_b}")
        if isinstance(tlb_entries, bool) or not isinstance(tlb_entries, int):
            raise TypeError(f"Machine: tlb_entries must be an int, not {type(tlb_entries).__name__}")
        if tlb_entries < 0 or tlb_entries & (tlb_entries - 1) or tlb_entries > 1 << 20:
            raise InvalidArgument(f"Machine: tlb_entries must be 0 or a power of two <= 2**20, got {tlb_entries}")
        if not isinstance(thp_cow, str):
            raise TypeError(f"Machine: thp_cow must be a str, not {type(thp_cow).__name__}")
        if thp_cow not in THP_COW_MODES:
            raise InvalidArgument(f"Machine: thp_cow must be one of {tuple(THP_COW_MODES)}, got {thp_cow!r}")
        if isinstance(readahead_kb, bool) or not isinstance(readahead_kb, (int, np.integer)):
            raise TypeError(f"Machine: readahead_kb must be an int, not {type(readahead_kb).__name__}")
        if not 0 <= int(readahead_kb) < 2**22:
            raise InvalidArgument(f"Machine: readahead_kb must be in [0, 2**22), got {int(readahead_kb)}")
        if not isinstance(large_folios, (bool, np.bool_)):
            raise TypeError(f"Machine: large_folios must be a bool, not {type(large_folios).__name__}")
        cfg = ffi.new("cs_config *")
        cfg.readahead_kb = int(readahead_kb)
        cfg.large_folios = 1 if large_folios else 0
        cfg.thp_cow = THP_COW_MODES[thp_cow]
        cfg.memory = memory_b
        cfg.page_size = page_size
        cfg.va_bits = va_bits
        cfg.store_data = 1 if store_data else 0
        cfg.fault_around_bytes = fault_b
        cfg.tlb_entries = tlb_entries
        out = ffi.new("cs_machine **")
        check(lib.cs_machine_new(cfg, out), f"Machine(memory={memory!r}, page_size={page_size})")
        # Pair the constructor with its free at once.  The flag tells Process finalizers
        # that the core is gone: in a collected cycle, finalizers run in any order, and
        # cffi frees from the pointer's own finalizer, possibly before a Process's runs.
        alive = [True]

        def free(ptr: Any, alive: List[bool] = alive, _free: Any = lib.cs_machine_free) -> None:
            alive[0] = False
            _free(ptr)

        self._alive = alive
        self._ptr: Any = ffi.gc(out[0], free, size=memory_b // 64)
        geo = ffi.new("cs_geometry *")
        lib.cs_geometry_get(self._ptr, geo)
        self.memory = memory_b
        self.page_size = page_size
        self.store_data = bool(store_data)
        self.va_bits = va_bits
        self.fault_around = fault_b
        self.tlb_entries = tlb_entries
        self.thp_cow = thp_cow
        self.readahead_kb = int(readahead_kb)
        self.large_folios = bool(large_folios)
        self._files: Dict[int, File] = {}
        self._images: Dict[str, File] = {}
        self.levels = int(geo.levels)
        self.entries_per_table = int(geo.entries_per_table)
        self.nframes = int(geo.nframes)
        self.user_start = int(geo.user_start)
        self.user_end = int(geo.user_end)
        self._procs: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()

    # -- lifetime -----------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        """Frees the core now (idempotent); later use raises ``CowsimError``.

        Safe while other threads use the machine: it only drops the machine's
        reference to the pointer, whose ``ffi.gc`` destructor runs when the last
        reference goes.  A C call in progress holds one (its argument) until it
        returns, so the core is freed right here if no call is running, else as
        soon as the running calls return -- never under them.
        """
        ptr, self._ptr = self._ptr, None
        del ptr  # usually the last reference: cs_machine_free runs now

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ptr(self) -> Any:
        """The C machine pointer (raises ``CowsimError`` once closed)."""
        ptr = self._ptr  # read once: close() may run in another thread
        if ptr is None:
            raise CowsimError("machine is closed")
        return ptr

    # -- processes ----------------------------------------------------------------
    def spawn(self) -> "Process":
        """Creates a process with an empty address space (its root table costs a frame).

        Raises:
            OutOfMemory: no frame is free for the root table.
        """
        pid = ffi.new("int32_t *")
        check(lib.cs_spawn(self.ptr, pid), "spawn()")
        return self.process(int(pid[0]))

    def process(self, pid: int) -> "Process":
        """The ``Process`` object for a pid: live, or exited while an object of it exists.

        Every ``Process`` object holds its process's record in the core; an exited
        process's record (its final :attr:`Process.stats`) is freed when its last
        object goes, as the kernel frees a task_struct at its last put: the pid is
        then *reaped* and names nothing any more.  Keep the object of a process whose
        final counters you want (``m.process(pid)`` may hand back the same object).

        Raises:
            InvalidArgument: no process ever had this pid.
            ProcessExited: the process exited and its record was released (reaped).

        >>> m = Machine(memory="1MiB")
        >>> p = m.spawn(); pid = p.pid; p.exit(); del p
        >>> m.process(pid)
        Traceback (most recent call last):
        ...
        cowsim.errors.ProcessExited: process(1): the process has exited and its record was released (no Process object referred to it)
        """
        if isinstance(pid, bool) or not isinstance(pid, (int, np.integer)):
            raise TypeError(f"process: pid must be an int, not {type(pid).__name__}")
        pid = int(pid)
        ptr = self.ptr  # raises CowsimError once closed
        proc = self._procs.get(pid)
        if proc is None or not proc._held:  # (not held: being finalized in another thread)
            if not 0 < pid < 2**31:
                raise InvalidArgument(f"process({pid}): no such process")
            ppid = ffi.new("int32_t *")
            rc = lib.cs_proc_get(ptr, pid, ppid)  # a hold, owned by the new object
            if rc == lib.CS_EEXITED:
                raise ProcessExited(f"process({pid}): the process has exited and its record was released "
                                    f"(no Process object referred to it)")
            check(rc, f"process({pid})")
            proc = Process(self, pid, int(ppid[0]))
            self._procs[pid] = proc
        return proc

    @property
    def processes(self) -> List["Process"]:
        """Live processes, by pid (one that another thread makes exit meanwhile may be
        listed, exited, or left out once its record is released)."""
        count = ffi.new("size_t *")
        lib.cs_pids(self.ptr, ffi.NULL, 0, count)
        while True:  # another thread may fork between the two calls: retry until it fits
            cap = int(count[0]) + 8
            buf = ffi.new("int32_t[]", cap)
            lib.cs_pids(self.ptr, buf, cap, count)
            if int(count[0]) <= cap:
                break
        procs = []
        for i in range(int(count[0])):
            try:
                procs.append(self.process(int(buf[i])))
            except ProcessExited:  # exited and reaped since the listing (another thread)
                pass
        return procs

    @overload
    def replay(self, pids: np.ndarray, addrs: np.ndarray, write: Any = ..., outcomes: Literal[False] = ...,
               on_segfault: OnSegfault = ...) -> BatchResult: ...

    @overload
    def replay(self, pids: np.ndarray, addrs: np.ndarray, write: Any = ..., *, outcomes: Literal[True],
               on_segfault: OnSegfault = ...) -> BatchResultWithOutcomes: ...

    @overload
    def replay(self, pids: np.ndarray, addrs: np.ndarray, write: Any, outcomes: Literal[True],
               on_segfault: OnSegfault = ...) -> BatchResultWithOutcomes: ...

    def replay(
        self,
        pids: np.ndarray,
        addrs: np.ndarray,
        write: Any = False,
        outcomes: bool = False,
        on_segfault: OnSegfault = "continue",
    ) -> BatchResult:
        """Replays a multi-process trace in order: access i is done by ``pids[i]``.

        Args:
            pids: ``int32`` array of pids (live processes).
            addrs: ``uint64`` array of the same length.
            write, outcomes, on_segfault: as in :meth:`Process.access`.

        Raises:
            SegmentationFault, OutOfMemory: as in :meth:`Process.access`.
            ProcessExited, InvalidArgument: a pid in the trace is not live (the accesses
                before it have taken effect).
        """
        op = f"replay({_batch.describe(addrs, 'accesses')})"
        n = len(_batch.as_array(op, "addrs", addrs, "uint64"))
        pid_arr = _batch.as_array(op, "pids", pids, "int32", n)
        ptr, pid_ptr = self.ptr, ffi.from_buffer("int32_t[]", pid_arr)
        return _batch.run(
            op,
            addrs,
            write,
            outcomes,
            on_segfault,
            lambda *args: lib.cs_replay(ptr, pid_ptr, *args),
            lambda res: f"{op}: at index {int(res.stop_index)} (pid {int(pid_arr[int(res.stop_index)])})",
        )

    # -- files ----------------------------------------------------------------------
    def file(self, size: Size = 0, name: Optional[str] = None, cached: bool = False) -> File:
        """Creates a file of ``size`` zero bytes on the simulated disk.

        Args:
            size: bytes, or a size string ("2MiB").
            name: a label for messages and listings.
            cached: start with every page in the page cache, clean, one folio per page
                (as after reading it once); otherwise nothing is cached.

        Raises:
            OutOfMemory: ``cached`` and not enough free frames.
        """
        return new_file(self, size, name, cached)

    @property
    def files(self) -> List[File]:
        """The files that exist (created and not deleted), by id."""
        count = ffi.new("size_t *")
        lib.cs_file_ids(self.ptr, ffi.NULL, 0, count)
        cap = int(count[0]) + 8
        buf = ffi.new("int32_t[]", cap)
        lib.cs_file_ids(self.ptr, buf, cap, count)
        return [self._files[int(buf[i])] for i in range(min(cap, int(count[0]))) if int(buf[i]) in self._files]

    def _image_file(self, img: Any) -> File:
        """The simulated file of a program image (one per name): created cached, as a
        binary that has run before sits in the page cache."""
        f = self._images.get(img.name)
        if f is None or f.id not in self._files:
            f = self._images[img.name] = self.file(img.file_size, name=img.name, cached=True)
        return f

    def drop_caches(self) -> None:
        """``echo 1 > /proc/sys/vm/drop_caches``: every clean folio none of whose pages is
        mapped leaves the page cache (dirty ones stay until ``File.sync``)."""
        check(lib.cs_drop_caches(self.ptr), "drop_caches()")

    # -- inspection -----------------------------------------------------------------
    @property
    def stats(self) -> MachineStats:
        out = ffi.new("cs_machine_stats *")
        lib.cs_machine_stats_get(self.ptr, out)
        return _from_struct(MachineStats, out)  # type: ignore[no-any-return]

    def check(self) -> None:
        """Runs the core's full invariant check.

        Raises:
            InvariantViolation: with the first broken invariant.
        """
        msg = ffi.new("char[]", 512)
        rc = lib.cs_check(self.ptr, msg, 512)
        if rc == lib.CS_EINVARIANT:
            raise InvariantViolation(ffi.string(msg).decode())
        check(rc, "check()")

    def frames(self) -> np.ndarray:
        """Every used frame: number, reference count, map count, flags (``FrameFlags``)."""
        count = ffi.new("size_t *")
        lib.cs_frames(self.ptr, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, 0, count)
        while True:  # frames may be taken between the two calls (threads): retry until it fits
            cap = int(count[0]) + 64
            frames = np.empty(cap, "u8")
            refs = np.empty(cap, "u4")
            maps = np.empty(cap, "u4")
            flags = np.empty(cap, "u1")
            lib.cs_frames(
                self.ptr,
                ffi.from_buffer("uint64_t[]", frames),
                ffi.from_buffer("uint32_t[]", refs),
                ffi.from_buffer("uint32_t[]", maps),
                ffi.from_buffer("uint8_t[]", flags),
                cap,
                count,
            )
            n = int(count[0])
            if n <= cap:
                break
        out = np.empty(n, FRAMES_DTYPE)
        out["frame"], out["refcount"], out["mapcount"] = frames[:n], refs[:n], maps[:n]
        out["flags"] = flags[:n]
        return out

    def __repr__(self) -> str:
        if self._ptr is None:
            return "<cowsim.Machine closed>"
        s = self.stats
        mode = "data" if self.store_data else "metadata"
        return (
            f"<cowsim.Machine {format_size(self.memory)} page_size={self.page_size} {mode} "
            f"processes={s.processes} frames_used={s.frames_used}/{s.frames_total}>"
        )


from .file import File, new_file  # noqa: E402  (File refers back to Machine)
from .process import Process  # noqa: E402  (Process refers back to Machine)
