"""The model's shared definitions (csrc/internal.h): constants, argument checks, and the
structures every module works on -- page-table pages, entries, regions, shmem objects."""
from __future__ import annotations

import dataclasses
import enum
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

import numpy as np

import cowsim
from cowsim import CowsimError, InvalidArgument, Region

# Frame flags (FrameFlags in the API).
ANON, EXCLUSIVE, DIRTY, PAGETABLE, SHMEM, HUGE, FILE = 1, 2, 4, 8, 16, 32, 64

HPAGE_NR = 512              # frames per transparent huge page (4 KiB pages only)
HPAGE_SIZE = HPAGE_NR * 4096
THP_COW_MODES = ("split", "copy-huge")

FRAME_DTYPE = np.dtype([("frame", "u8"), ("refcount", "u4"), ("mapcount", "u4"), ("flags", "u1")])
PAGE_TABLE_DTYPE = np.dtype([("vpage", "u8"), ("frame", "u8"), ("writable", "?"), ("dirty", "?")])

PROTS = ("none", "r", "rw")
ADVICES = ("dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed", "random", "normal")
FORK_MODES = ("cow", "eager", "odf", "vfork")
ON_SEGFAULT = ("continue", "raise")
PAGE_SIZES = (4096, 16384, 65536)
MMAP_MIN_ADDR = 65536
SMAPS_FIELDS = ("Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Pss_Shmem", "Shared_Clean",
                "Shared_Dirty", "Private_Clean", "Private_Dirty", "Anonymous",
                "AnonHugePages", "Pss_File")
STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmPTE")
FOLIO_MAX_ORDER = 9         # MAX_PAGECACHE_ORDER
FOLIO_CHUNK = 2 << 20       # generic_perform_write's chunk (mapping_max_folio_size)
PSS_SHIFT = 12

# Per-process counters (cs_proc_stats); those named faults_* also count as minflt.
COUNTERS = ("faults_zero_page", "faults_zero_fill", "faults_cow_copy", "faults_cow_reuse",
            "faults_shared", "segfaults", "pages_copied", "accesses", "table_copies",
            "table_reuses", "fork_ptes", "fork_tables", "thp_faults", "thp_splits",
            "faults_file", "majflt", "sigbus", "page_cache_hits")
# The kinds of fault (minflt + majflt = their sum).
FAULT_KINDS = ("faults_zero_page", "faults_zero_fill", "faults_cow_copy", "faults_cow_reuse",
               "faults_shared", "faults_file")
MACHINE_FILE_FIELDS = ("majflt", "sigbus", "page_cache_hits", "page_cache_frames", "page_cache_dirty",
                       "files", "pages_read", "pages_written")

# A mapped page as the hardware sees it: (vpage, frame, writable, dirty, huge).
Mapping = Tuple[int, int, bool, bool, bool]

# --------------------------------------------------------------------------- arguments

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value: object, what: str = "size") -> int:
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


def int_arg(value: object, what: str, low: int = 0) -> int:
    """An int in [low, 2**64): TypeError for a non-int, InvalidArgument out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    value = int(value)
    if not low <= value < 1 << 64:
        raise InvalidArgument(f"{what} {value} out of range [{low}, 2**64)")
    return value


def choice(value: object, what: str, choices: Tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if value not in choices:
        raise InvalidArgument(f"unknown {what} {value!r}; expected one of {choices}")
    return value


# --------------------------------------------------------------------------- state


@dataclass(eq=False)
class Pte:
    frame: int          # 0 = the zero page
    writable: bool
    dirty: bool


@dataclass(eq=False)
class Huge:
    """A huge (PMD) mapping of 2 MiB: one level-1 entry for 512 pages."""
    block: int          # first frame of the 512-frame block; 0 = the huge zero page
    deposit: int        # the table frame deposited for a later split
    writable: bool
    dirty: bool


@dataclass(eq=False)
class Table:
    """One page-table page. ``level`` 0 is the root, ``levels - 1`` the last level."""
    frame: int
    level: int
    base: int                               # first virtual page number of its span
    children: Dict[int, Table] = field(default_factory=dict)      # upper levels
    ptes: Dict[int, Pte] = field(default_factory=dict)            # last level
    wp: Set[int] = field(default_factory=set)   # odf: children shared and write-protected here
    huge: Dict[int, Huge] = field(default_factory=dict)           # level levels-2: THP entries


@dataclass(eq=False)
class ShmemObject:
    pages: Dict[int, int] = field(default_factory=dict)   # page offset -> frame
    nregions: int = 0


@dataclass(eq=False)
class Vma:
    start: int
    end: int
    prot: str
    shared: bool
    dontfork: bool = False
    wipeonfork: bool = False
    anon_vma: bool = False
    obj: Optional[ShmemObject] = None
    pgoff: int = 0                          # object page of ``start``
    huge: bool = False                      # THP-eligible (mmap(huge=True))
    file: Any = None              # a file mapping: its RefFile (filemap.py)
    random: bool = False                    # MADV_RANDOM: faults read no pages ahead

    def public(self) -> Region:
        extra: Dict[str, Any] = {}
        names = {f.name for f in dataclasses.fields(Region)}
        for key in ("file", "file_id"):
            if key in names:
                extra[key] = self.file.id if self.file is not None else 0
        if "random" in names:
            extra["random"] = self.random
        if "offset" in names:
            extra["offset"] = self.pgoff * self.file.page_size if self.file is not None else 0
        return Region(self.start, self.end, self.prot, self.shared, self.dontfork,
                      self.wipeonfork, self.anon_vma, self.huge, **extra)

    @property
    def shm(self) -> ShmemObject:
        """The shmem object of a shared region."""
        assert self.obj is not None, "not a shared region"
        return self.obj


# --------------------------------------------------------------------------- file-backed memory
# The door's names when it has them, else local stand-ins (issue #13 lands in the core
# and the model at the same time).


class _Outcome(enum.IntEnum):
    HIT = 0
    ZERO_PAGE = 1
    ZERO_FILL = 2
    COW_COPY = 3
    COW_REUSE = 4
    SHARED = 5
    SEGFAULT = 6
    FILE = 7
    SIGBUS = 8


Outcome: Any = cowsim.Outcome if hasattr(cowsim.Outcome, "SIGBUS") else _Outcome


class _BusError(CowsimError):
    """SIGBUS: an access to a file page wholly past the end of its file."""

    def __init__(self, message: str, address: int, access: str) -> None:
        super().__init__(message)
        self.address = address
        self.access = access


BusError: Any = getattr(cowsim, "BusError", None) or getattr(cowsim.errors, "BusError", None) or _BusError


@functools.lru_cache(maxsize=None)
def stats_type(cls: Any, name: str, names: Tuple[str, ...]) -> Any:
    """``cls`` if it has every field of ``names``, else a local frozen dataclass with them."""
    have = [f.name for f in dataclasses.fields(cls)]
    if all(n in have for n in names):
        return cls
    order = have + [n for n in names if n not in have]
    return dataclasses.make_dataclass(name, [(n, int) for n in order], frozen=True,
                                      namespace={"as_dict": dataclasses.asdict})


def make_stats(cls: Any, name: str, values: Dict[str, int]) -> Any:
    t = stats_type(cls, name, tuple(values))
    fields = {f.name for f in dataclasses.fields(t)}
    return t(**{k: v for k, v in values.items() if k in fields})


@dataclass(frozen=True)
class FileStats:
    """What ``RefFile.stats()`` reports (cs_file_stats)."""
    size: int
    pages: int
    cached: int
    dirty: int
    mapped: int
    folios: int
    mappings: int = 0
    deleted: bool = False


FileStatsType: Any = getattr(cowsim, "FileStats", FileStats)
