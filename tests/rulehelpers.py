"""Expected-value builders shared by the rule tests (importable via conftest).

All expected numbers in the tests are computed by hand from docs/SEMANTICS.md;
these helpers only spell them out as complete records, so that every field is
compared exactly (a field not named is expected to be 0 / False).
"""
from __future__ import annotations

import cowsim

PS = 4096                      # default page size
KB = PS // 1024                # kB per 4 KiB page (smaps unit)
TOP = 2**47                    # user_end for va_bits 48: the lower half
USER_START = 65536             # mmap_min_addr
LEVELS = 4                     # 4 KiB pages, 48-bit VA: ceil(36 / 9)
PATH_TABLES = LEVELS - 1       # tables below the root on one walk
PTE_SPAN = 512 * PS            # bytes mapped by one last-level table (2 MiB)

ANON = int(cowsim.FrameFlags.ANON)            # 1
EXCL = int(cowsim.FrameFlags.EXCLUSIVE)       # 2
DIRTY = int(cowsim.FrameFlags.DIRTY)          # 4
PAGETABLE = int(cowsim.FrameFlags.PAGETABLE)  # 8
SHMEM = int(cowsim.FrameFlags.SHMEM)          # 16
HUGE = int(cowsim.FrameFlags.HUGE)            # 32
FILE = int(cowsim.FrameFlags.FILE)            # 64

SMAPS_KEYS = ("Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Pss_Shmem", "Shared_Clean",
              "Shared_Dirty", "Private_Clean", "Private_Dirty", "Anonymous", "AnonHugePages", "Pss_File")


class StatsExpected:
    """Expected ProcessStats fault/accounting fields, compared exactly.

    The access and TLB counters (accesses, tlb_*) depend on the TLB size and
    are left to the TLB tests; every field named here must match.
    """

    def __init__(self, **fields):
        self.fields = fields

    def __eq__(self, other):
        if isinstance(other, StatsExpected):
            return self.fields == other.fields
        return {k: getattr(other, k) for k in self.fields} == self.fields

    def __repr__(self):
        return "ProcessStats(" + ", ".join(f"{k}={v}" for k, v in self.fields.items()) + ")"


def pstats(zp=0, zf=0, copy=0, reuse=0, shared=0, segv=0, copied=0, tables=1):
    """The ProcessStats expected; minflt is the sum of the five kinds (A2)."""
    return StatsExpected(
        minflt=zp + zf + copy + reuse + shared,
        faults_zero_page=zp,
        faults_zero_fill=zf,
        faults_cow_copy=copy,
        faults_cow_reuse=reuse,
        faults_shared=shared,
        segfaults=segv,
        pages_copied=copied,
        page_table_frames=tables,
    )


def smaps(**kb):
    """The complete smaps dict expected (kB); unnamed fields are 0."""
    unknown = set(kb) - set(SMAPS_KEYS)
    assert not unknown, unknown
    return {k: kb.get(k, 0) for k in SMAPS_KEYS}


def anon_private_dirty(kb):
    """smaps of `kb` kB of private anonymous dirty pages with mapcount 1."""
    return smaps(Rss=kb, Pss=kb, Pss_Dirty=kb, Pss_Anon=kb, Private_Dirty=kb, Anonymous=kb)


def anon_shared_dirty(rss_kb, pss_kb):
    """smaps of anonymous dirty pages all with mapcount >= 2."""
    return smaps(Rss=rss_kb, Pss=pss_kb, Pss_Dirty=pss_kb, Pss_Anon=pss_kb,
                 Shared_Dirty=rss_kb, Anonymous=rss_kb)


def mstat(m, *names):
    """A tuple of machine statistics, by name."""
    s = m.stats
    return tuple(getattr(s, n) for n in names)


def regs(p):
    """Regions as plain tuples (start, end, prot, shared, dontfork, wipeonfork, written)."""
    return [(r.start, r.end, r.prot, r.shared, r.dontfork, r.wipeonfork, r.written)
            for r in p.regions]


def tr(p, addr):
    """translate() as a plain tuple (frame, writable, dirty), or None."""
    t = p.translate(addr)
    return None if t is None else (t.frame, t.writable, t.dirty)


def entries(p):
    """page_table() as a list of (vpage, frame, writable, dirty) tuples."""
    return [(int(v), int(f), bool(w), bool(d)) for v, f, w, d in p.page_table().tolist()]


def frame_row(m, frame):
    """(refcount, mapcount, flags) of one used frame, or None if it is free."""
    for f, rc, mc, fl in m.frames().tolist():
        if f == frame:
            return (rc, mc, fl)
    return None


def data_frames(m):
    """{frame: (refcount, mapcount, flags)} of the used frames that are not tables."""
    return {f: (rc, mc, fl) for f, rc, mc, fl in m.frames().tolist() if not fl & PAGETABLE}


def table_frames(m):
    """Sorted frame numbers of the page-table frames."""
    return sorted(f for f, rc, mc, fl in m.frames().tolist() if fl & PAGETABLE)


def frames_of(p, addr, npages, page_size=PS):
    """The frames mapped at npages consecutive pages (None where not present)."""
    out = []
    for i in range(npages):
        t = p.translate(addr + i * page_size)
        out.append(None if t is None else t.frame)
    return out


def without_segfaults(snap):
    """A snapshot with the segfault counters removed (F1 may change only those)."""
    snap = {k: (dict(v) if isinstance(v, dict) else v) for k, v in snap.items()}
    snap["machine"] = {k: v for k, v in snap["machine"].items() if k != "segfaults"}
    for key, val in snap.items():
        if key.startswith("proc"):
            val["stats"] = {k: v for k, v in val["stats"].items() if k != "segfaults"}
    return snap
