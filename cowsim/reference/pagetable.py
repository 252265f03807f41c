"""Multi-level page tables (csrc/pagetable.c): lookups, allocation, walks, freeing.

Tables are :class:`~cowsim.reference.internal.Table` objects: upper levels hold
``children`` (and, at level ``levels - 2``, THP ``huge`` entries beside them), the last
level holds ``ptes``.  Level 0 is the root here (the C core numbers its levels from the
bottom).  A fault allocates its missing tables top-down, then its data frame.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, List, Optional, Tuple

from .internal import HPAGE_NR, PAGETABLE, Mapping, Pte, Table

if TYPE_CHECKING:
    from .machine import RefProcess


def pt_index(p: RefProcess, vpage: int, level: int) -> int:
    m = p.machine
    return (vpage >> (m.bits * (m.levels - 1 - level))) & (m.entries_per_table - 1)


def table_span(p: RefProcess, level: int) -> int:
    """Pages covered by one table at ``level``."""
    m = p.machine
    span: int = m.entries_per_table ** (m.levels - level)
    return span


def leaf_lookup(p: RefProcess, vpage: int) -> Optional[Table]:
    t = p._top
    for level in range(p.machine.levels - 1):
        child = t.children.get(pt_index(p, vpage, level))
        if child is None:
            return None
        t = child
    return t


def pte_lookup(p: RefProcess, vpage: int) -> Optional[Pte]:
    t = leaf_lookup(p, vpage)
    return None if t is None else t.ptes.get(pt_index(p, vpage, p.machine.levels - 1))


def pte_missing_tables(p: RefProcess, vpage: int) -> int:
    t = p._top
    for level in range(p.machine.levels - 1):
        child = t.children.get(pt_index(p, vpage, level))
        if child is None:
            return p.machine.levels - 1 - level
        t = child
    return 0


def table_new(p: RefProcess, parent: Table, idx: int) -> Table:
    span = table_span(p, parent.level + 1)
    t = Table(p.machine._alloc(PAGETABLE), parent.level + 1, parent.base + idx * span)
    parent.children[idx] = t
    return t


def pte_alloc(p: RefProcess, vpage: int) -> Table:
    """The last-level table for ``vpage``, allocating missing levels top-down."""
    t = p._top
    for level in range(p.machine.levels - 1):
        idx = pt_index(p, vpage, level)
        t = t.children.get(idx) or table_new(p, t, idx)
    return t


def pmd_lookup(p: RefProcess, vpage: int) -> Optional[Table]:
    """The table holding the entry that points at ``vpage``'s last-level table."""
    t = p._top
    for level in range(p.machine.levels - 2):
        child = t.children.get(pt_index(p, vpage, level))
        if child is None:
            return None
        t = child
    return t


def pmd_alloc(p: RefProcess, vpage: int) -> Table:
    """The level ``levels - 2`` table over ``vpage``, allocating missing levels top-down."""
    t = p._top
    for level in range(p.machine.levels - 2):
        idx = pt_index(p, vpage, level)
        t = t.children.get(idx) or table_new(p, t, idx)
    return t


def pmd_walk(p: RefProcess, start_vp: int = 0, end_vp: Optional[int] = None) -> List[Tuple[Table, int, int]]:
    """(table, index, first vpage) of every present level-1 entry -- a last-level
    table or a huge entry -- whose span overlaps [start_vp, end_vp), in address order.
    ``table`` is the level ``levels - 2`` table holding the entry."""
    out: List[Tuple[Table, int, int]] = []
    if p._root is not None:
        _pmd_walk_rec(p, p._root, start_vp, 1 << 64 if end_vp is None else end_vp, out)
    return out


def _pmd_walk_rec(p: RefProcess, t: Table, start_vp: int, end_vp: int,
                  out: List[Tuple[Table, int, int]]) -> None:
    # A module function, not a recursive closure: a closure would be a reference cycle
    # through p, and process records must be freed by reference counting.
    m = p.machine
    if t.level == m.levels - 2:
        n = m.entries_per_table
        for idx in sorted(set(t.children) | set(t.huge)):
            base = t.base + idx * n
            if base < end_vp and start_vp < base + n:
                out.append((t, idx, base))
        return
    span = table_span(p, t.level + 1)
    for idx in sorted(t.children):
        lo = t.base + idx * span
        if lo < end_vp and start_vp < lo + span:
            _pmd_walk_rec(p, t.children[idx], start_vp, end_vp, out)


def pte_walk(p: RefProcess, start_vp: int = 0, end_vp: Optional[int] = None) -> List[Mapping]:
    """(vpage, frame, writable, dirty, huge) of every mapped page in [start_vp, end_vp),
    in address order, as the hardware sees it: a huge entry as its 512 pages (frame
    block + i, or 0 for the huge zero page), an odf write-protected table's pages
    read-only."""
    if end_vp is None:
        end_vp = 1 << 64
    out: List[Mapping] = []
    for up, idx, base in pmd_walk(p, start_vp, end_vp):
        h = up.huge.get(idx)
        if h is not None:
            for k in range(HPAGE_NR):
                if start_vp <= base + k < end_vp:
                    out.append((base + k, h.block + k, h.writable, h.dirty, True) if h.block
                               else (base + k, 0, False, False, True))
            continue
        leaf, wp = up.children[idx], idx in up.wp
        for i in sorted(leaf.ptes):
            if start_vp <= base + i < end_vp:
                pte = leaf.ptes[i]
                out.append((base + i, pte.frame, pte.writable and not wp, pte.dirty, False))
    return out


def pte_walk_small(p: RefProcess, start_vp: int = 0, end_vp: Optional[int] = None) -> List[Tuple[int, Pte]]:
    """(vpage, pte) of present entries in [start_vp, end_vp), in address order (the
    entries of last-level tables; huge entries are not in them: see ``pte_walk``)."""
    if end_vp is None:
        end_vp = 1 << 64
    out: List[Tuple[int, Pte]] = []
    for up, idx, base in pmd_walk(p, start_vp, end_vp):
        leaf = up.children.get(idx)
        if leaf is None:                  # a huge entry
            continue
        for i in sorted(leaf.ptes):
            if start_vp <= base + i < end_vp:
                out.append((base + i, leaf.ptes[i]))
    return out


def tables_all(p: RefProcess, t: Optional[Table] = None) -> Iterator[Table]:
    """All tables, depth-first, children (in address order) before their parent (none
    while a vfork child holds the space, or after exit)."""
    if t is None and p._root is None:
        return
    t = p._top if t is None else t
    for idx in sorted(t.children):
        yield from tables_all(p, t.children[idx])
    yield t


def tables_free_unused(p: RefProcess, t: Optional[Table] = None) -> None:
    """Free every non-root table whose span overlaps no region (bottom-up)."""
    t = p._top if t is None else t
    ps = p.machine.page_size
    for idx in sorted(t.children):
        child = t.children[idx]
        tables_free_unused(p, child)
        lo = child.base * ps
        hi = (child.base + table_span(p, child.level)) * ps
        if not any(v.start < hi and lo < v.end for v in p._vmas):
            assert not child.children and not child.ptes and not child.huge
            del t.children[idx]
            t.wp.discard(idx)
            p.machine._free(child.frame)


