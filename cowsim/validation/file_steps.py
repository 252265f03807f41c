"""The file steps of a scenario: real files on the host's disk file system, simulated files in cowsim.

A scenario may create files, map them (``map`` with ``file`` and ``offset``) and
use them through ``pread``/``pwrite``:

==========  ==================================================================
op          fields
==========  ==================================================================
file        ``file`` (new name), ``pages`` (> 0), ``fill``: "pages" (one
            ``write()`` per page: single-page folios, the default),
            "one-write" (one ``write()`` of the whole file: large folios,
            DESIGN.md FL) or "none" (``ftruncate`` only: a sparse file, never
            cached); ``cached``: false (fsync, then ``posix_fadvise(DONTNEED)``:
            the file starts uncached, the default), true (fsynced, cached
            clean) or "dirty" (not fsynced); ``last_bytes`` (0: the last page
            is whole, else how many bytes of it the file holds)
fsync       ``file``: ``fsync``
evict       ``file``: ``fsync`` then ``posix_fadvise(DONTNEED)`` (mapped pages stay)
fwrite      ``file``, ``first``, ``count``, ``value``: one ``pwrite`` of
            ``count`` whole pages of the byte ``value`` at page ``first``
fread       ``file``, ``first``, ``count``: one ``pread``; ``data_sum`` is the
            sum of the first byte of every page read (short at the end of file)
folios      ``file``: also measures the file's folios (see below)
==========  ==================================================================

Page k of a filled file holds the byte ``(k % 255) + 1`` (so a read's
``data_sum`` says which pages it read).  ``map`` takes ``file`` (a file
created by an earlier step, by any process) and ``offset`` (in pages, default
0); the mapping may extend past the end of the file (an access there is a
bus error, ``sigbus``).  ``madvise`` also takes "random" (``MADV_RANDOM``: no
readahead) and "normal".

In a scenario with files every step also measures, per process, ``majflt``
(with ``minflt``), ``sigbus`` (accesses), and ``RssFile``, ``RssAnon``,
``RssShmem`` (kB, as ``/proc/PID/status``, without the probe's own memory);
per region ``Pss_File``; per file (after its creation) ``size`` (bytes) and
``cached`` (pages in the page cache), and after a ``folios`` step ``folios``
(how many), ``dirty`` and ``large`` (pages in dirty / in large folios).  Expect
keys name a file like a region: ``"f.cached"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Tuple

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from .scenario import _Builder

__all__ = [
    "FILE_OPS",
    "FILLS",
    "FILE_METRICS",
    "FOLIO_METRICS",
    "FILE_PROCESS_METRICS",
    "STATUS_METRICS",
    "FileSpec",
    "MAX_FILE_PAGES",
    "fill_byte",
]

FILE_OPS = ("file", "fsync", "evict", "fwrite", "fread", "folios")
FILLS = ("pages", "one-write", "none")
#: measured for every file after every step
FILE_METRICS = ("size", "cached")
#: measured for the file of a ``folios`` step only
FOLIO_METRICS = ("folios", "dirty", "large")
#: the /proc/PID/status counters measured after every step of a file scenario
STATUS_METRICS = ("RssFile", "RssAnon", "RssShmem")
FILE_PROCESS_METRICS = ("majflt", "sigbus") + STATUS_METRICS
MAX_FILE_PAGES = 1 << 16

FIELDS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "file": (("file", "pages"), ("fill", "cached", "last_bytes")),
    "fsync": (("file",), ()),
    "evict": (("file",), ()),
    "fwrite": (("file",), ("first", "count", "value")),
    "fread": (("file",), ("first", "count")),
    "folios": (("file",), ()),
}


def fill_byte(page: int) -> int:
    """The byte a filled file holds in its page ``page``."""
    return page % 255 + 1


@dataclass(frozen=True)
class FileSpec:
    """A named file: created once, by ``proc`` at step ``step``."""

    name: str
    pages: int
    fill: str
    cached: str  # "no", "yes" or "dirty"
    last_bytes: int
    proc: str
    step: int

    def size(self, page_size: int) -> int:
        """The file's size in bytes when created."""
        return (self.pages - 1) * page_size + self.last_bytes if self.last_bytes else self.pages * page_size


def _err(where: str, msg: str) -> InvalidArgument:
    return InvalidArgument(f"{where}: {msg}")


def describe(step: Any) -> str:
    """A file step in a few words (``Step.describe``)."""
    if step.op == "file":
        return f"file {step.file} ({step.pages} pages, fill {step.fill}, cached {step.cached})"
    if step.op in ("fwrite", "fread"):
        rng = f"{step.file}[{step.first}:{step.first + step.count}]"
        return f"fwrite {rng}={step.value}" if step.op == "fwrite" else f"fread {rng}"
    return f"{step.op} {step.file}"


def check_file_metric(where: str, key: str, step: Any, metric: str) -> None:
    """Raises InvalidArgument when an expect key names a file metric not measured by the step."""
    allowed = FILE_METRICS + (FOLIO_METRICS if step.op == "folios" else ())
    if metric not in allowed:
        raise _err(where, f"field 'expect': key {key!r}: unknown file metric {metric!r}; "
                   f"expected one of {', '.join(allowed)}")


def _known_file(b: "_Builder", where: str, raw: Dict[str, Any]) -> str:
    name = raw["file"]
    if not isinstance(name, str) or name not in b.files:
        known = ", ".join(b.files) or "none yet"
        raise _err(where, f"field 'file': unknown file {name!r} (created so far: {known})")
    return name


def add_file_step(b: "_Builder", where: str, raw: Dict[str, Any], kw: Dict[str, Any]) -> None:
    """Validates a file step into ``kw`` (the Step's fields)."""
    from .scenario import _choice, _int, _name

    op = kw["op"]
    if op == "file":
        name = _name(where, "file", raw["file"])
        if name in b.files or name in b.regions:
            raise _err(where, f"field 'file': the name {name!r} is already used")
        pages = _int(where, "pages", raw["pages"], 1, MAX_FILE_PAGES)
        fill = _choice(where, "fill", raw.get("fill", "pages"), FILLS)
        cached_raw = raw.get("cached", False)
        if cached_raw is True:
            cached = "yes"
        elif cached_raw is False:
            cached = "no"
        elif cached_raw == "dirty":
            cached = "dirty"
        else:
            raise _err(where, f"field 'cached' must be true, false or \"dirty\", got {cached_raw!r}")
        if fill == "none" and cached != "no":
            raise _err(where, "field 'cached': a file filled with \"none\" (ftruncate) has nothing to cache")
        last = _int(where, "last_bytes", raw.get("last_bytes", 0), 0, 1 << 16)
        b.files[name] = FileSpec(name, pages, fill, cached, last, kw["proc"], kw["number"])
        kw.update(file=name, pages=pages, fill=fill, cached=cached, last_bytes=last)
        return
    name = _known_file(b, where, raw)
    kw["file"] = name
    if op in ("fwrite", "fread"):
        first = _int(where, "first", raw.get("first", 0), 0, MAX_FILE_PAGES - 1)
        count = _int(where, "count", raw.get("count", b.files[name].pages - first if first < b.files[name].pages
                                              else 1), 1, MAX_FILE_PAGES - first)
        kw.update(first=first, count=count)
        if op == "fwrite":
            kw["value"] = _int(where, "value", raw.get("value", 1), 0, 255)


def map_file_fields(b: "_Builder", where: str, raw: Dict[str, Any], kw: Dict[str, Any]) -> None:
    """The ``file`` and ``offset`` fields of a ``map`` step."""
    from .scenario import _int

    if "file" not in raw:
        if "offset" in raw:
            raise _err(where, "field 'offset' needs 'file'")
        return
    name = _known_file(b, where, raw)
    if raw.get("huge", False):
        raise _err(where, "field 'huge': file mappings cannot be huge (file THP is not modelled)")
    kw["file"] = name
    kw["offset"] = _int(where, "offset", raw.get("offset", 0), 0, MAX_FILE_PAGES)
