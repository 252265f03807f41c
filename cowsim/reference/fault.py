"""The page-fault handler (csrc/fault.c, docs/SEMANTICS.md F1-F6) and byte accesses.

Every access passes F1 (the permission check, on regions only) and is then one hit or
one minor fault of exactly one kind.  A multi-page read or write checks every page
before it touches any, then is a loop over pages.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple, Union

from cowsim import InvalidArgument, SegmentationFault

from .filemap import bus_error, filemap_fault, shared_file_wp
from .internal import ANON, DIRTY, EXCLUSIVE, SHMEM, Outcome, Pte, Vma, int_arg
from .odf import odf_unshare, odf_write_need, pmd_write_protected
from .pagetable import leaf_lookup, pmd_lookup, pt_index, pte_alloc, pte_lookup, pte_missing_tables
from .regions import vma_find
from .thp import thp_fault_huge, thp_fault_none, thp_span_ok, wp_can_reuse

if TYPE_CHECKING:
    from .machine import RefProcess


def check_access(p: RefProcess, addr: int, write: bool) -> Vma:
    """F1: the region of ``addr`` if the access is allowed, else a counted segfault."""
    v = vma_find(p, addr)
    reason = ""
    if v is None:
        reason = "unmapped"
    elif v.prot == "none" or (write and v.prot != "rw"):
        reason = "protection"
    if v is None or reason:
        p._count("segfaults")
        p._count("accesses")
        p.machine._segfaults += 1
        access = "write" if write else "read"
        raise SegmentationFault(f"{access} at {addr:#x}: {reason}", addr, access, reason)
    return v


def access_one(p: RefProcess, addr: int, write: bool) -> Tuple[Outcome, int]:
    """One access that passed F1; counted once it happened (not when out of frames)."""
    result = access_page(p, addr, write)
    p._count("accesses")
    return result


def access_page(p: RefProcess, addr: int, write: bool) -> Tuple[Outcome, int]:
    """One access to the page of ``addr`` (permission already checked): (outcome, frame)."""
    m = p.machine
    ps = m.page_size
    v = vma_find(p, addr)
    assert v is not None, "access without permission check"
    vp = addr // ps
    last = pt_index(p, vp, m.levels - 1)
    if not v.shared:                                        # transparent huge pages
        up, idx = pmd_lookup(p, vp), pt_index(p, vp, m.levels - 2)
        result = None
        if up is not None and idx in up.huge:
            result = thp_fault_huge(p, v, up, idx, vp, write)   # None: split, 4 KiB goes on
        elif (up is None or idx not in up.children) and thp_span_ok(p, v, vp):
            result = thp_fault_none(p, v, vp, write)
        if result is not None:
            return result
    took_table = write and pmd_write_protected(p, vp)
    if took_table and v.file is not None and pte_lookup(p, vp) is None:
        up = pmd_lookup(p, vp)              # odf: own the table, then the file fault
        assert up is not None
        idx = pt_index(p, vp, m.levels - 2)
        pre_need = 1 if m._ref[up.children[idx].frame] > 1 else 0
        return filemap_fault(p, v, vp, write, pre_need, lambda: odf_unshare(p, up, idx))
    if took_table:                                          # odf: own the table first
        up = pmd_lookup(p, vp)
        assert up is not None
        idx = pt_index(p, vp, m.levels - 2)
        m._need(odf_write_need(p, up.children[idx], last))
        odf_unshare(p, up, idx)
    pte = pte_lookup(p, vp)
    if v.file is not None:
        if pte is None:
            return filemap_fault(p, v, vp, write)
        if v.shared and write and not pte.writable:
            return shared_file_wp(p, v, vp, pte)
    if v.shared:
        return fault_shared(p, v, vp, pte, write)
    if pte is None:
        if not write:                                       # F2
            m._need(pte_missing_tables(p, vp))
            pte_alloc(p, vp).ptes[last] = Pte(0, False, False)
            p._count("faults_zero_page")
            return Outcome.ZERO_PAGE, 0
        m._need(pte_missing_tables(p, vp) + 1)               # F3
        table = pte_alloc(p, vp)                            # the tables, then the page
        f = m._alloc(ANON | EXCLUSIVE)
        m._map[f] = 1
        table.ptes[last] = Pte(f, True, True)
        v.anon_vma = True
        p._count("faults_zero_fill")
        return Outcome.ZERO_FILL, f
    if not write:
        return Outcome.HIT, pte.frame
    if pte.writable:
        pte.dirty = True
        if took_table:                # a fault that only took the table over
            p._count("faults_cow_reuse")
            return Outcome.COW_REUSE, pte.frame
        return Outcome.HIT, pte.frame
    old = pte.frame
    if old == 0:                                            # F4
        m._need(1)
        f = m._alloc(ANON | EXCLUSIVE)
        m._map[f] = 1
        pte.frame, pte.writable, pte.dirty = f, True, True
        v.anon_vma = True
        p._count("faults_zero_fill")
        return Outcome.ZERO_FILL, f
    leaf = leaf_lookup(p, vp)
    assert leaf is not None
    if wp_can_reuse(p, leaf, last, old):                    # F5 reuse
        m._flags[old] |= EXCLUSIVE
        pte.writable = pte.dirty = True
        v.anon_vma = True
        p._count("faults_cow_reuse")
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
    p._count("faults_cow_copy")
    p._count("pages_copied")
    m._pages_copied += 1
    return Outcome.COW_COPY, f


def fault_shared(p: RefProcess, v: Vma, vp: int, pte: Optional[Pte], write: bool) -> Tuple[Outcome, int]:
    """F6 (plus fault-around on read faults)."""
    m = p.machine
    writable = v.prot == "rw"
    if pte is not None:
        if not write:
            return Outcome.HIT, pte.frame
        if pte.writable:
            pte.dirty = True
            return Outcome.HIT, pte.frame
        pte.writable = pte.dirty = True
        m._flags[pte.frame] |= DIRTY
        p._count("faults_shared")
        return Outcome.SHARED, pte.frame
    vstart = v.start // m.page_size
    off = v.pgoff + vp - vstart
    have = off in v.shm.pages
    m._need(pte_missing_tables(p, vp) + (0 if have else 1))
    leaf = pte_alloc(p, vp)
    if not have:
        v.shm.pages[off] = m._alloc(SHMEM)
    f = v.shm.pages[off]
    m._ref[f] += 1
    m._map[f] += 1
    i = pt_index(p, vp, m.levels - 1)
    leaf.ptes[i] = Pte(f, writable, write)
    if write:
        m._flags[f] |= DIRTY
    p._count("faults_shared")
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
                leaf.ptes[j] = Pte(g, writable, False)
    return Outcome.SHARED, f


def touch(p: RefProcess, addr: int, write: bool = False) -> Outcome:
    p.machine._check_open()
    addr = int_arg(addr, "addr")
    write = bool(write)
    p._m
    check_access(p, addr, write)
    outcome = access_one(p, addr, write)[0]
    if outcome == Outcome.SIGBUS:
        raise bus_error(addr, write)
    return outcome


def page_pieces(p: RefProcess, addr: int, n: int) -> List[Tuple[int, int, int]]:
    """(address, offset in page, byte count) of each page of [addr, addr + n)."""
    ps = p.machine.page_size
    out, pos, end = [], addr, addr + n
    while pos < end:
        take = min(end, (pos // ps + 1) * ps) - pos
        out.append((pos, pos % ps, take))
        pos += take
    return out


def read_bytes(p: RefProcess, addr: int, n: int) -> bytes:
    m = p.machine
    m._check_open()
    addr = int_arg(addr, "addr")
    n = int_arg(n, "n")
    if addr + n > 1 << 64:
        raise InvalidArgument("range overflows the address space")
    if not m.store_data:
        raise InvalidArgument("read needs a machine with store_data=True")
    p._m
    pages = page_pieces(p, addr, n)
    for a, _, _ in pages:
        check_access(p, a, False)
    out = bytearray()
    for a, off, take in pages:
        outcome, f = access_one(p, a, False)
        if outcome == Outcome.SIGBUS:
            raise bus_error(a, False)
        out += m._bytes(f)[off:off + take]
    return bytes(out)


def write_bytes(p: RefProcess, addr: int, data: Union[bytes, bytearray, memoryview]) -> None:
    m = p.machine
    m._check_open()
    addr = int_arg(addr, "addr")
    if isinstance(data, str):
        raise TypeError("data must be bytes-like, not str")
    try:
        data = memoryview(data).cast("B").tobytes()     # any bytes-like object (API.md)
    except TypeError:
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}") from None
    if addr + len(data) > 1 << 64:
        raise InvalidArgument("range overflows the address space")
    p._m
    pages = page_pieces(p, addr, len(data))
    for a, _, _ in pages:
        check_access(p, a, True)
    pos = 0
    for a, off, take in pages:
        outcome, f = access_one(p, a, True)
        if outcome == Outcome.SIGBUS:
            raise bus_error(a, True)
        if m.store_data:
            m._data[f][off:off + take] = data[pos:pos + take]
        pos += take


