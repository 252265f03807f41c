"""fork (cow, eager, odf and vfork), exec and exit (csrc/fork.c).

Fork first counts every frame it will take (K5) and fails before touching anything when
they are not free.  It then allocates the child's root, walks the parent's regions in
address order and their tables depth-first in address order, allocating each child
table when first reached and (eager mode) each page copy when its entry is reached.
K1-K3 of docs/SEMANTICS.md are marked where they apply; the odf sharing of last-level
tables is in odf.py, the copy of a huge entry in thp.py.

exit frees all tables (bottom-up, the root last) and then releases its shmem objects in
region order.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Set, Tuple

from .internal import ANON, EXCLUSIVE, FILE, FORK_MODES, HPAGE_NR, PAGETABLE, Pte, Table, Vma, choice
from .odf import odf_detach_all, span_shareable
from .pagetable import pmd_walk, pte_walk_small, table_new, table_span, tables_all
from .regions import vma_get_obj, vma_put_obj, zap_range
from .thp import thp_fork_copy

if TYPE_CHECKING:
    from .machine import RefProcess


def do_fork(p: RefProcess, mode: str = "cow") -> RefProcess:
    """A child process by strategy ``mode`` (cow, eager, odf or vfork)."""
    p.machine._check_open()
    choice(mode, "mode", FORK_MODES)
    m = p._m
    if mode == "vfork":
        return vfork(p)
    # K5: count every frame the fork will take before taking any.
    need_tables: Set[Tuple[int, int]] = set()
    deposits = copies = 0
    for v in p._vmas:
        if v.dontfork or v.wipeonfork or v.shared or not v.anon_vma:
            continue
        for t in tables_all(p):
            lo, hi = t.base * m.page_size, (t.base + table_span(p, t.level)) * m.page_size
            if t.level > 0 and v.start < hi and lo < v.end:
                if mode == "odf" and t.level == m.levels - 1 and span_shareable(p, t.base):
                    continue                # shared, not copied
                need_tables.add((t.level, t.base))
        lo_vp, hi_vp = v.start // m.page_size, v.end // m.page_size
        for up, idx, _base in pmd_walk(p, lo_vp, hi_vp):
            h = up.huge.get(idx)
            if h is not None:               # a deposited table (+ 512 eager copies)
                deposits += 1
                copies += HPAGE_NR if mode == "eager" and h.block else 0
        if mode == "eager":               # page-cache pages are shared, not copied
            copies += sum(1 for _, pte in pte_walk_small(p, lo_vp, hi_vp)
                          if pte.frame and not m._flags[pte.frame] & FILE)
    m._need(1 + len(need_tables) + deposits + copies)

    child = m._proc_new(p)
    child._root = Table(m._alloc(PAGETABLE), 0, 0)
    if mode == "odf":
        m._odf_used = True
    for v in p._vmas:
        if v.dontfork:                                      # K3
            continue
        cv = copy.copy(v)
        child._vmas.append(cv)
        vma_get_obj(v)                                      # its shmem object or file
        if v.wipeonfork:                                    # K3
            cv.anon_vma = False
        elif not v.shared and v.anon_vma:                   # K1/K2, FK1
            copy_tables(p, child, p._top, child._top, v, mode)
    m._procs[child.pid] = child
    m._records_changed()
    m._forks += 1
    return child


def copy_tables(p: RefProcess, child: RefProcess, pt: Table, ct: Table, v: Vma, mode: str) -> None:
    m = p.machine
    ps = m.page_size
    lo_vp, hi_vp = v.start // ps, v.end // ps
    if pt.level == m.levels - 1:
        for idx in sorted(pt.ptes):
            vp = pt.base + idx
            if not lo_vp <= vp < hi_vp:
                continue
            pte = pt.ptes[idx]
            f = pte.frame
            child._c["fork_ptes"] += 1
            if f == 0:
                ct.ptes[idx] = Pte(0, False, pte.dirty)
            elif mode != "eager" or m._flags[f] & FILE:   # cow, odf's unshared spans; FK1
                m._ref[f] += 1
                m._map[f] += 1
                m._flags[f] &= ~EXCLUSIVE
                pte.writable = False
                ct.ptes[idx] = Pte(f, False, pte.dirty)
            else:
                g = m._alloc(ANON | EXCLUSIVE)
                m._map[g] = 1
                if m.store_data:
                    m._data[g][:] = m._data[f]
                ct.ptes[idx] = Pte(g, v.prot == "rw", pte.dirty)
                child._c["pages_copied"] += 1
                m._pages_copied += 1
        return
    span = table_span(p, pt.level + 1)
    for idx in sorted(set(pt.children) | set(pt.huge)):
        base = pt.base + idx * span
        if base < hi_vp and lo_vp < base + span:
            if idx in pt.huge:              # copy_huge_pmd (odf never shares it)
                thp_fork_copy(p, child, pt, ct, idx, v, mode)
                continue
            if mode == "odf" and pt.level == m.levels - 2 and span_shareable(p, base):
                if idx not in ct.children:  # once per span, however many regions
                    leaf = pt.children[idx]
                    m._ref[leaf.frame] += 1
                    ct.children[idx] = leaf
                    pt.wp.add(idx)
                    ct.wp.add(idx)
                continue
            sub = ct.children.get(idx)
            if sub is None:
                sub = table_new(child, ct, idx)
                if sub.level == m.levels - 1:
                    child._c["fork_tables"] += 1
            copy_tables(p, child, pt.children[idx], sub, v, mode)


def vfork(p: RefProcess) -> RefProcess:
    """vfork: the child takes this address space as it is (no frame, nothing
    write-protected); this process is suspended until the child execs or exits."""
    m = p.machine
    child = m._proc_new(p)
    child._root, child._vmas = p._root, p._vmas
    p._root, p._vmas = None, []
    child._lender, p._borrower = p, child
    m._procs[child.pid] = child
    m._records_changed()
    m._forks += 1
    return child


def release_space(p: RefProcess) -> None:
    """exit_mmap: drop shared (odf) tables, zap every region in address order, free
    every table (bottom-up, root last), then release the shmem objects."""
    m = p.machine
    odf_detach_all(p)
    for v in p._vmas:
        zap_range(p, v.start, v.end)
    for t in list(tables_all(p)):
        m._free(t.frame)
    p._root = None
    gone, p._vmas = p._vmas, []
    for v in gone:
        vma_put_obj(m, v)


def do_exec(p: RefProcess) -> None:
    """A fresh, empty address space (its root table); a vfork child first gives the
    borrowed space back (then the root needs a free frame).  Counters are kept."""
    m = p._m
    if p._lender is not None:
        m._need(1)
        p._give_back()
    else:
        release_space(p)
    p._root = Table(m._alloc(PAGETABLE), 0, 0)


def do_exit(p: RefProcess) -> None:
    """The address space goes (a vfork child's back to its parent first); the record
    stays while an object of it exists."""
    m = p._m
    if p._lender is not None:
        p._give_back()
    release_space(p)
    p.alive = False
    m._exit_record(p)


