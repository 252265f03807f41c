"""Statistics and inspection (csrc/stats.c): counters, smaps, regions, translations,
the page table and the frame table."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

import cowsim
from cowsim import InvalidArgument, MachineStats, ProcessExited, ProcessStats, Region, Translation

from .internal import (
    ANON,
        DIRTY,
    FAULT_KINDS,
    FILE,
    FRAME_DTYPE,
    PAGE_TABLE_DTYPE,
    PAGETABLE,
    PSS_SHIFT,
    SHMEM,
    SMAPS_FIELDS,
    STATUS_FIELDS,
    int_arg,
    make_stats,
)
from .odf import odf_logical_mapcounts
from .pagetable import pte_walk, tables_all
from .regions import vma_find

if TYPE_CHECKING:
    from .machine import RefMachine, RefProcess

MemStatus: Any = getattr(cowsim, "MemStatus", None)   # the door's, once it has it


def machine_stats(m: RefMachine) -> MachineStats:
    m._check_open()
    npt = sum(1 for f in range(1, m.nframes) if m._used[f] and m._flags[f] & PAGETABLE)
    cache = [fr for f in m._files.values() for fr in f.pc.values()]
    return make_stats(MachineStats, "MachineStats", dict(  # type: ignore[no-any-return]
        frames_total=m.nframes - 1,
        frames_used=m._nused,
        frames_free=m._nfree(),
        page_table_frames=npt,
        data_frames=m._nused - npt,
        frames_peak=m._peak,
        frames_allocated=m._allocated,
        frames_freed=m._freed,
        pages_copied=m._pages_copied,
        shared_objects=len(m._objects),
        processes=len(m.processes),
        forks=m._forks,
        minflt=m._minflt,
        segfaults=m._segfaults,
        table_copies=sum(p._c["table_copies"] for p in m._procs.values()) + m._exited_c["table_copies"],
        thp_faults=sum(p._c["thp_faults"] for p in m._procs.values()) + m._exited_c["thp_faults"],
        thp_splits=sum(p._c["thp_splits"] for p in m._procs.values()) + m._exited_c["thp_splits"],
        table_reuses=sum(p._c["table_reuses"] for p in m._procs.values()) + m._exited_c["table_reuses"],
        page_tables_shared=sum(1 for f in range(1, m.nframes)
                               if m._used[f] and m._flags[f] & PAGETABLE
                               and m._ref[f] > 1),
        process_records=len(m._procs) + len(m._exited),
        pid_map_slots=m._pid_slots,
        majflt=m._majflt,
        sigbus=m._sigbus,
        page_cache_hits=m._page_cache_hits,
        page_cache_frames=len(cache),
        page_cache_dirty=sum(1 for fr in cache if m._flags[fr] & DIRTY),
        files=sum(1 for f in m._files.values() if not f.deleted),
        pages_read=m._pages_read,
        pages_written=m._pages_written,
    ))


def machine_frames(m: RefMachine) -> np.ndarray:
    m._check_open()
    rows = [(f, m._ref[f], m._map[f], m._flags[f])
            for f in range(1, m.nframes) if m._used[f]]
    return np.array(rows, dtype=FRAME_DTYPE)


def proc_regions(p: RefProcess) -> List[Region]:
    p._m
    return [v.public() for v in p._vmas]


def proc_stats(p: RefProcess) -> ProcessStats:
    """Counters; an exited process keeps its final counters (and holds no table)."""
    p.machine._check_open()
    c = p._c
    minflt = sum(c[k] for k in FAULT_KINDS) - c["majflt"]
    tables = list(tables_all(p)) if p.alive else []
    deposits = sum(len(t.huge) for t in tables)
    last = p.machine.levels - 1
    shared = sum(1 for t in tables if t.level == last and p.machine._ref[t.frame] > 1)
    return make_stats(ProcessStats, "ProcessStats", dict(  # type: ignore[no-any-return]
        minflt=minflt, page_table_frames=len(tables) + deposits, tlb_hits=0, tlb_misses=0,
        tlb_flushes=0, page_tables_shared=shared, **c))


def smaps(p: RefProcess, addr: Optional[int] = None) -> Dict[str, int]:
    p.machine._check_open()
    if addr is not None:
        addr = int_arg(addr, "addr")
    m = p._m
    if addr is None:
        vmas = p._vmas
    else:
        v = vma_find(p, addr)
        if v is None:
            raise InvalidArgument(f"no region contains {addr:#x}")
        vmas = [v]
    ps = m.page_size
    acc = dict.fromkeys(SMAPS_FIELDS, 0)
    lmap = odf_logical_mapcounts(m)
    for v in vmas:
        for _vp, f, _writable, pte_dirty, huge in pte_walk(p, v.start // ps, v.end // ps):
            if f == 0:
                continue
            mc = lmap[f]
            pss = (ps << PSS_SHIFT) // mc if mc >= 2 else ps << PSS_SHIFT
            dirty = pte_dirty or bool(m._flags[f] & DIRTY)
            if huge:                  # smaps_pmd_entry: a subpage at a time
                acc["AnonHugePages"] += ps
            acc["Rss"] += ps
            acc["Pss"] += pss
            kind = "Shared" if mc >= 2 else "Private"
            acc[f"{kind}_{'Dirty' if dirty else 'Clean'}"] += ps
            if m._flags[f] & ANON:
                acc["Anonymous"] += ps
                acc["Pss_Anon"] += pss
            elif m._flags[f] & SHMEM:
                acc["Pss_Shmem"] += pss
            elif m._flags[f] & FILE:
                acc["Pss_File"] += pss
            if dirty:
                acc["Pss_Dirty"] += pss
    return {k: (val >> PSS_SHIFT >> 10 if k.startswith("Pss") else val >> 10)
            for k, val in acc.items()}


def translate(p: RefProcess, addr: int) -> Optional[Translation]:
    p.machine._check_open()
    addr = int_arg(addr, "addr")
    m = p._m
    if addr >= m.user_end:
        return None
    vp = addr // m.page_size
    rows = pte_walk(p, vp, vp + 1)
    if not rows:
        return None
    _vp, frame, writable, dirty, _huge = rows[0]
    return Translation(frame, writable, dirty)


def page_table(p: RefProcess) -> np.ndarray:
    p._m
    rows = [row[:4] for row in pte_walk(p)]
    return np.array(rows, dtype=PAGE_TABLE_DTYPE)




def proc_status(p: RefProcess) -> Dict[str, int]:
    """/proc/PID/status's memory lines in kB: the mm's RSS counters (a page per entry
    of this process, odf-shared tables included) and its table pages but the root."""
    m = p.machine
    m._check_open()
    if not p.alive:
        raise ProcessExited(f"process {p.pid} has exited")
    acc = dict.fromkeys(STATUS_FIELDS, 0)
    for _vp, f, _w, _d, _huge in pte_walk(p) if p._root is not None else []:
        if f == 0:
            continue
        key = "RssAnon" if m._flags[f] & ANON else "RssShmem" if m._flags[f] & SHMEM else "RssFile"
        acc[key] += m.page_size
    acc["VmRSS"] = acc["RssAnon"] + acc["RssFile"] + acc["RssShmem"]
    tables = list(tables_all(p))
    acc["VmPTE"] = max(0, len(tables) - 1 + sum(len(t.huge) for t in tables)) * m.page_size
    values = {k: v >> 10 for k, v in acc.items()}
    if MemStatus is None:
        return values
    return MemStatus(**values)  # type: ignore[no-any-return]
