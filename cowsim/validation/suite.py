"""The built-in validation suite: DESIGN.md section 3's observable predictions as scenarios.

Every scenario states its predictions as ``expect`` entries, computed here for
the host's page size and fault-around window, so a run checks three things
at once: the kernel, cowsim, and the prediction written in the design.

==========================  ==================================================
scenario                    prediction (DESIGN.md section 3)
==========================  ==================================================
cow_fork_pss                write N, fork: no fault, both Pss = N/2 (K2, K4, A1)
cow_child_copies            child writes k: k faults, k copies; parent writes
                            the same k: k faults, 0 copies (F5); after the
                            child exits: reuse, 0 copies
cow_parent_copies           the same with the parent writing first
read_only_fork              zero-page reads are not in Rss (F2); a read-only
                            region is not copied: the child faults N again (K1);
                            a write to a zero-page entry is one more fault (F4)
zero_page_entries_copied    a written region's zero-page entries are copied
                            at fork: the child reads them without a fault (K2)
shared_writes_visible       MAP_SHARED: no CoW, writes visible both ways,
                            Shared_Dirty, not Anonymous (F6, A1)
shmem_fault_around          N reads of existing shmem pages cost N/16 faults,
                            windows aligned to 64 KiB and clamped to the VMA
mprotect_after_fork         r -> rw after fork keeps CoW entries read-only;
                            writes to r are segfaults, not faults (M1, F1)
mprotect_exclusive          r -> rw makes anon-exclusive entries writable, not
                            the formerly shared ones; shared regions all (M1)
munmap_subrange             munmap drops the pages; the hole segfaults (M2)
dontfork                    dont-fork regions are absent in the child (K3)
wipeonfork                  wipe-on-fork regions are empty in the child (K3)
dontneed                    MADV_DONTNEED empties private pages (zero on next
                            read), but shmem pages stay in the object
pss_three_way               12 MiB shared 3 ways prints 4095 kB, not 4096 (A1)
fork_chain                  a grandchild: 3-way Pss rounding at 48 pages
thp_write_fault             a write to an empty huge region: 1 fault maps
                            2 MiB (AnonHugePages 2048 kB), the other 511 pages
                            need none; a span not wholly inside: 4 KiB faults
thp_zero_page               a read maps the huge zero page: 1 fault, Rss 0;
                            munmap of one page splits it into zero-page
                            entries; a write then is one 4 KiB zero fill
thp_fork_split              fork shares the huge page (Pss 1024 kB each); a
                            CoW write splits the writer's mapping and copies
                            4 KiB; subpages are copied while another process
                            maps any part of the huge page, reused after
thp_reuse_after_child_exit  fork, the child exits: the parent's write reuses
                            the whole huge page (1 fault, no copy)
thp_partial_munmap          munmap of one page splits the huge mapping
                            (Rss 2044 kB, AnonHugePages 0), entries keep
                            their write bit
==========================  ==================================================

The ``file_*`` scenarios (:mod:`cowsim.validation.file_suite`) use files; they are part of
the suite when the core has files (``Machine.file``).

The ``thp_*`` scenarios map ``huge`` regions and are stated for 4 KiB pages
whatever ``page_size`` says (THP is modelled there only); on other hosts their
kernel side is skipped (``cowsim.validation.thp_skip_reason``).

>>> [s.name for s in builtin_suite()][:3]
['cow_fork_pss', 'cow_child_copies', 'cow_parent_copies']
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..errors import InvalidArgument
from ..host import probe as _probe
from ..machine import Machine
from .file_suite import file_dicts
from .scenario import HUGE_PAGES, Scenario

__all__ = ["builtin_suite", "suite_dicts", "SUITE_NAMES"]


#: the kernel's default read_ahead_kb (VM_READAHEAD_PAGES)
DEFAULT_READAHEAD_KB = 128


def default_readahead_kb() -> int:
    """The readahead window file scenarios use when none is given: the host's ``read_ahead_kb``
    of the device under the probe's file directory where the kernel side can run files, else
    the kernel's default (128)."""
    if _probe.unavailable_reason() is None and _probe.files_unavailable_reason() is None:
        return _probe.readahead_kb(_probe.probe_file_dir()) or DEFAULT_READAHEAD_KB
    return DEFAULT_READAHEAD_KB


def files_supported() -> bool:
    """True when the core simulates files (``Machine.file``): the file scenarios join the suite."""
    return hasattr(Machine, "file")


def suite_dicts(
    page_size: int = 4096, fault_around: int = 65536, readahead_kb: int = 128, files: Optional[bool] = None
) -> List[Dict[str, Any]]:
    """The built-in scenarios as plain dicts (the JSON/TOML form); ``files``: with the
    file scenarios (None: when the core has files)."""
    ps = page_size

    def kb(pages: int) -> int:
        return pages * ps // 1024

    def pss_kb(*parts: int) -> int:
        """Pss in kB of (pages, mapcount, pages, mapcount, ...) in one VMA, summed
        in the kernel's 12-bit fixed point (smaps_account@fs/proc/task_mmu.c)."""
        total = 0
        for pages, mapcount in zip(parts[::2], parts[1::2]):
            total += pages * ((ps << 12) // mapcount if mapcount >= 2 else ps << 12)
        return total >> 12 >> 10

    window = fault_around // ps if fault_around // ps > 1 else 1

    def around(first: int, count: int, region_pages: int, vma_start: int = 0) -> int:
        """Faults for reading pages [first, first+count) of a shmem VMA whose pages
        all exist and none is mapped; the region starts on a page-table boundary
        and its VMA starts at page vma_start (do_fault_around@mm/memory.c)."""
        entries = ps // 8
        mapped = set()
        faults = 0
        for i in range(first, first + count):
            if i in mapped:
                continue
            faults += 1
            if window <= 1:
                mapped.add(i)
                continue
            v = i - vma_start  # offset of the page within the VMA
            t = i % entries
            lo = max(t - t % window, t - min(t, v))
            hi = min(lo + window, entries, t + (region_pages - vma_start) - v)
            mapped.update(range(i - t + lo, i - t + hi))
        return faults

    with_files = files_supported() if files is None else files
    extra = file_dicts(ps, fault_around, readahead_kb) if with_files else []
    return [*_classic(ps, kb, pss_kb, around), *thp_dicts(), *extra]


def _classic(ps: int, kb: Any, pss_kb: Any, around: Any) -> List[Dict[str, Any]]:
    return [
        {
            "name": "cow_fork_pss",
            "description": "write N pages, fork: no fault, both sides Pss = N/2 (K2, K4, A1)",
            "steps": [
                {"op": "map", "region": "a", "pages": 256},
                {"op": "write", "region": "a", "expect": {
                    "minflt": 256, "copied": 0, "a.Rss": kb(256), "a.Private_Dirty": kb(256),
                    "a.Anonymous": kb(256)}},
                {"op": "fork", "child": "child", "expect": {
                    "a.Pss": kb(128), "a.Shared_Dirty": kb(256), "a.Private_Dirty": 0,
                    "child:a.Pss": kb(128), "child:a.Shared_Dirty": kb(256), "child:a.Rss": kb(256)}},
                {"op": "measure", "proc": "child", "expect": {"minflt": 0, "a.Pss": kb(128)}},
            ],
        },
        {
            "name": "cow_child_copies",
            "description": "child writes k pages: k faults, k copies; parent then writes the same k: "
                           "k faults, no copy (F5)",
            "steps": [
                {"op": "map", "region": "a", "pages": 256},
                {"op": "write", "region": "a", "value": 1},
                {"op": "fork", "child": "child"},
                {"op": "write", "proc": "child", "region": "a", "count": 16, "value": 2, "expect": {
                    "minflt": 16, "copied": 16, "a.Private_Dirty": kb(16), "a.Shared_Dirty": kb(240),
                    "a.Pss": kb(16) + kb(120)}},
                {"op": "measure", "note": "the parent's 16 pages are now mapped once",
                 "expect": {"a.Pss": kb(16) + kb(120), "a.Private_Dirty": kb(16)}},
                {"op": "write", "region": "a", "count": 16, "value": 3,
                 "expect": {"minflt": 16, "copied": 0}},
                {"op": "read", "region": "a", "count": 16, "expect": {"minflt": 0, "data_sum": 48}},
                {"op": "read", "proc": "child", "region": "a", "count": 16,
                 "expect": {"minflt": 0, "data_sum": 32}},
                {"op": "exit", "proc": "child", "expect": {"a.Pss": kb(256), "a.Private_Dirty": kb(256)}},
                {"op": "write", "region": "a", "first": 16, "count": 16,
                 "note": "read-only entries, refcount 1: reuse",
                 "expect": {"minflt": 16, "copied": 0}},
            ],
        },
        {
            "name": "cow_parent_copies",
            "description": "whoever writes first copies, the other side later reuses (F5)",
            "steps": [
                {"op": "map", "region": "a", "pages": 64},
                {"op": "write", "region": "a"},
                {"op": "fork", "child": "child"},
                {"op": "write", "region": "a", "count": 32, "expect": {"minflt": 32, "copied": 32}},
                {"op": "write", "proc": "child", "region": "a", "count": 32,
                 "expect": {"minflt": 32, "copied": 0}},
                {"op": "write", "proc": "child", "region": "a", "first": 32,
                 "expect": {"minflt": 32, "copied": 32, "a.Private_Dirty": kb(64), "a.Pss": kb(64)}},
                {"op": "measure", "note": "every page has been copied once: all private again",
                 "expect": {"a.Pss": kb(64), "a.Private_Dirty": kb(64), "a.Shared_Dirty": 0}},
            ],
        },
        {
            "name": "read_only_fork",
            "description": "zero-page reads are not in Rss; a read-only region is not copied at fork, "
                           "so the child faults N again (F2, K1, F4)",
            "steps": [
                {"op": "map", "region": "a", "pages": 128},
                {"op": "read", "region": "a", "expect": {"minflt": 128, "data_sum": 0, "a.Rss": 0}},
                {"op": "fork", "child": "child", "expect": {"child:a.Rss": 0}},
                {"op": "read", "proc": "child", "region": "a", "expect": {"minflt": 128, "a.Rss": 0}},
                {"op": "write", "proc": "child", "region": "a", "count": 8,
                 "expect": {"minflt": 8, "copied": 0, "a.Rss": kb(8), "a.Private_Dirty": kb(8)}},
                {"op": "read", "region": "a", "expect": {"minflt": 0}},
                {"op": "write", "region": "a", "count": 4, "expect": {"minflt": 4, "a.Rss": kb(4)}},
            ],
        },
        {
            "name": "zero_page_entries_copied",
            "description": "a written region's entries are copied at fork, zero-page entries "
                           "included: the child reads them without faulting (K1, K2)",
            "steps": [
                {"op": "map", "region": "a", "pages": 64},
                {"op": "write", "region": "a", "count": 1, "value": 9},
                {"op": "read", "region": "a", "first": 1, "expect": {"minflt": 63, "a.Rss": kb(1)}},
                {"op": "fork", "child": "child"},
                {"op": "read", "proc": "child", "region": "a", "expect": {"minflt": 0, "data_sum": 9}},
                {"op": "write", "proc": "child", "region": "a", "first": 1,
                 "expect": {"minflt": 63, "copied": 0, "a.Private_Dirty": kb(63)}},
            ],
        },
        {
            "name": "shared_writes_visible",
            "description": "MAP_SHARED: no copy-on-write, writes visible both ways, shmem is not "
                           "Anonymous (F6, A1)",
            "steps": [
                {"op": "map", "region": "s", "pages": 64, "shared": True},
                {"op": "write", "region": "s", "value": 7, "expect": {
                    "minflt": 64, "s.Private_Dirty": kb(64), "s.Anonymous": 0}},
                {"op": "fork", "child": "child", "expect": {"child:s.Rss": 0, "s.Private_Dirty": kb(64)}},
                {"op": "read", "proc": "child", "region": "s", "expect": {
                    "minflt": around(0, 64, 64), "data_sum": 7 * 64, "s.Shared_Dirty": kb(64),
                    "s.Pss": kb(32)}},
                {"op": "write", "proc": "child", "region": "s", "value": 9,
                 "expect": {"minflt": 0, "copied": 0}},
                {"op": "read", "region": "s", "expect": {"minflt": 0, "data_sum": 9 * 64}},
                {"op": "exit", "proc": "child", "expect": {"s.Private_Dirty": kb(64), "s.Pss": kb(64)}},
            ],
        },
        {
            "name": "shmem_fault_around",
            "description": "reads of existing shmem pages map 64 KiB-aligned windows: N reads cost "
                           "about N/16 faults; windows are clamped to the VMA",
            "steps": [
                {"op": "map", "region": "s", "pages": 100, "shared": True},
                {"op": "map", "region": "t", "pages": 32, "shared": True},
                {"op": "read", "region": "t", "note": "no page exists yet: one fault each",
                 "expect": {"minflt": 32, "t.Shared_Clean": 0, "t.Private_Clean": kb(32)}},
                {"op": "write", "region": "s", "expect": {"minflt": 100}},
                {"op": "fork", "child": "child"},
                {"op": "read", "proc": "child", "region": "s",
                 "expect": {"minflt": around(0, 100, 100), "s.Rss": kb(100)}},
                {"op": "read", "proc": "child", "region": "t",
                 "expect": {"minflt": around(0, 32, 32), "t.Shared_Clean": kb(32)}},
                {"op": "madvise", "proc": "child", "region": "s", "advice": "dontneed",
                 "expect": {"s.Rss": 0}},
                {"op": "read", "proc": "child", "region": "s", "first": 5, "count": 40,
                 "note": "whole windows get mapped",
                 "expect": {"minflt": around(5, 40, 100), "s.Rss": kb(48)}},
                {"op": "munmap", "proc": "child", "region": "s", "count": 3},
                {"op": "madvise", "proc": "child", "region": "s", "first": 3, "advice": "dontneed"},
                {"op": "read", "proc": "child", "region": "s", "first": 3,
                 "note": "the VMA now starts 3 pages into the window",
                 "expect": {"minflt": around(3, 97, 100, vma_start=3), "s.Rss": kb(97)}},
            ],
        },
        {
            "name": "mprotect_after_fork",
            "description": "mprotect r -> rw after fork keeps CoW entries read-only; writes to a "
                           "read-only region are segfaults, not faults (M1, F1)",
            "steps": [
                {"op": "map", "region": "a", "pages": 64},
                {"op": "write", "region": "a"},
                {"op": "fork", "child": "child"},
                {"op": "mprotect", "region": "a", "prot": "r", "expect": {"minflt": 0}},
                {"op": "write", "region": "a", "count": 1, "expect": {"minflt": 0, "segv": 1}},
                {"op": "mprotect", "region": "a", "prot": "rw"},
                {"op": "write", "region": "a", "expect": {"minflt": 64, "copied": 64}},
                {"op": "write", "proc": "child", "region": "a", "expect": {"minflt": 64, "copied": 0}},
            ],
        },
        {
            "name": "mprotect_exclusive",
            "description": "mprotect r -> rw makes anon-exclusive entries writable again, formerly "
                           "shared ones stay read-only; shared regions become writable (M1)",
            "steps": [
                {"op": "map", "region": "a", "pages": 64},
                {"op": "map", "region": "s", "pages": 16, "shared": True},
                {"op": "write", "region": "a"},
                {"op": "write", "region": "s"},
                {"op": "mprotect", "region": "a", "prot": "r"},
                {"op": "mprotect", "region": "a", "prot": "rw"},
                {"op": "write", "region": "a", "expect": {"minflt": 0}},
                {"op": "mprotect", "region": "s", "prot": "r"},
                {"op": "write", "region": "s", "count": 1, "expect": {"minflt": 0, "segv": 1}},
                {"op": "mprotect", "region": "s", "prot": "rw"},
                {"op": "write", "region": "s", "expect": {"minflt": 0}},
                {"op": "fork", "child": "child"},
                {"op": "exit", "proc": "child"},
                {"op": "mprotect", "region": "a", "prot": "r"},
                {"op": "mprotect", "region": "a", "prot": "rw"},
                {"op": "write", "region": "a", "note": "not exclusive since the fork: reuse faults",
                 "expect": {"minflt": 64, "copied": 0}},
            ],
        },
        {
            "name": "munmap_subrange",
            "description": "munmap of a sub-range drops its pages and leaves a hole that segfaults (M2)",
            "steps": [
                {"op": "map", "region": "a", "pages": 128},
                {"op": "write", "region": "a"},
                {"op": "munmap", "region": "a", "first": 32, "count": 32, "expect": {"a.Rss": kb(96)}},
                {"op": "read", "region": "a", "first": 32, "count": 1, "expect": {"minflt": 0, "segv": 1}},
                {"op": "fork", "child": "child", "expect": {"child:a.Rss": kb(96), "child:a.Pss": kb(48)}},
                {"op": "munmap", "proc": "child", "region": "a", "count": 32,
                 "expect": {"a.Rss": kb(64), "a.Pss": kb(32)}},
                {"op": "measure", "expect": {"a.Pss": kb(32) + kb(32)}},
            ],
        },
        {
            "name": "dontfork",
            "description": "MADV_DONTFORK regions are absent in the child (K3)",
            "steps": [
                {"op": "map", "region": "a", "pages": 64},
                {"op": "map", "region": "b", "pages": 64},
                {"op": "write", "region": "a"},
                {"op": "write", "region": "b"},
                {"op": "madvise", "region": "a", "advice": "dontfork"},
                {"op": "fork", "child": "child", "expect": {
                    "child:a.mapped": 0, "child:b.Pss": kb(32), "a.Private_Dirty": kb(64)}},
                {"op": "read", "proc": "child", "region": "a", "count": 1, "expect": {"minflt": 0, "segv": 1}},
                {"op": "write", "proc": "child", "region": "b", "count": 4, "expect": {"minflt": 4, "copied": 4}},
                {"op": "madvise", "region": "a", "count": 32, "advice": "dofork"},
                {"op": "fork", "child": "child2", "expect": {"child2:a.Rss": kb(32), "a.Pss": kb(16) + kb(32)}},
            ],
        },
        {
            "name": "wipeonfork",
            "description": "MADV_WIPEONFORK regions are present but empty in the child (K3)",
            "steps": [
                {"op": "map", "region": "a", "pages": 64},
                {"op": "write", "region": "a", "value": 5},
                {"op": "madvise", "region": "a", "advice": "wipeonfork"},
                {"op": "fork", "child": "child", "expect": {
                    "child:a.mapped": 1, "child:a.Rss": 0, "a.Private_Dirty": kb(64)}},
                {"op": "read", "proc": "child", "region": "a", "expect": {"minflt": 64, "data_sum": 0}},
                {"op": "write", "proc": "child", "region": "a", "count": 8, "expect": {"minflt": 8, "copied": 0}},
                {"op": "read", "region": "a", "expect": {"minflt": 0, "data_sum": 5 * 64}},
            ],
        },
        {
            "name": "dontneed",
            "description": "MADV_DONTNEED frees private pages (zeros on the next read) but only "
                           "unmaps shmem pages, which keep their data",
            "steps": [
                {"op": "map", "region": "a", "pages": 64},
                {"op": "map", "region": "s", "pages": 64, "shared": True},
                {"op": "write", "region": "a", "value": 3},
                {"op": "write", "region": "s", "value": 5},
                {"op": "madvise", "region": "a", "advice": "dontneed", "expect": {"a.Rss": 0}},
                {"op": "madvise", "region": "s", "advice": "dontneed", "expect": {"s.Rss": 0}},
                {"op": "read", "region": "a", "expect": {"minflt": 64, "data_sum": 0}},
                {"op": "read", "region": "s", "expect": {"minflt": around(0, 64, 64), "data_sum": 5 * 64}},
            ],
        },
        {
            "name": "pss_three_way",
            "description": "Pss is summed in 12-bit fixed point: 12 MiB shared 3 ways prints "
                           f"{pss_kb(12 * 1024 * 1024 // ps, 3)} kB (A1)",
            "steps": [
                {"op": "map", "region": "a", "pages": 12 * 1024 * 1024 // ps},
                {"op": "write", "region": "a"},
                {"op": "fork", "child": "c1"},
                {"op": "fork", "child": "c2", "expect": {
                    "a.Pss": pss_kb(12 * 1024 * 1024 // ps, 3), "c2:a.Pss": pss_kb(12 * 1024 * 1024 // ps, 3),
                    "a.Shared_Dirty": 12 * 1024}},
                {"op": "measure", "proc": "c1", "expect": {"a.Pss": pss_kb(12 * 1024 * 1024 // ps, 3)}},
                {"op": "exit", "proc": "c2", "expect": {"a.Pss": 6 * 1024}},
                {"op": "exit", "proc": "c1", "expect": {"a.Pss": 12 * 1024}},
            ],
        },
        {
            "name": "fork_chain",
            "description": "a grandchild shares with child and parent: 3-way Pss rounding, copies "
                           "in the grandchild only",
            "steps": [
                {"op": "map", "region": "a", "pages": 48},
                {"op": "write", "region": "a"},
                {"op": "fork", "child": "child"},
                {"op": "fork", "proc": "child", "child": "grandchild",
                 "expect": {"a.Pss": pss_kb(48, 3), "grandchild:a.Pss": pss_kb(48, 3)}},
                {"op": "write", "proc": "grandchild", "region": "a", "count": 8,
                 "expect": {"minflt": 8, "copied": 8, "a.Pss": pss_kb(8, 1, 40, 3)}},
                {"op": "exit", "proc": "grandchild", "expect": {"a.Pss": pss_kb(48, 2)}},
                {"op": "measure", "expect": {"a.Pss": pss_kb(48, 2)}},
            ],
        },
    ]


def thp_dicts() -> List[Dict[str, Any]]:
    """The transparent-huge-page scenarios (4 KiB pages, 2 MiB huge pages:
    docs/SEMANTICS.md "Transparent huge pages", Linux >= 6.13)."""
    H = HUGE_PAGES
    HKB = H * 4  # 2048 kB

    def kb4(pages: int) -> int:
        return pages * 4

    return [
        {
            "name": "thp_write_fault",
            "description": "a write to an empty 2 MiB-aligned huge region: one fault maps a 2 MiB huge page, "
                           "the other 511 pages need none; a span not wholly inside the region gets 4 KiB pages",
            "steps": [
                {"op": "map", "region": "a", "pages": H, "huge": True},
                {"op": "map", "region": "b", "pages": H + 8, "huge": True},
                {"op": "write", "region": "a", "count": 1, "note": "do_huge_pmd_anonymous_page", "expect": {
                    "minflt": 1, "copied": 0, "a.Rss": HKB, "a.Pss": HKB, "a.Private_Dirty": HKB,
                    "a.Anonymous": HKB, "a.AnonHugePages": HKB}},
                {"op": "write", "region": "a", "first": 1, "expect": {
                    "minflt": 0, "copied": 0, "a.Rss": HKB, "a.AnonHugePages": HKB}},
                {"op": "write", "region": "b", "first": H, "note": "span [512, 1024) is not inside the region",
                 "expect": {"minflt": 8, "b.Rss": kb4(8), "b.AnonHugePages": 0}},
                {"op": "write", "region": "b", "count": H, "expect": {
                    "minflt": 1, "b.Rss": HKB + kb4(8), "b.AnonHugePages": HKB, "b.Private_Dirty": HKB + kb4(8)}},
            ],
        },
        {
            "name": "thp_zero_page",
            "description": "a read of an empty huge region maps the huge zero page: 1 fault, not in Rss; "
                           "munmap of one page splits it into 4 KiB zero-page entries; a write is then "
                           "one 4 KiB zero fill",
            "steps": [
                {"op": "map", "region": "a", "pages": H, "huge": True},
                {"op": "read", "region": "a", "count": 1, "expect": {
                    "minflt": 1, "data_sum": 0, "a.Rss": 0, "a.AnonHugePages": 0}},
                {"op": "read", "region": "a", "first": 1, "note": "the huge zero page maps all 512 pages",
                 "expect": {"minflt": 0, "data_sum": 0, "a.Rss": 0}},
                {"op": "munmap", "region": "a", "first": H - 1, "count": 1, "note": "split: 511 zero-page entries",
                 "expect": {"minflt": 0, "a.Rss": 0, "a.mapped": 1}},
                {"op": "read", "region": "a", "count": H - 1, "expect": {"minflt": 0, "data_sum": 0, "a.Rss": 0}},
                {"op": "write", "region": "a", "first": 5, "count": 1, "value": 7, "expect": {
                    "minflt": 1, "copied": 0, "a.Rss": kb4(1), "a.Private_Dirty": kb4(1), "a.AnonHugePages": 0}},
                {"op": "read", "region": "a", "count": H - 1, "expect": {"minflt": 0, "data_sum": 7}},
            ],
        },
        {
            "name": "thp_fork_split",
            "description": "fork shares the huge page; a CoW write splits the writer's mapping and copies "
                           "4 KiB (Linux >= 5.8); a subpage is copied while another process maps any part "
                           "of the huge page, reused once it is the writer's alone (Linux >= 6.13)",
            "steps": [
                {"op": "map", "region": "a", "pages": H, "huge": True},
                {"op": "write", "region": "a", "value": 1, "expect": {"minflt": 1, "a.AnonHugePages": HKB}},
                {"op": "fork", "child": "child", "expect": {
                    "a.Pss": HKB // 2, "a.Shared_Dirty": HKB, "a.AnonHugePages": HKB,
                    "child:a.Pss": HKB // 2, "child:a.Rss": HKB, "child:a.AnonHugePages": HKB}},
                {"op": "write", "proc": "child", "region": "a", "count": 1, "value": 2,
                 "note": "split of the child's mapping, 4 KiB copied", "expect": {
                     "minflt": 1, "copied": 1, "a.AnonHugePages": 0, "a.Rss": HKB, "a.Private_Dirty": kb4(1),
                     "a.Shared_Dirty": HKB - kb4(1), "a.Pss": kb4(1) + (HKB - kb4(1)) // 2}},
                {"op": "measure", "note": "the parent's mapping stays huge", "expect": {
                    "a.AnonHugePages": HKB, "a.Rss": HKB, "a.Private_Dirty": kb4(1),
                    "a.Shared_Dirty": HKB - kb4(1), "a.Pss": kb4(1) + (HKB - kb4(1)) // 2}},
                {"op": "write", "region": "a", "count": 1, "value": 3,
                 "note": "the child still maps 511 subpages: split and copy, no reuse", "expect": {
                     "minflt": 1, "copied": 1, "a.AnonHugePages": 0, "a.Rss": HKB, "a.Private_Dirty": kb4(1),
                     "a.Pss": kb4(1) + (HKB - kb4(1)) // 2}},
                {"op": "write", "region": "a", "first": 1, "count": 1, "value": 3, "expect": {
                    "minflt": 1, "copied": 1, "a.Private_Dirty": kb4(2), "a.Shared_Dirty": HKB - kb4(2),
                    "a.Pss": kb4(2) + (HKB - kb4(2)) // 2}},
                {"op": "write", "proc": "child", "region": "a", "first": 1, "count": 1, "value": 2,
                 "note": "only the child maps this subpage, the parent others of the huge page: copy",
                 "expect": {"minflt": 1, "copied": 1, "a.Private_Dirty": kb4(2), "a.Pss": kb4(2) + (HKB - kb4(2)) // 2}},
                {"op": "read", "proc": "child", "region": "a", "count": 3, "expect": {"minflt": 0, "data_sum": 5}},
                {"op": "exit", "proc": "child", "expect": {
                    "a.Pss": HKB, "a.Private_Dirty": HKB, "a.AnonHugePages": 0}},
                {"op": "write", "region": "a", "first": 2, "value": 3,
                 "note": "the huge page is the parent's alone: every subpage is reused", "expect": {
                     "minflt": H - 2, "copied": 0, "a.Rss": HKB, "a.Private_Dirty": HKB}},
                {"op": "read", "region": "a", "count": 3, "expect": {"minflt": 0, "data_sum": 9}},
            ],
        },
        {
            "name": "thp_reuse_after_child_exit",
            "description": "fork, the child exits without writing: the parent's write reuses the whole "
                           "huge page (1 fault, no copy, still 2 MiB-mapped)",
            "steps": [
                {"op": "map", "region": "a", "pages": H, "huge": True},
                {"op": "write", "region": "a", "expect": {"minflt": 1, "a.AnonHugePages": HKB}},
                {"op": "fork", "child": "child", "expect": {"a.Pss": HKB // 2, "child:a.AnonHugePages": HKB}},
                {"op": "read", "proc": "child", "region": "a", "expect": {"minflt": 0, "data_sum": H}},
                {"op": "exit", "proc": "child", "expect": {
                    "a.Pss": HKB, "a.Private_Dirty": HKB, "a.AnonHugePages": HKB}},
                {"op": "write", "region": "a", "count": 1, "value": 4, "note": "do_huge_pmd_wp_page: reuse",
                 "expect": {"minflt": 1, "copied": 0, "a.AnonHugePages": HKB, "a.Rss": HKB,
                            "a.Private_Dirty": HKB}},
                {"op": "write", "region": "a", "first": 1, "value": 4, "expect": {
                    "minflt": 0, "copied": 0, "a.AnonHugePages": HKB}},
            ],
        },
        {
            "name": "thp_partial_munmap",
            "description": "munmap of one page of a huge page splits the mapping: Rss 2044 kB, "
                           "AnonHugePages 0; the entries keep their write bit; after a fork the "
                           "subpages are CoW-shared",
            "steps": [
                {"op": "map", "region": "a", "pages": H, "huge": True},
                {"op": "map", "region": "b", "pages": H, "huge": True},
                {"op": "write", "region": "a", "expect": {"minflt": 1, "a.AnonHugePages": HKB}},
                {"op": "write", "region": "b", "expect": {"minflt": 1, "b.AnonHugePages": HKB}},
                {"op": "munmap", "region": "a", "first": H - 1, "count": 1, "expect": {
                    "minflt": 0, "a.Rss": HKB - kb4(1), "a.Pss": HKB - kb4(1),
                    "a.Private_Dirty": HKB - kb4(1), "a.AnonHugePages": 0}},
                {"op": "munmap", "region": "b", "first": H // 2, "count": 1, "note": "two VMAs remain",
                 "expect": {"minflt": 0, "b.Rss": HKB - kb4(1), "b.AnonHugePages": 0}},
                {"op": "write", "region": "a", "count": H - 1, "value": 5, "expect": {"minflt": 0, "copied": 0}},
                {"op": "read", "region": "a", "first": H - 1, "expect": {"minflt": 0, "segv": 1}},
                {"op": "fork", "child": "child", "expect": {
                    "child:a.Rss": HKB - kb4(1), "child:a.Pss": (HKB - kb4(1)) // 2, "child:a.AnonHugePages": 0,
                    "a.Shared_Dirty": HKB - kb4(1)}},
                {"op": "write", "proc": "child", "region": "a", "count": 1, "value": 6,
                 "expect": {"minflt": 1, "copied": 1}},
                {"op": "exit", "proc": "child", "expect": {"a.Pss": HKB - kb4(1)}},
                {"op": "write", "region": "a", "count": 1, "value": 6, "note": "the parent's alone again: reuse",
                 "expect": {"minflt": 1, "copied": 0}},
            ],
        },
    ]


SUITE_NAMES = tuple(d["name"] for d in suite_dicts())


def builtin_suite(
    names: Optional[Sequence[str]] = None,
    page_size: int = 4096,
    fault_around: int = 65536,
    readahead_kb: Optional[int] = None,
    files: Optional[bool] = None,
) -> List[Scenario]:
    """The built-in scenarios (all, or those named), validated.

    Args:
        names: scenario names to keep, in suite order; None for all.
        page_size: the page size the expectations are computed for.
        fault_around: the kernel's fault-around window in bytes.
        readahead_kb: the readahead window the file scenarios' expectations use (None:
            :func:`default_readahead_kb`, the one cowsim's side then uses too).
        files: include the file scenarios (None: when the core has files).

    Raises:
        InvalidArgument: an unknown name.
    """
    ra = default_readahead_kb() if readahead_kb is None else readahead_kb
    dicts = suite_dicts(page_size, fault_around, ra, files)
    if names is not None:
        unknown = [n for n in names if n not in SUITE_NAMES]
        if unknown:
            raise InvalidArgument(f"unknown built-in scenario(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(SUITE_NAMES)}")
        dicts = [d for d in dicts if d["name"] in names]
    return [Scenario.from_dict(d, "built-in suite") for d in dicts]
