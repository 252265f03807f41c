"""Files and the page cache (csrc/filemap.c; DESIGN.md 3.F, docs/SEMANTICS.md).

A :class:`RefFile` is a file on a simulated disk plus its page cache: at most one frame
per file page (flag FILE; the cache holds one reference, each mapping entry one more and
one mapping), grouped in folios (naturally aligned runs of 2**order pages, dirty or clean
as a whole).

Orders that decide frame numbers: readahead, ``write``, ``cache`` and ``read`` allocate
cache frames in increasing page index.  A file fault allocates the missing tables above
the last level first (the walk), then (read) the fault-around maps cached pages -- the
last-level table is allocated only if one gets mapped --, then the SIGBUS check, then
the readahead frames (only those left beyond what the fault still needs), then the
last-level table if still missing, then (private write) the anonymous copy.  Caches are
freed in page order.  The fault's own frames are counted first (OutOfMemory, nothing
changed).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple, Union

from cowsim import InvalidArgument

from .internal import (
    ANON,
    DIRTY,
    EXCLUSIVE,
    FILE,
    FOLIO_MAX_ORDER,
    BusError,
    FileStatsType,
    Outcome,
    Pte,
    Vma,
    int_arg,
    parse_size,
)
from .pagetable import leaf_lookup, pmd_alloc, pt_index, pte_alloc, pte_missing_tables

if TYPE_CHECKING:
    from .machine import RefMachine, RefProcess



# Kernel rules the core does not follow (yet); tests/test_differential.py turns them off to
# compare with it.  FL_MAPPING: FL (a read fault in a fresh table maps its whole large
# folio).  FOLIO_MARKS: PG_readahead marks a folio (fault-around skips all its pages; a
# fault on any starts the async readahead); off: its first page only.  FL_RANGE_NONE:
# finish_fault maps a whole folio only if none of its entries is present, else the page
# alone; off: its empty entries.  RANDOM_KEEPS_MARK: under MADV_RANDOM
# do_async_mmap_readahead returns before clearing PG_readahead.  FL_FINISH_READ:
# finish_fault maps the whole folio for a read too; off: the page alone.
FL_MAPPING = FOLIO_MARKS = FL_RANGE_NONE = RANDOM_KEEPS_MARK = FL_FINISH_READ = True


class RefFile:
    """Reference model of ``cowsim.File``."""

    def __init__(self, m: RefMachine, fid: int, size: int, name: Optional[str]) -> None:
        self.machine = m
        self.id = fid
        self.name = name
        self.size = size
        self.page_size = m.page_size
        self.deleted = False
        self.nregions = 0                       # regions mapping it
        self.pc: Dict[int, int] = {}         # page -> frame
        self.head: Dict[int, int] = {}          # page -> first page of its folio
        self.order: Dict[int, int] = {}         # folio head -> order
        self.dirty: Set[int] = set()            # dirty folio heads
        self.marks: Set[int] = set()            # folio heads with PG_readahead
        self.ra = (0, 0, 0)                     # file_ra_state: start, size, async_size
        self.ra_order = 0                       # its folio order (page_cache_ra_order)
        self.disk = bytearray(size) if m.store_data else bytearray()

    def __repr__(self) -> str:
        return f"RefFile(id={self.id}, size={self.size})"

    @property
    def pages(self) -> int:
        return -(-self.size // self.page_size)

    def _live(self) -> RefMachine:
        m = self.machine
        m._check_open()
        if self.deleted:
            raise InvalidArgument(f"file {self.id} was deleted")
        return m

    # ------------------------------------------------------------------ folios
    def folio(self, page: int) -> Tuple[int, int]:
        """(first page, pages) of the folio holding cached ``page``."""
        h = self.head[page]
        return h, 1 << self.order[h]

    def add_folio(self, first: int, order: int) -> None:
        """New clean folio of 2**order pages from ``first`` (frames in page order),
        bytes from the disk."""
        m = self.machine
        ps = self.page_size
        for pg in range(first, first + (1 << order)):
            fr = m._alloc(FILE)
            self.pc[pg] = fr
            self.head[pg] = first
            if m.store_data:
                chunk = self.disk[pg * ps:(pg + 1) * ps]
                m._data[fr][:len(chunk)] = chunk
        self.order[first] = order

    def mark_dirty(self, page: int) -> None:
        """folio_mark_dirty: the folio of ``page`` becomes dirty."""
        m = self.machine
        h, n = self.folio(page)
        if h not in self.dirty:
            self.dirty.add(h)
            for pg in range(h, h + n):
                m._flags[self.pc[pg]] |= DIRTY

    def writeback(self) -> None:
        """Every dirty folio goes to the disk and becomes clean; the entries mapping its
        pages become clean and read-only (page_mkclean)."""
        m = self.machine
        ps = self.page_size
        if not self.dirty:
            return
        frames: Set[int] = set()
        for h in sorted(self.dirty):
            for pg in range(h, h + (1 << self.order[h])):
                fr = self.pc[pg]
                frames.add(fr)
                m._flags[fr] &= ~DIRTY
                m._pages_written += 1
                if m.store_data and pg * ps < self.size:
                    n = min(ps, self.size - pg * ps)
                    m._data[fr][n:] = bytes(ps - n)      # the part past EOF is zeroed
                    self.disk[pg * ps:pg * ps + n] = m._data[fr][:n]
        self.dirty.clear()
        for p in m._procs.values():
            if not p.alive or p._root is None:
                continue
            for t in p._tables():
                for pte in t.ptes.values():
                    if pte.frame in frames:
                        pte.writable = pte.dirty = False

    def drop_unmapped(self, clean_only: bool) -> None:
        """Drop (page order) every folio none of whose pages is mapped."""
        m = self.machine
        for h in sorted(self.order):
            n = 1 << self.order[h]
            if clean_only and h in self.dirty:
                continue
            if any(m._map[self.pc[pg]] for pg in range(h, h + n)):
                continue
            self.remove_folio(h)

    def remove_folio(self, h: int) -> None:
        m = self.machine
        for pg in range(h, h + (1 << self.order[h])):
            fr = self.pc.pop(pg)
            del self.head[pg]
            self.marks.discard(pg)
            m._put(fr)
        del self.order[h]
        self.dirty.discard(h)

    def free_cache(self) -> None:
        for h in sorted(self.order):
            self.remove_folio(h)

    # ------------------------------------------------------------------ API
    def write(self, offset: int, data: Union[bytes, bytearray, memoryview]) -> None:
        """pwrite through the page cache: new folios as FL, the folios written dirty."""
        m = self._live()
        offset = int_arg(offset, "offset")
        if isinstance(data, str):
            raise TypeError("data must be bytes-like, not str")
        try:
            buf = memoryview(data).cast("B").tobytes()
        except TypeError:
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}") from None
        if not buf:
            return
        end = offset + len(buf)
        ps = self.page_size
        plan = self.write_plan(offset, end)
        m._need(sum(1 << o for _first, o in plan))
        for first, order in plan:
            self.add_folio(first, order)
            for pg in range(first, first + (1 << order)):
                # a page the write covers in part is read first if it holds bytes
                if (pg * ps < offset or (pg + 1) * ps > end) and pg * ps < self.size:
                    m._pages_read += 1
        if end > self.size:
            if m.store_data:
                self.disk.extend(bytes(end - self.size))
            self.size = end
        for pg in range(offset // ps, -(-end // ps)):
            self.mark_dirty(pg)
            if m.store_data:
                lo, hi = max(offset, pg * ps), min(end, (pg + 1) * ps)
                m._data[self.pc[pg]][lo - pg * ps:hi - pg * ps] = buf[lo - offset:hi - offset]

    def write_plan(self, offset: int, end: int) -> List[Tuple[int, int]]:
        """generic_perform_write's folios: (first page, order) of each new folio."""
        m = self.machine
        ps = self.page_size
        shift = ps.bit_length() - 1
        out: List[Tuple[int, int]] = []
        new: Set[int] = set()
        pos = offset
        while pos < end:
            idx = pos // ps
            if idx in self.pc:                    # written in place, to its folio's end
                h, n = self.folio(idx)
                pos = min(end, (h + n) * ps)
                continue
            order = 0
            if m.large_folios:
                chunk = ps << FOLIO_MAX_ORDER    # mapping_max_folio_size
                nbytes = min(chunk - pos % chunk, end - pos)
                order = max(0, nbytes.bit_length() - 1 - shift)
                order = min(order, FOLIO_MAX_ORDER)
                if idx & ((1 << order) - 1):
                    order = (idx & -idx).bit_length() - 1
                while order > 0 and any(pg in self.pc or pg in new
                                        for pg in range(idx, idx + (1 << order))):
                    order -= 1
            out.append((idx, order))
            new.update(range(idx, idx + (1 << order)))
            pos = min(end, (idx + (1 << order)) * ps)
        return out

    def _range_pages(self, offset: int, length: Optional[int]) -> range:
        ps = self.page_size
        last = self.pages if length is None else min(self.pages, -(-(offset + length) // ps))
        return range(min(offset // ps, last), last)

    def _cache_pages(self, pages: range) -> None:
        m = self.machine
        missing = [pg for pg in pages if pg not in self.pc]
        m._need(len(missing))
        for pg in missing:
            self.add_folio(pg, 0)
            m._pages_read += 1

    def cache_pages(self, offset: int = 0, length: Optional[int] = None) -> None:
        """Brings [offset, offset + length) into the cache (clean, single-page folios)."""
        self._live()
        offset = int_arg(offset, "offset")
        if length is not None:
            length = int_arg(length, "length")
        self._cache_pages(self._range_pages(offset, length))

    def read(self, offset: int, n: int) -> bytes:
        """pread: up to n bytes (short at the end); the pages read are cached."""
        m = self._live()
        offset = int_arg(offset, "offset")
        n = int_arg(n, "n")
        if not m.store_data:
            raise InvalidArgument("read needs a machine with store_data=True")
        end = min(offset + n, self.size)
        if end <= offset:
            return b""
        ps = self.page_size
        self._cache_pages(self._range_pages(offset, end - offset))
        out = bytearray()
        for pg in range(offset // ps, -(-end // ps)):
            lo, hi = max(offset, pg * ps), min(end, (pg + 1) * ps)
            out += m._data[self.pc[pg]][lo - pg * ps:hi - pg * ps]
        return bytes(out)

    def sync(self) -> None:
        self._live()
        self.writeback()

    def evict(self) -> None:
        """fsync, then POSIX_FADV_DONTNEED: every folio with no page mapped goes."""
        self._live()
        self.writeback()
        self.drop_unmapped(clean_only=False)

    def delete(self) -> None:
        """unlink: the name goes; the cache with the last mapping."""
        m = self._live()
        self.deleted = True
        if self.nregions == 0:
            file_free(m, self)

    def folios(self) -> List[Tuple[int, int, bool]]:
        self._live()
        return [(h, 1 << self.order[h], h in self.dirty) for h in sorted(self.order)]

    def stats(self) -> Any:
        m = self._live()
        dirty = sum(1 << self.order[h] for h in self.dirty)
        mapped = sum(1 for fr in self.pc.values() if m._map[fr])
        return FileStatsType(size=self.size, pages=self.pages, cached=len(self.pc), dirty=dirty,
                             mapped=mapped, folios=len(self.order), mappings=self.nregions,
                             deleted=int(self.deleted))

    # the door's name for cache_pages
    cache = cache_pages


# --------------------------------------------------------------------------- machine


def file_new(m: RefMachine, size: Union[int, str], name: Optional[str] = None, cached: bool = False) -> RefFile:
    m._check_open()
    size = parse_size(size, "size")
    if name is not None and not isinstance(name, str):
        raise TypeError("name must be a str")
    f = RefFile(m, m._next_file_id, size, name if name is not None else f"file{m._next_file_id}")
    if cached:
        f._cache_pages(range(f.pages))      # counted first: nothing exists without the frames
    m._next_file_id += 1
    m._files[f.id] = f
    return f


def file_free(m: RefMachine, f: RefFile) -> None:
    """The file's last name and mapping are gone: its cache goes (page order)."""
    f.free_cache()
    del m._files[f.id]


def file_put(m: RefMachine, f: RefFile) -> None:
    """A region mapping ``f`` is gone."""
    f.nregions -= 1
    if f.nregions == 0 and f.deleted:
        file_free(m, f)


def drop_caches(m: RefMachine) -> None:
    m._check_open()
    for fid in sorted(m._files):
        m._files[fid].drop_unmapped(clean_only=True)


def live_files(m: RefMachine) -> List[RefFile]:
    m._check_open()
    return [m._files[fid] for fid in sorted(m._files) if not m._files[fid].deleted]


# --------------------------------------------------------------------------- readahead


def ra_window(f: RefFile, start: int, size: int, async_size: int, must: Optional[int], reserve: int) -> None:
    """page_cache_ra_order: the uncached pages of [start, start + size), cut at EOF, in
    folios of ``f.ra_order`` (smaller where the index is not aligned, a folio would pass
    EOF or meet a cached page), in page order; the folio holding start + size -
    async_size (not cut at EOF) gets PG_readahead.  Readahead gives up at the first folio
    it has no frames for beyond ``reserve`` (its allocations may fail); page ``must`` is
    counted in ``reserve`` and always read (filemap_fault reads it alone)."""
    m = f.machine
    end = min(f.pages, start + size)
    mark = start + size - async_size
    pg = start
    while pg < end:
        if pg in f.pc:
            pg += 1
            continue
        order = f.ra_order
        if pg and (pg & -pg).bit_length() - 1 < order:
            order = (pg & -pg).bit_length() - 1
        while order and (pg + (1 << order) > end or any(k in f.pc for k in range(pg, pg + (1 << order)))):
            order -= 1
        n = 1 << order
        has_must = must is not None and pg <= must < pg + n
        if m._nfree() < reserve + n - has_must:
            break
        f.add_folio(pg, order)
        m._pages_read += n
        if has_must:
            must = None
            reserve -= 1
        if pg <= mark < pg + n:
            f.marks.add(pg)
        pg += n
    if must is not None and must not in f.pc:
        f.add_folio(must, 0)
        m._pages_read += 1


def ra_sync(f: RefFile, v: Vma, idx: int, reserve: int) -> None:
    """do_sync_mmap_readahead: a miss of page idx (mmap read-around, single pages);
    MADV_RANDOM or no readahead: that page only."""
    ra = f.machine._ra_pages
    if v.random or ra == 0:
        f.add_folio(idx, 0)
        f.machine._pages_read += 1
        return
    f.ra = (max(0, idx - ra // 2), ra, ra // 4)
    f.ra_order = 0
    ra_window(f, f.ra[0], f.ra[1], f.ra[2], idx, reserve)


def next_ra_size(cur: int, most: int) -> int:
    """get_next_ra_size."""
    if cur < most // 16:
        return 4 * cur
    if cur <= most // 2:
        return 2 * cur
    return most


def ra_async(f: RefFile, v: Vma, idx: int, reserve: int) -> None:
    """do_async_mmap_readahead / page_cache_async_ra: a fault on a page of the marked
    folio at ``idx``'s head.  With MADV_RANDOM or no readahead nothing happens (the mark
    stays, as the kernel's).  Each round raises the folio order by 2 (measured)."""
    ra = f.machine._ra_pages
    head, n = f.folio(idx)
    if v.random or ra == 0:
        if not RANDOM_KEEPS_MARK:
            f.marks.discard(head)
        return
    f.marks.discard(head)
    start, size, asz = f.ra
    expected = start + size - asz
    if head == expected - expected % n or idx == start + size:   # the expected mark: the next window
        start += size
        size = max(size, next_ra_size(size, ra))
    else:                                     # a mark without valid state
        nxt = idx + 1
        while nxt < f.pages and nxt - idx <= ra and nxt in f.pc:
            nxt += 1
        if nxt - idx > ra:
            return
        start, size = nxt, next_ra_size(nxt - idx + ra, ra)
    f.ra = (start, size, size)
    f.ra_order = min(f.ra_order + 2, size.bit_length() - 1, FOLIO_MAX_ORDER)
    if start < f.pages:
        ra_window(f, start, size, size, None, reserve)


def marked(f: RefFile, pg: int, marks: Optional[Set[int]] = None) -> bool:
    """PG_readahead is a folio flag: set on the folio of ``pg`` (FOLIO_MARKS), or, as the
    core keeps it, on ``pg`` itself."""
    marks = f.marks if marks is None else marks
    if FOLIO_MARKS and pg in f.head:
        return f.head[pg] in marks
    return pg in marks


# --------------------------------------------------------------------------- faults


def around_window(p: RefProcess, v: Vma, vp: int, idx: int, cached: Set[int], marks: Set[int],
                  fresh: bool) -> List[int]:
    """The entry indexes (in vp's last-level table) the read fault maps from the cache:
    do_fault_around / filemap_map_pages, FR1 (and FL in a fresh table)."""
    m = p.machine
    ps = m.page_size
    f = v.file
    n = max(1, m.fault_around // ps)
    i = pt_index(p, vp, m.levels - 1)
    vbefore = vp - v.start // ps
    r = v.end // ps - v.start // ps
    lo = max(i - i % n, i - min(i, vbefore))
    hi = min(lo + n, m.entries_per_table, i + r - vbefore, i + f.pages - idx)
    leaf = leaf_lookup(p, vp)
    present = leaf.ptes if leaf is not None else {}
    out = [j for j in range(lo, hi)
           if j not in present and (idx + j - i) in cached and not marked(f, idx + j - i, marks)]
    if FL_MAPPING and fresh and idx in f.pc and not marked(f, idx, marks) and f.order[f.head[idx]] > 0:
        h, k = f.folio(idx)
        first = i - (idx - h)
        if (0 <= first and first + k <= m.entries_per_table   # across the table: the window only
                and vp - (idx - h) >= v.start // ps and vp - (idx - h) + k <= v.end // ps):
            out = sorted(set(out) | set(range(first, first + k)))
    return out


def map_file_page(p: RefProcess, v: Vma, leaf_ptes: Dict[int, Pte], j: int, page: int,
                  writable: bool, dirty: bool) -> int:
    m = p.machine
    fr = v.file.pc[page]
    m._ref[fr] += 1
    m._map[fr] += 1
    leaf_ptes[j] = Pte(fr, writable, dirty)
    return fr  # type: ignore[no-any-return]


def filemap_fault(p: RefProcess, v: Vma, vp: int, write: bool, pre_need: int = 0,
                  pre: Any = None) -> Tuple[Any, int]:
    """A fault on an empty entry of file region v: (outcome, frame).  ``pre`` (needing
    ``pre_need`` frames) runs first once the frames are known to suffice (odf: the
    table made the process's own)."""
    m = p.machine
    ps = m.page_size
    f: RefFile = v.file
    i = pt_index(p, vp, m.levels - 1)
    idx = v.pgoff + vp - v.start // ps
    missing = pte_missing_tables(p, vp)
    leaf_missing = 1 if missing else 0
    upper = missing - leaf_missing
    fresh = leaf_missing == 1
    kind = Outcome.SHARED if v.shared else (Outcome.COW_COPY if write else Outcome.FILE)
    cached = set(f.pc)
    window = [] if write else around_window(p, v, vp, idx, cached, f.marks, fresh)
    base = pre_need + upper
    if i in window or idx >= f.pages:
        m._need(base + (leaf_missing if window else 0))
        if pre is not None:
            pre()
        pmd_alloc(p, vp)
        if window:
            leaf = pte_alloc(p, vp)
            for j in window:
                map_file_page(p, v, leaf.ptes, j, idx + j - i, False, False)
        if i in window:
            p._count("page_cache_hits")
            m._page_cache_hits += 1
            p._count(kind_counter(kind))
            return kind, f.pc[idx]
        p._count("sigbus")
        m._sigbus += 1
        return Outcome.SIGBUS, 0
    # the page is cached but not mapped (marked, or a write), or not cached (major)
    major = idx not in f.pc
    copy = 1 if write and not v.shared else 0
    m._need(base + leaf_missing + (1 if major else 0) + copy)   # readahead takes what is left
    if pre is not None:
        pre()
    pmd_alloc(p, vp)
    if window:                         # the fault-around of the first attempt
        leaf = pte_alloc(p, vp)
        for j in window:
            map_file_page(p, v, leaf.ptes, j, idx + j - i, False, False)
    window2: List[int] = []
    if major:
        ra_sync(f, v, idx, (0 if leaf_lookup(p, vp) else 1) + copy + 1)
        if not write:                  # the retried fault: fault-around maps the window
            leaf = pte_alloc(p, vp)
            window2 = around_window(p, v, vp, idx, set(f.pc), f.marks, False)
            for j in window2:
                map_file_page(p, v, leaf.ptes, j, idx + j - i, False, False)
    if marked(f, idx) and i not in window2:      # fault-around skipped it
        ra_async(f, v, idx, (0 if leaf_lookup(p, vp) else 1) + copy)
    leaf = pte_alloc(p, vp)
    if major:
        p._count("majflt")
        m._majflt += 1
        m._minflt -= 1                 # counted below as a kind, not as a minor fault
    else:
        p._count("page_cache_hits")
        m._page_cache_hits += 1
    p._count(kind_counter(kind))
    src = f.pc[idx]
    if i in window2:
        return kind, src
    if not write or v.shared:          # finish_fault: the page, or (FL) its whole folio
        h, k = f.folio(idx)
        first, vfirst = i - (idx - h), vp - (idx - h)
        js = [i]
        if (FL_MAPPING and (write or FL_FINISH_READ) and k > 1 and first >= 0 and first + k <= m.entries_per_table and vfirst >= v.start // ps
                and vfirst + k <= v.end // ps
                and (not FL_RANGE_NONE or all(j not in leaf.ptes for j in range(first, first + k)))):
            js = [j for j in range(first, first + k) if j not in leaf.ptes]   # (pte_range_none)
        for j in js:
            map_file_page(p, v, leaf.ptes, j, idx + j - i, write, write)
        if write:                      # FR4: writable and dirty, the folio dirty
            f.mark_dirty(idx)
        return kind, src
    g = m._alloc(ANON | EXCLUSIVE)     # FR2: a private copy of the cache page
    m._map[g] = 1
    if m.store_data:
        m._data[g][:] = m._data[src]
    leaf.ptes[i] = Pte(g, True, True)
    v.anon_vma = True
    p._count("pages_copied")
    m._pages_copied += 1
    return kind, g


def kind_counter(kind: Any) -> str:
    return {Outcome.SHARED: "faults_shared", Outcome.COW_COPY: "faults_cow_copy",
            Outcome.FILE: "faults_file"}[kind]


def shared_file_wp(p: RefProcess, v: Vma, vp: int, pte: Pte) -> Tuple[Any, int]:
    """FR4: a write to a read-only entry of a shared file mapping: writable and dirty,
    the folio dirty."""
    f: RefFile = v.file
    idx = v.pgoff + vp - v.start // p.machine.page_size
    pte.writable = pte.dirty = True
    f.mark_dirty(idx)
    p._count("faults_shared")
    return Outcome.SHARED, pte.frame


def bus_error(addr: int, write: bool) -> Exception:
    access = "write" if write else "read"
    return BusError(f"{access} at {addr:#x}: past the end of the file (SIGBUS)", addr, access)  # type: ignore[no-any-return]
