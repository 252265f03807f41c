"""The full invariant check (csrc/check.c) that tests run after every step.

Recomputes every reference count, map count and frame kind from the page tables and
shmem objects and compares them with the frame table, and checks the rules the fault
handler and fork must keep (no writable zero page, entries only inside regions, shared
tables write-protected in every holder, ...).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, NoReturn, Set

from cowsim import InvariantViolation

from .internal import ANON, DIRTY, EXCLUSIVE, FILE, HPAGE_NR, HPAGE_SIZE, HUGE, PAGETABLE, SHMEM, Huge, Table, Vma
from .pagetable import tables_all
from .regions import vma_find

if TYPE_CHECKING:
    from .machine import RefMachine, RefProcess


def fail(msg: str) -> NoReturn:
    raise InvariantViolation(msg)


def check(m: RefMachine) -> None:
    """Recompute every reference count from scratch and compare (InvariantViolation)."""
    m._check_open()
    ref = [0] * m.nframes
    mapc = [0] * m.nframes
    kind = [0] * m.nframes
    seen: Set[int] = set()            # last-level tables already counted (odf shares them)
    unprotected: Set[int] = set()     # table frames some holder reaches without wp
    for p in m._procs.values():
        if not p.alive:
            continue
        for t in tables_all(p):
            ref[t.frame] += 1
            kind[t.frame] |= PAGETABLE
            for idx in t.children:
                if idx not in t.wp:
                    unprotected.add(t.children[idx].frame)
            for idx, h in t.huge.items():
                check_huge(m, p, t, idx, h, ref, mapc, kind)
            if t.level != m.levels - 1:
                continue
            first = id(t) not in seen
            seen.add(id(t))
            for idx, pte in t.ptes.items():
                vp = t.base + idx
                v = vma_find(p, vp * m.page_size)
                if v is None:
                    fail(f"pid {p.pid}: entry for vpage {vp} outside every region")
                if pte.frame == 0:
                    if pte.writable:
                        fail(f"pid {p.pid}: writable zero page at vpage {vp}")
                    continue
                if v.file is not None:
                    check_file_pte(m, p, v, vp, pte.frame, pte.writable, pte.dirty)
                if first:
                    ref[pte.frame] += 1
                    mapc[pte.frame] += 1
                    if v.file is not None and m._flags[pte.frame] & FILE:
                        kind[pte.frame] |= FILE
                    else:
                        kind[pte.frame] |= SHMEM if v.shared else ANON
        for v in p._vmas:
            if (v.shared and v.file is None) != (v.obj is not None):
                fail("shared region without object")
            if v.file is not None and (v.file.machine is not m or v.file.id not in m._files or v.huge):
                fail(f"pid {p.pid}: region {v.start:#x} maps a freed file")
    for obj in m._objects:
        for f in obj.pages.values():
            ref[f] += 1
            kind[f] |= SHMEM
    if sum(o.nregions for o in m._objects) != sum(
            1 for p in m._procs.values() if p.alive for v in p._vmas if v.shared and v.file is None):
        fail("shmem object region counts")
    for rf in m._files.values():
        check_file(m, rf, ref, kind)
    for f in range(1, m.nframes):
        if kind[f] & PAGETABLE and ref[f] > 1 and f in unprotected:
            fail(f"table frame {f}: shared by {ref[f]} holders, not all write-protected")
    free = set(m._free_list)
    if len(free) != len(m._free_list) or 0 in free:
        fail("free list corrupt")
    for f in range(1, m.nframes):
        used = m._used[f]
        if used != (ref[f] > 0):
            fail(f"frame {f}: used={used} but {ref[f]} references")
        if used and (m._ref[f], m._map[f]) != (ref[f], mapc[f]):
            fail(f"frame {f}: counts {m._ref[f]}/{m._map[f]}, expected {ref[f]}/{mapc[f]}")
        if used and kind[f] & ~(m._flags[f]) or kind[f] not in (0, ANON, SHMEM, PAGETABLE, FILE):
            fail(f"frame {f}: flags {m._flags[f]} but used as {kind[f]}")
        if (not used) != (f in free or f >= m._next_never):
            fail(f"frame {f}: free list / never-used inconsistent")
    if m._nused != sum(m._used):
        fail("used count")


def check_huge(m: RefMachine, p: RefProcess, t: Table, idx: int, h: Huge, ref: List[int], mapc: List[int],
               kind: List[int]) -> None:
    """A huge entry: inside one huge private region, with a deposited table of its own
    and (unless the huge zero page) an aligned block of 512 live HUGE anonymous frames,
    one reference and one mapping of each."""
    base = t.base + idx * m.entries_per_table
    a = base * m.page_size
    v = vma_find(p, a)
    if (v is None or not v.huge or v.shared or v.end < a + HPAGE_SIZE or idx in t.children
            or t.level != m.levels - 2 or m.page_size != 4096):
        fail(f"pid {p.pid}: huge entry at {a:#x} outside a huge region")
    if h.writable and v.prot != "rw":
        fail(f"pid {p.pid}: writable huge entry at {a:#x} in a read-only region")
    ref[h.deposit] += 1
    kind[h.deposit] |= PAGETABLE
    if h.block == 0:
        if h.writable:
            fail(f"pid {p.pid}: writable huge zero page at {a:#x}")
        return
    if h.block % HPAGE_NR or not v.anon_vma:
        fail(f"pid {p.pid}: huge entry at {a:#x}: block {h.block} unaligned or no anon_vma")
    for f in range(h.block, h.block + HPAGE_NR):
        if not m._used[f] or m._flags[f] & (ANON | HUGE) != ANON | HUGE:
            fail(f"pid {p.pid}: huge entry at {a:#x} maps frame {f}, not a live huge subpage")
        if h.writable and not m._flags[f] & EXCLUSIVE:
            fail(f"pid {p.pid}: writable huge entry at {a:#x} to non-exclusive frame {f}")
        ref[f] += 1
        mapc[f] += 1
        kind[f] |= ANON




def check_file_pte(m: RefMachine, p: RefProcess, v: Vma, vp: int, fr: int, writable: bool, dirty: bool) -> None:
    """An entry of a file region: a cache frame of the right page (read-only in a private
    region; writable only with its folio dirty in a shared one), or a private region's
    anonymous copy."""
    f = v.file
    idx = v.pgoff + vp - v.start // m.page_size
    if m._flags[fr] & FILE:
        if f.pc.get(idx) != fr:
            fail(f"pid {p.pid}: vpage {vp} maps cache frame {fr}, not file {f.id}'s page {idx}")
        if writable and (not v.shared or f.head[idx] not in f.dirty):
            fail(f"pid {p.pid}: vpage {vp}: writable entry of a clean or private cache page")
        if dirty and not v.shared:
            fail(f"pid {p.pid}: vpage {vp}: dirty private entry of a cache page")
    elif v.shared:
        fail(f"pid {p.pid}: vpage {vp}: shared file mapping of a non-cache frame {fr}")
    if idx >= f.pages and not (m._flags[fr] & ANON):
        fail(f"pid {p.pid}: vpage {vp}: file page {idx} past the end mapped")


def check_file(m: RefMachine, f: Any, ref: List[int], kind: List[int]) -> None:
    """The cache: one reference per cached page, folios naturally aligned and whole,
    DIRTY on every frame of a dirty folio; a freed file is not kept."""
    if f.deleted and f.nregions == 0:
        fail(f"file {f.id}: deleted and unmapped but not freed")
    nreg = sum(1 for p in m._procs.values() if p.alive for v in p._vmas if v.file is f)
    if nreg != f.nregions:
        fail(f"file {f.id}: {f.nregions} regions counted, {nreg} found")
    covered = 0
    for h, order in f.order.items():
        n = 1 << order
        if h % n:
            fail(f"file {f.id}: folio at {h} of order {order} unaligned")
        for pg in range(h, h + n):
            fr = f.pc.get(pg)
            if fr is None or f.head.get(pg) != h:
                fail(f"file {f.id}: folio at {h} misses page {pg}")
            if bool(m._flags[fr] & DIRTY) != (h in f.dirty):
                fail(f"file {f.id}: page {pg}: frame dirty flag disagrees with its folio")
        covered += n
    if covered != len(f.pc) or len(f.head) != len(f.pc) or not f.dirty <= set(f.order):
        fail(f"file {f.id}: folio index inconsistent")
    if not f.marks <= set(f.pc):
        fail(f"file {f.id}: readahead mark on an uncached page")
    for fr in f.pc.values():
        ref[fr] += 1
        kind[fr] |= FILE
        if not m._flags[fr] & FILE or m._flags[fr] & (ANON | SHMEM | EXCLUSIVE):
            fail(f"file {f.id}: cache frame {fr} has flags {m._flags[fr]}")
