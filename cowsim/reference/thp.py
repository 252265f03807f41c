"""Transparent huge pages (csrc/thp.c): PMD-mapped 2 MiB anonymous pages.

A huge mapping (``mmap(huge=True)``, 4 KiB pages) is a :class:`~cowsim.reference.internal.Huge`
in the ``huge`` dict of a level ``levels - 2`` table, beside its ``children``; it holds
its deposited table's frame and maps a 512-frame block (0: the huge zero page), one
reference and one mapping per subpage.  Splitting turns the deposited table into the
span's last-level table with 512 entries.  Huge blocks come from the frame allocator
(``Frames._find_block`` / ``_alloc_block``).  A zap of a whole huge entry frees the
deposited table first, then the subpages in address order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

from cowsim import Outcome

from .internal import ANON, EXCLUSIVE, HPAGE_NR, HPAGE_SIZE, HUGE, PAGETABLE, Huge, Pte, Table, Vma
from .pagetable import pmd_alloc, pmd_lookup, pt_index, pte_missing_tables

if TYPE_CHECKING:
    from .machine import RefProcess


def thp_span_ok(p: RefProcess, v: Vma, vpage: int) -> bool:
    """A huge entry may map vpage's 2 MiB span: it lies wholly inside huge region v."""
    ps = p.machine.page_size
    s = vpage * ps - vpage * ps % HPAGE_SIZE
    return v.huge and v.start <= s and s + HPAGE_SIZE <= v.end


def thp_split(p: RefProcess, up: Table, idx: int) -> Table:
    """__split_huge_pmd_locked: the deposited table gets 512 entries with the huge
    entry's write and dirty bits (the huge zero page: zero-page entries, read-only,
    clean) and becomes the span's last-level table.  No frame, no count changes."""
    m = p.machine
    h = up.huge.pop(idx)
    leaf = Table(h.deposit, m.levels - 1, up.base + idx * m.entries_per_table)
    for k in range(HPAGE_NR):
        leaf.ptes[k] = Pte(h.block + k, h.writable, h.dirty) if h.block else Pte(0, False, False)
    up.children[idx] = leaf
    p._count("thp_splits")
    return leaf


def thp_split_at(p: RefProcess, addr: int) -> None:
    """vma_adjust_trans_huge: a region boundary at ``addr`` inside a huge mapping."""
    if addr % HPAGE_SIZE == 0:
        return
    vp = addr // p.machine.page_size
    up = pmd_lookup(p, vp)
    idx = pt_index(p, vp, p.machine.levels - 2)
    if up is not None and idx in up.huge:
        thp_split(p, up, idx)


def thp_zap(p: RefProcess, up: Table, idx: int) -> None:
    """zap_huge_pmd: the deposited table goes first, then one reference and mapping of
    each subpage (those reaching 0 freed in address order)."""
    m = p.machine
    h = up.huge.pop(idx)
    m._put(h.deposit)
    for f in range(h.block, h.block + HPAGE_NR) if h.block else ():
        m._map[f] -= 1
        m._put(f)


def folio_reusable(p: RefProcess, leaf: Table, idx: int, f: int) -> bool:
    """Large-folio reuse (__wp_can_reuse_large_anon_folio): every mapping of every live
    subpage of f's huge page is one of the writer's own entries.  The writer can map
    subpage k only at index k of the table over the page's span."""
    m = p.machine
    b = f - f % HPAGE_NR
    if idx != f - b:
        return False
    maps = sum(m._map[g] for g in range(b, b + HPAGE_NR) if m._used[g] and m._flags[g] & HUGE)
    own = sum(1 for k, pte in leaf.ptes.items() if pte.frame == b + k)
    return maps == own and maps > 1   # a last mapped subpage is copied: the folio goes


def wp_can_reuse(p: RefProcess, leaf: Table, idx: int, f: int) -> bool:
    """F5's reuse test: may a write to the read-only entry ``idx`` of ``leaf`` (frame f)
    reuse f?  Here beside the large-folio rule it ends in, because fault.py and odf.py
    both ask it (csrc/fault.c and csrc/odf.c each spell it out inline)."""
    m = p.machine
    if m._flags[f] & EXCLUSIVE:
        return True
    if m._flags[f] & HUGE:
        return folio_reusable(p, leaf, idx, f)
    return m._ref[f] == 1


def thp_fault_none(p: RefProcess, v: Vma, vp: int, write: bool) -> Optional[Tuple[Outcome, int]]:
    """do_huge_pmd_anonymous_page: a fault in an empty 2 MiB span of huge region v.
    Returns (outcome, frame), or None when a write falls back to 4 KiB (no free block,
    or the block and the deposited table do not both fit; the tables above the last
    level are then in place)."""
    m = p.machine
    m._need(pte_missing_tables(p, vp) + (1 if write else 0))
    up = pmd_alloc(p, vp)
    idx = pt_index(p, vp, m.levels - 2)
    b = 0
    if write:
        b = m._find_block()
        if not b or m._nfree() < HPAGE_NR + 1:
            return None
        m._alloc_block(b)
    up.huge[idx] = Huge(b, m._alloc(PAGETABLE), write, write)
    if not write:
        p._count("faults_zero_page")
        return Outcome.ZERO_PAGE, 0
    v.anon_vma = True
    p._count("thp_faults")
    p._count("faults_zero_fill")
    return Outcome.ZERO_FILL, b + vp % HPAGE_NR


def drop_huge_mapping(p: RefProcess, b: int) -> None:
    """One mapping of each subpage of huge page b goes (freed at 0, in address order)."""
    m = p.machine
    for f in range(b, b + HPAGE_NR):
        m._map[f] -= 1
        m._put(f)


def huge_unshared(p: RefProcess, b: int) -> bool:
    """do_huge_pmd_wp_page's reuse test: the head is exclusive, or no subpage has
    another reference or mapping."""
    m = p.machine
    return bool(m._flags[b] & EXCLUSIVE) or all(
        m._ref[f] == 1 and m._map[f] == 1 for f in range(b, b + HPAGE_NR))


def thp_fault_huge(p: RefProcess, v: Vma, up: Table, idx: int, vp: int,
                   write: bool) -> Optional[Tuple[Outcome, int]]:
    """An access under a huge entry (do_huge_pmd_wp_page for writes): (outcome,
    frame), or None after a split, for the 4 KiB write fault to go on (F4 on the huge
    zero page, F5 -- a copy -- otherwise)."""
    m = p.machine
    h = up.huge[idx]
    k = vp % HPAGE_NR
    if not write:
        return Outcome.HIT, (h.block + k if h.block else 0)
    if h.writable:
        h.dirty = True
        return Outcome.HIT, h.block + k
    if h.block:
        b = h.block
        if huge_unshared(p, b):                          # reuse the whole page
            for f in range(b, b + HPAGE_NR):
                m._flags[f] |= EXCLUSIVE
            h.writable = h.dirty = True
            p._count("faults_cow_reuse")
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
                drop_huge_mapping(p, b)
                p._count("pages_copied", HPAGE_NR)
                m._pages_copied += HPAGE_NR
            else:                                           # the huge zero page: goto alloc
                v.anon_vma = True
            h.block, h.writable, h.dirty = nb, True, True
            p._count("thp_faults")
            p._count("faults_cow_copy" if b else "faults_zero_fill")
            return (Outcome.COW_COPY if b else Outcome.ZERO_FILL), nb + k
        if b and m._nfree() >= HPAGE_NR:                    # do_huge_pmd_wp_page_fallback
            del up.huge[idx]
            leaf = Table(h.deposit, m.levels - 1, up.base + idx * m.entries_per_table)
            for j in range(HPAGE_NR):
                f = m._alloc(ANON | EXCLUSIVE)
                m._map[f] = 1
                if m.store_data:
                    m._data[f][:] = m._data[b + j]
                leaf.ptes[j] = Pte(f, True, True)
            up.children[idx] = leaf
            drop_huge_mapping(p, b)
            p._count("pages_copied", HPAGE_NR)
            m._pages_copied += HPAGE_NR
            p._count("faults_cow_copy")
            return Outcome.COW_COPY, leaf.ptes[k].frame
    m._need(1)                        # the 4 KiB fault after the split takes a frame
    thp_split(p, up, idx)
    return None


def thp_fork_copy(p: RefProcess, child: RefProcess, pt: Table, ct: Table, idx: int, v: Vma,
               mode: str) -> None:
    """copy_huge_pmd: the child gets the same entry and a deposited table of its own;
    an anonymous huge page is shared (each subpage +1 reference and mapping, no longer
    exclusive) and write-protected in both.  An eager fork instead copies the page as
    512 ordinary pages in a last-level table (the deposit's frame)."""
    m = p.machine
    h = pt.huge[idx]
    deposit = m._alloc(PAGETABLE)
    child._c["fork_tables"] += 1
    if mode == "eager" and h.block:
        leaf = Table(deposit, m.levels - 1, pt.base + idx * m.entries_per_table)
        for k in range(HPAGE_NR):
            g = m._alloc(ANON | EXCLUSIVE)
            m._map[g] = 1
            if m.store_data:
                m._data[g][:] = m._data[h.block + k]
            leaf.ptes[k] = Pte(g, v.prot == "rw", h.dirty)
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
    ct.huge[idx] = Huge(h.block, deposit, h.writable, h.dirty)
    child._c["fork_ptes"] += 1


