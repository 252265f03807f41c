"""Regions (csrc/regions.c): mmap, munmap, mprotect, madvise, splits and zaps.

A process keeps its regions (:class:`~cowsim.reference.internal.Vma`) in a sorted list.
Region splits follow Linux: mprotect and madvise split only the regions whose protection
or flags actually change (mprotect_fixup, madvise_update_vma), and madvise(dontneed)
splits nothing.  Regions are never merged (vma_merge is not modelled).

munmap, madvise(dontneed) and exit zap regions in address order, entries in address
order.  munmap then frees the tables whose span overlaps no region (depth-first,
children before their parent, in address order) and only then releases the shmem objects
that lost their last region (Linux: unmap_vmas, free_pgtables, then remove_vma/fput).
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

import numpy as np

from cowsim import InvalidArgument, OutOfMemory

from .internal import (
    ADVICES,
    DIRTY,
    EXCLUSIVE,
    FILE,
    HPAGE_NR,
    HPAGE_SIZE,
    PROTS,
    SHMEM,
    ShmemObject,
    Table,
    Vma,
    choice,
    int_arg,
    parse_size,
)
from .filemap import RefFile, file_put
from .odf import odf_prepare, odf_prepare_need
from .pagetable import pmd_walk, pte_walk_small, tables_free_unused
from .thp import thp_split, thp_split_at, thp_zap

if TYPE_CHECKING:
    from .machine import RefMachine, RefProcess


def vma_find(p: RefProcess, addr: int) -> Optional[Vma]:
    for v in p._vmas:
        if v.start <= addr < v.end:
            return v
    return None


def range_check(p: RefProcess, addr: int, length: int) -> Tuple[int, int]:
    """Validated [start, end) from a page-aligned addr and a length (> 0) rounded up
    to pages; the range must end inside user space (it may begin below user_start)."""
    m = p.machine
    m._check_open()
    addr = int_arg(addr, "addr")
    length = int_arg(length, "length", 1)
    ps = m.page_size
    if addr % ps:
        raise InvalidArgument(f"address {addr:#x} is not page aligned")
    if addr + length > m.user_end:
        raise InvalidArgument(f"range {addr:#x}+{length:#x} outside user space")
    p._m
    end = addr + -(-length // ps) * ps
    if end > m.user_end:
        raise InvalidArgument(f"range {addr:#x}+{length:#x} outside user space")
    return addr, end


def range_fully_mapped(p: RefProcess, start: int, end: int) -> bool:
    pos = start
    for v in p._vmas:
        if v.end <= pos:
            continue
        if v.start > pos:
            return False
        pos = v.end
        if pos >= end:
            return True
    return pos >= end


def vma_split_at(p: RefProcess, addr: int) -> None:
    """Split the region containing ``addr`` (if any, and not at its start) at ``addr``."""
    v = vma_find(p, addr)
    if v is not None:
        vma_split(p, v, addr)


def vma_split(p: RefProcess, v: Vma, addr: int) -> Vma:
    """Split region ``v`` at ``addr`` if ``addr`` lies strictly inside it; return the
    part from ``addr`` on (``v`` itself when there was nothing to split)."""
    if not v.start < addr < v.end:
        return v
    hi = copy.copy(v)
    hi.start = addr
    v.end = addr
    if v.shared or v.file is not None:
        hi.pgoff = v.pgoff + (addr - v.start) // p.machine.page_size
        vma_get_obj(v)
    p._vmas.insert(p._vmas.index(v) + 1, hi)
    if v.huge:
        thp_split_at(p, addr)      # vma_adjust_trans_huge
    return hi


def vmas_in(p: RefProcess, start: int, end: int) -> List[Vma]:
    """Split at the boundaries, then the regions inside [start, end)."""
    vma_split_at(p, start)
    vma_split_at(p, end)
    return [v for v in p._vmas if start <= v.start and v.end <= end]


def vma_get_obj(v: Vma) -> None:
    """One more region refers to v's shmem object or file."""
    if v.file is not None:
        v.file.nregions += 1
    elif v.shared:
        v.shm.nregions += 1


def vma_put_obj(m: RefMachine, v: Vma) -> None:
    """Region v is gone: its shmem object or file loses it (remove_vma's fput)."""
    if v.file is not None:
        file_put(m, v.file)
    elif v.shared:
        shobj_put(m, v.shm)


def shobj_put(m: RefMachine, obj: ShmemObject) -> None:
    """A region referring to ``obj`` is gone; at the last one the pages go too."""
    obj.nregions -= 1
    if obj.nregions == 0:
        for off in sorted(obj.pages):
            m._put(obj.pages[off])
        obj.pages.clear()
        m._objects.remove(obj)


def do_mmap(p: RefProcess, length: int, prot: str = "rw", shared: bool = False, addr: Optional[int] = None,
            huge: bool = False, file: Optional[RefFile] = None, offset: int = 0) -> int:
    p.machine._check_open()
    length = int_arg(length, "length", 1)
    offset = parse_size(offset, "offset") if isinstance(offset, str) else int_arg(offset, "offset")
    if file is not None:
        if not isinstance(file, RefFile):
            raise TypeError(f"file must be a RefFile, not {type(file).__name__}")
        if file.machine is not p.machine:
            raise InvalidArgument("the file belongs to another machine")
        if offset % p.machine.page_size:
            raise InvalidArgument(f"offset {offset:#x} is not page aligned")
    elif offset:
        raise InvalidArgument("offset is for file mappings only")
    if huge and file is not None:
        raise InvalidArgument("huge pages are for anonymous memory only")
    choice(prot, "prot", PROTS)
    if not isinstance(shared, (bool, np.bool_)) or not isinstance(huge, (bool, np.bool_)):
        raise TypeError("shared and huge must be bools")
    shared, huge = bool(shared), bool(huge)
    if huge and shared:
        raise InvalidArgument("huge pages are for private regions only")
    if huge and p.machine.page_size != 4096:
        raise InvalidArgument("huge pages need page_size 4096")
    if addr is not None:
        addr = int_arg(addr, "addr", 1)
        if addr % p.machine.page_size:
            raise InvalidArgument(f"address {addr:#x} is not page aligned")
    m = p._m
    ps = m.page_size
    length = -(-length // ps) * ps
    if length > m.user_end - m.user_start:
        raise InvalidArgument(f"length {length:#x} larger than user space")
    if addr is None:
        start = None
        if huge:                      # thp_get_unmapped_area: len + 2 MiB, aligned
            base = find_free_range(p, length + HPAGE_SIZE)
            if base is not None:
                start = base + (-base % HPAGE_SIZE or HPAGE_SIZE)
        if start is None:
            start = find_free_range(p, length)
        if start is None:
            raise OutOfMemory(f"no free range of {length} bytes")
    else:
        start = addr
        if start < m.user_start or start + length > m.user_end:
            raise InvalidArgument(f"range {start:#x}+{length:#x} outside user space")
        if any(v.start < start + length and start < v.end for v in p._vmas):
            raise InvalidArgument(f"range {start:#x}+{length:#x} overlaps a region")
    if file is not None and file.deleted:
        raise InvalidArgument(f"file {file.id}: no such file (deleted)")
    m._need(odf_prepare_need(p, [(start, start + length)], False))
    odf_prepare(p, start, start + length, False)
    v = Vma(start, start + length, prot, bool(shared), huge=huge)
    if file is not None:
        v.file, v.pgoff = file, offset // ps
        file.nregions += 1
    elif v.shared:
        v.obj = ShmemObject(nregions=1)
        m._objects.append(v.obj)
    p._vmas.append(v)
    p._vmas.sort(key=lambda r: r.start)
    return start


def find_free_range(p: RefProcess, length: int) -> Optional[int]:
    """The start of the highest free range of ``length`` bytes (top-down), or None."""
    m = p.machine
    top = m.user_end
    for v in reversed(p._vmas):
        if top - v.end >= length:
            return top - length
        top = v.start
    return top - length if top - m.user_start >= length else None


def do_munmap(p: RefProcess, addr: int, length: int) -> None:
    start, end = range_check(p, addr, length)
    m = p.machine
    if not any(v.start < end and start < v.end for v in p._vmas):
        return
    m._need(odf_prepare_need(p, [(start, end)], True))
    odf_prepare(p, start, end, True)
    gone = vmas_in(p, start, end)
    for v in gone:
        zap_range(p, v.start, v.end)
    p._vmas = [v for v in p._vmas if v not in gone]
    tables_free_unused(p)
    for v in gone:
        vma_put_obj(m, v)


def do_mprotect(p: RefProcess, addr: int, length: int, prot: str) -> None:
    choice(prot, "prot", PROTS)
    start, end = range_check(p, addr, length)
    m = p.machine
    if not range_fully_mapped(p, start, end):
        raise InvalidArgument("mprotect of a range that is not fully mapped")
    ps = m.page_size
    parts = [(max(v.start, start), min(v.end, end)) for v in p._vmas
             if v.start < end and start < v.end and v.prot != prot]
    m._need(odf_prepare_need(p, parts, False))
    for lo, hi in parts:
        odf_prepare(p, lo, hi, False)
    # mprotect_fixup: a region whose prot does not change is neither split nor touched.
    for v in vmas_changing(p, start, end, lambda v: v.prot != prot):
        v.prot = prot
        for _vp, pte in pte_walk_small(p, v.start // ps, v.end // ps):
            if prot != "rw":
                pte.writable = False
            elif v.shared:                # a shared file mapping: write-notify
                pte.writable = v.file is None or pte.dirty
            else:
                pte.writable = pte.frame != 0 and bool(m._flags[pte.frame] & EXCLUSIVE)
        for up, idx, _base in pmd_walk(p, v.start // ps, v.end // ps):
            h = up.huge.get(idx)      # change_huge_pmd (wholly inside v)
            if h is None:
                continue
            if prot != "rw":
                h.writable = False
            elif h.block and m._flags[h.block] & EXCLUSIVE:   # can_change_pmd_writable
                h.writable = True


def vmas_changing(p: RefProcess, start: int, end: int, changes: Callable[[Vma], bool]) -> List[Vma]:
    """The regions overlapping [start, end) for which ``changes(v)`` holds, each split
    at the range boundaries (regions left unchanged are not split)."""
    for v in [v for v in p._vmas if v.start < end and start < v.end and changes(v)]:
        vma_split(p, vma_split(p, v, start), end)
    return [v for v in p._vmas if start <= v.start and v.end <= end and changes(v)]


def do_madvise(p: RefProcess, addr: int, length: int, advice: str) -> None:
    choice(advice, "advice", ADVICES)
    start, end = range_check(p, addr, length)
    if not range_fully_mapped(p, start, end):
        raise InvalidArgument("madvise of a range that is not fully mapped")
    if advice == "dontneed":               # zaps entries; regions and (unshared) tables stay
        p.machine._need(odf_prepare_need(p, [(start, end)], True))
        odf_prepare(p, start, end, True)
        zap_range(p, start, end)
        return
    if advice == "wipeonfork" and any(   # EINVAL: anonymous private memory only (vm_file, VM_SHARED)
            (v.shared or v.file is not None) and v.start < end and start < v.end for v in p._vmas):
        raise InvalidArgument("madvise wipeonfork of a shared or file region")
    attr, value = {"dontfork": ("dontfork", True), "dofork": ("dontfork", False),
                   "wipeonfork": ("wipeonfork", True),
                   "keeponfork": ("wipeonfork", False),
                   "random": ("random", True), "normal": ("random", False)}[advice]
    # madvise_update_vma: a region whose flags do not change is not split.
    for v in vmas_changing(p, start, end, lambda v: getattr(v, attr) != value):
        setattr(v, attr, value)


def zap_range(p: RefProcess, start: int, end: int) -> None:
    """Unmap the entries of [start, end) in address order.  A huge entry wholly inside
    goes whole (zap_huge_pmd); one partly inside is split first."""
    m = p.machine
    ps = m.page_size
    lo, hi = start // ps, end // ps
    for up, idx, base in pmd_walk(p, lo, hi):
        if idx in up.huge:
            if lo <= base and base + HPAGE_NR <= hi:
                thp_zap(p, up, idx)
                continue
            thp_split(p, up, idx)
        leaf = up.children[idx]
        for i in sorted(leaf.ptes):
            if lo <= base + i < hi:
                zap_pte(p, leaf, i)


def zap_pte(p: RefProcess, leaf: Table, i: int) -> None:
    m = p.machine
    pte = leaf.ptes.pop(i)
    f = pte.frame
    if f == 0:
        return
    m._map[f] -= 1
    if m._flags[f] & SHMEM and pte.dirty:
        m._flags[f] |= DIRTY
    if m._flags[f] & FILE and pte.dirty:          # a dirty entry dirties the folio
        v = vma_find(p, (leaf.base + i) * m.page_size)
        assert v is not None and v.file is not None
        v.file.mark_dirty(v.pgoff + leaf.base + i - v.start // m.page_size)
    m._put(f)


