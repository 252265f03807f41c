"""``File``: a simulated file, its bytes on a simulated disk and its pages in the page cache."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, List, NamedTuple, Optional, Union

import numpy as np

from ._ffi import check, ffi, lib
from ._types import FileStats, _from_struct
from .errors import HostMemoryError, InvalidArgument
from .units import Size, parse_size

if TYPE_CHECKING:
    from .machine import Machine

_U62 = 2**62


class Folio(NamedTuple):
    """A run of pages the page cache holds as one unit: ``first`` page, ``pages``, ``dirty``."""

    first: int
    pages: int
    dirty: bool


def _offset(op: str, name: str, value: Any) -> int:
    if isinstance(value, str):
        value = parse_size(value, f"{op}: {name}")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, not {type(value).__name__}")
    if not 0 <= int(value) < _U62:
        raise InvalidArgument(f"{op}: {name} {int(value)} is out of range [0, 2**62)")
    return int(value)


class File:
    """A file of a :class:`Machine` (``Machine.file()`` creates one).

    Its bytes live on the machine's simulated disk; reading them, by :meth:`read` or
    by a fault in a mapping (``Process.mmap(file=...)``), brings its pages into the
    page cache, one frame per page, grouped in folios; :meth:`write` goes through
    the cache and makes the folios it writes dirty until :meth:`sync`.  Cached
    frames stay after every mapping is gone, until :meth:`evict`,
    ``Machine.drop_caches()`` or :meth:`delete` releases them.

    Attributes:
        machine: the machine it belongs to.
        id: its number in the machine (1, 2, ...).
        name: a label (``"file1"`` unless given).

    >>> from cowsim import Machine
    >>> m = Machine(memory="1MiB")
    >>> f = m.file("16KiB")
    >>> f.write(0, b"hello")
    >>> f.read(0, 5), f.stats().cached, f.stats().dirty
    (b'hello', 1, 1)
    """

    def __init__(self, machine: "Machine", file_id: int, name: str) -> None:
        self.machine = machine
        self.id = file_id
        self.name = name

    @property
    def _m(self) -> Any:
        return self.machine.ptr

    def _op(self, text: str) -> str:
        return f"file {self.name!r}: {text}"

    # -- bytes ----------------------------------------------------------------------
    def write(self, offset: Size, data: Union[bytes, bytearray, memoryview]) -> None:
        """``pwrite``: writes ``data`` at ``offset`` through the page cache (the file grows
        to ``offset + len(data)`` if shorter).  The folios written become dirty.  A page
        not cached is added (large folios for large aligned writes, as ext4 does, unless
        the machine has ``large_folios=False``); in metadata mode only that happens.

        Raises:
            OutOfMemory: not enough free frames for the pages to cache (nothing changes).
        """
        op = self._op(f"write({offset!r}, <{type(data).__name__}>)")
        offset = _offset(op, "offset", offset)
        if isinstance(data, str):
            raise TypeError(f"{op}: data must be bytes-like, not str (encode it first)")
        try:
            raw = memoryview(data).tobytes()
        except TypeError:
            raise TypeError(f"{op}: data must be bytes-like, not {type(data).__name__}") from None
        if offset + len(raw) >= _U62:
            raise InvalidArgument(f"{op}: the write ends past 2**62 bytes")
        check(lib.cs_file_write(self._m, self.id, offset, raw, len(raw)), op)

    def read(self, offset: Size, n: int) -> bytes:
        """``pread``: up to ``n`` bytes from ``offset`` (fewer at the end of the file).  Pages
        not cached are read in (clean, one folio each; ``read(2)``'s own readahead is not
        modelled).  Data mode only (``cache`` works in both).
        """
        op = self._op(f"read({offset!r}, {n!r})")
        offset = _offset(op, "offset", offset)
        n = _offset(op, "n", n)
        self._m  # raises CowsimError once the machine is closed
        if not self.machine.store_data:
            raise InvalidArgument(f"{op}: the machine keeps no bytes (store_data=False)")
        avail = max(0, min(n, self.size - offset))
        try:
            buf = ffi.new("char[]", max(avail, 1))
        except MemoryError:
            raise HostMemoryError(f"{op}: the host cannot allocate a buffer of {avail} bytes") from None
        got = ffi.new("uint64_t *")
        check(lib.cs_file_read(self._m, self.id, offset, buf, avail, got), op)
        return bytes(ffi.buffer(buf, int(got[0])))

    def cache(self, offset: Size = 0, length: Optional[Size] = None) -> None:
        """Brings ``[offset, offset + length)`` (default: to the end) into the page cache,
        clean, as reading it would (``vmtouch -t``, ``cat file > /dev/null``)."""
        op = self._op(f"cache({offset!r}, {length!r})")
        offset = _offset(op, "offset", offset)
        n = max(0, self.size - offset) if length is None else _offset(op, "length", length)
        got = ffi.new("uint64_t *")
        check(lib.cs_file_read(self._m, self.id, offset, ffi.NULL, n, got), op)

    # -- the cache ---------------------------------------------------------------------
    def sync(self) -> None:
        """``fsync``: writes every dirty folio back.  The entries of shared mappings that
        map them become clean and read-only (``page_mkclean``): the next write faults."""
        check(lib.cs_file_sync(self._m, self.id), self._op("sync()"))

    def evict(self) -> None:
        """``fsync`` then ``posix_fadvise(POSIX_FADV_DONTNEED)``: every folio with no page
        mapped leaves the cache; a later access is a major fault."""
        check(lib.cs_file_evict(self._m, self.id), self._op("evict()"))

    def delete(self) -> None:
        """``unlink``: the file goes; its cached pages are freed when its last mapping goes
        (at once if none).  The file object is unusable afterwards."""
        check(lib.cs_file_delete(self._m, self.id), self._op("delete()"))
        self.machine._files.pop(self.id, None)

    # -- inspection ----------------------------------------------------------------------
    def stats(self) -> FileStats:
        """Size, pages, and what the page cache holds of it (cached, dirty, mapped, folios)."""
        out = ffi.new("cs_file_stats *")
        check(lib.cs_file_stat(self._m, self.id, out), self._op("stats()"))
        return _from_struct(FileStats, out)  # type: ignore[no-any-return]

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self.stats().size

    @property
    def pages(self) -> int:
        """Pages holding bytes: ``ceil(size / page_size)``."""
        return self.stats().pages

    def folios(self) -> List[Folio]:
        """The cached folios in page order."""
        op = self._op("folios()")
        count = ffi.new("size_t *")
        check(lib.cs_file_folios(self._m, self.id, ffi.NULL, ffi.NULL, ffi.NULL, 0, count), op)
        cap = int(count[0]) + 1
        first = ffi.new("uint64_t[]", cap)
        npages = ffi.new("uint32_t[]", cap)
        flags = ffi.new("uint8_t[]", cap)
        check(lib.cs_file_folios(self._m, self.id, first, npages, flags, cap, count), op)
        return [Folio(int(first[i]), int(npages[i]), bool(flags[i] & lib.CS_FRAME_DIRTY))
                for i in range(int(count[0]))]

    def __repr__(self) -> str:
        if self.machine.closed:
            return f"<cowsim.File {self.name!r} machine closed>"
        try:
            s = self.stats()
        except InvalidArgument:
            return f"<cowsim.File {self.name!r} deleted>"
        return f"<cowsim.File {self.name!r} size={s.size} cached={s.cached} dirty={s.dirty}>"


def new_file(machine: "Machine", size: Size, name: Optional[str], cached: bool) -> File:
    """``Machine.file``'s body (kept next to the class it builds)."""
    op = f"file({size!r}, name={name!r}, cached={cached!r})"
    size_b = _offset(op, "size", size)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"{op}: name must be a str, not {type(name).__name__}")
    if not isinstance(cached, (bool, np.bool_)):
        raise TypeError(f"{op}: cached must be a bool, not {type(cached).__name__}")
    out = ffi.new("int32_t *")
    check(lib.cs_file_new(machine.ptr, size_b, 1 if cached else 0, out), op)
    fid = int(out[0])
    f = File(machine, fid, name if name is not None else f"file{fid}")
    machine._files[fid] = f
    return f


__all__ = ["File", "Folio", "new_file"]
_ = weakref  # (Machine keeps the files it made: a File holds no C resource of its own)
