"""On-demand fork (csrc/odf.c): last-level tables shared between processes.

``fork("odf")`` shares last-level tables: the child's upper-level entry points at the
parent's table object, whose frame's reference count counts its holders, and both
entries are write-protected (``Table.wp``).  Data pages under a shared table are counted
once per table.  Before a process changes a write-protected table (a write fault in its
span; munmap, mprotect, madvise(dontneed) or mmap there) it takes the table over if it
is the only holder (a reuse), else copies it entry by entry as a cow fork would have (a
copy); a munmap or dontneed that empties the span just drops the reference, and so does
exit.  Reads fill a shared table in place.  Spans are unshared in address order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Set, Tuple

from .internal import EXCLUSIVE, PAGETABLE, Pte, Table
from .pagetable import pmd_lookup, pt_index, tables_all
from .thp import wp_can_reuse

if TYPE_CHECKING:
    from .machine import RefMachine, RefProcess

# One step of an odf_plan: (upper table, index, span start, action, table shared).
PlanStep = Tuple[Table, int, int, str, bool]


def pmd_write_protected(p: RefProcess, vpage: int) -> bool:
    up = pmd_lookup(p, vpage)
    return up is not None and pt_index(p, vpage, p.machine.levels - 2) in up.wp


def span_shareable(p: RefProcess, base: int) -> bool:
    """odf fork: a span's table is shared when every region over it is one whose
    entries a cow fork copies."""
    ps = p.machine.page_size
    lo, hi = base * ps, (base + p.machine.entries_per_table) * ps
    return all(not (v.dontfork or v.wipeonfork or v.shared) and v.anon_vma
               for v in p._vmas if v.start < hi and lo < v.end)


def odf_write_need(p: RefProcess, leaf: Table, idx: int) -> int:
    """Frames a write fault to entry ``idx`` under a write-protected table needs."""
    m = p.machine
    if m._ref[leaf.frame] > 1:
        return 2                      # the table's copy, then the page's
    pte = leaf.ptes.get(idx)
    if pte is None:
        return 1
    f = pte.frame
    return 0 if pte.writable or (f and wp_can_reuse(p, leaf, idx, f)) else 1


def odf_unshare(p: RefProcess, up: Table, idx: int) -> Table:
    """Make the write-protected table ``up.children[idx]`` this process's own."""
    m = p.machine
    leaf = up.children[idx]
    up.wp.discard(idx)
    if m._ref[leaf.frame] == 1:
        p._count("table_reuses")
        return leaf
    new = Table(m._alloc(PAGETABLE), leaf.level, leaf.base)
    for i in sorted(leaf.ptes):
        pte = leaf.ptes[i]
        if pte.frame:                 # K2 for this one table
            m._ref[pte.frame] += 1
            m._map[pte.frame] += 1
            m._flags[pte.frame] &= ~EXCLUSIVE
            pte.writable = False
        new.ptes[i] = Pte(pte.frame, pte.writable, pte.dirty)
    m._ref[leaf.frame] -= 1
    up.children[idx] = new
    p._count("table_copies")
    return new


def wp_spans(p: RefProcess, start: int, end: int) -> List[Tuple[Table, int, int, int]]:
    """(upper table, index, span start, span end) of the write-protected entries whose
    span overlaps [start, end), in address order."""
    m = p.machine
    ps, n = m.page_size, m.entries_per_table
    out: List[Tuple[Table, int, int, int]] = []
    for t in tables_all(p):
        if t.level == m.levels - 2:
            for idx in sorted(t.wp):
                lo, hi = (t.base + idx * n) * ps, (t.base + idx * n + n) * ps
                if lo < end and start < hi:
                    out.append((t, idx, lo, hi))
    return out


def odf_plan(p: RefProcess, start: int, end: int, zap: bool) -> List[PlanStep]:
    """What a change of [start, end) does to each write-protected span: "skip" (a zap
    of a part with no region), "drop" (a zap that empties the span: the reference
    goes) or "own" (reuse or copy)."""
    m = p.machine

    def mapped(a: int, b: int) -> bool:
        return a < b and any(v.start < b and a < v.end for v in p._vmas)

    plan: List[PlanStep] = []
    for up, idx, lo, hi in wp_spans(p, start, end):
        if zap and not mapped(max(lo, start), min(hi, end)):
            continue
        empties = not mapped(lo, min(start, hi)) and not mapped(max(end, lo), hi)
        shared = m._ref[up.children[idx].frame] > 1
        plan.append((up, idx, lo, "drop" if zap and shared and empties else "own", shared))
    return plan


def odf_prepare_need(p: RefProcess, ranges: Iterable[Tuple[int, int]], zap: bool) -> int:
    """The frames ``odf_prepare`` of each of ``ranges`` takes: one per span copied."""
    spans: Set[int] = set()
    for start, end in ranges:
        for _up, _idx, lo, action, shared in odf_plan(p, start, end, zap):
            if action == "own" and shared:
                spans.add(lo)
    return len(spans)


def odf_prepare(p: RefProcess, start: int, end: int, zap: bool) -> None:
    """Before a change of [start, end): each write-protected span there is dropped or
    made this process's own (``odf_plan``)."""
    for up, idx, _lo, action, _shared in odf_plan(p, start, end, zap):
        if action == "drop":
            p.machine._ref[up.children[idx].frame] -= 1
            del up.children[idx]
            up.wp.discard(idx)
        else:
            odf_unshare(p, up, idx)


def odf_detach_all(p: RefProcess) -> None:
    """exit_mmap's first step here: drop the shared tables others still hold."""
    m = p.machine
    for up, idx, _lo, _hi in wp_spans(p, 0, m.user_end):
        if m._ref[up.children[idx].frame] > 1:   # odf: others still hold it
            m._ref[up.children[idx].frame] -= 1
            del up.children[idx]
            up.wp.discard(idx)


def odf_logical_mapcounts(m: RefMachine) -> List[int]:
    """Per frame, the (process, entry) pairs mapping it: a table held by k processes
    maps its pages k times, though the frame's mapcount counts it once."""
    lmap = list(m._map)
    seen: Set[int] = set()
    for p in m._procs.values():
        if not p.alive:
            continue
        for t in tables_all(p):
            k = m._ref[t.frame]
            if t.level == m.levels - 1 and k > 1 and id(t) not in seen:
                seen.add(id(t))
                for pte in t.ptes.values():
                    if pte.frame:
                        lmap[pte.frame] += k - 1
    return lmap


