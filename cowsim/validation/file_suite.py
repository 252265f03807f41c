"""The built-in suite's file scenarios: DESIGN.md 3.F's facts as measured on the host kernel
(docs/FILE_MEASUREMENTS.md: Linux 6.18, ext4, 4 KiB pages).

===========================  ===================================================
scenario                     prediction (DESIGN.md 3.F, FILE_MEASUREMENTS.md)
===========================  ===================================================
file_private_read            reads of 64 cached pages: 4 faults (FR1), Rss and
                             Pss_File 256 kB, Private_Clean, never Anonymous
file_private_write           a write fault copies from the page cache: Anonymous
                             4 kB, no fault-around; the file is unchanged (FR2)
file_write_after_read        a write to a page mapped from the cache is always
                             a copy (FR3)
file_fork                    fork copies every entry of a written private file
                             region, none of an unwritten one (FK1)
file_shared_write            shared: a write fault maps one page dirty; the
                             other process and pread see the bytes (FR4)
file_sigbus                  past the end of file: SIGBUS after the read's
                             fault-around; the partial last page works (FB1)
file_dontneed                MADV_DONTNEED drops the copies: the file's bytes
                             come back (FD1)
file_unrelated               two processes (no shared mapping) mapping one
                             cached file: Pss halves, Shared_Clean (FA1)
file_cold                    an uncached page: a major fault, readahead of the
                             read_ahead_kb window, MADV_RANDOM: one page (FC1)
file_readahead_mark          fault-around skips the readahead mark; a fault on
                             it is minor and reads the next window (FC1)
file_large_folio             one write() of 64 pages = one folio: a read fault
                             maps it whole, a shared write fault dirties it
                             whole, a private write copies one page; beside a
                             file cached page by page (FL)
===========================  ===================================================
"""
from __future__ import annotations

from typing import Any, Dict, List

from .file_steps import fill_byte

__all__ = ["file_dicts", "FILE_SUITE_NAMES"]


def file_dicts(page_size: int = 4096, fault_around: int = 65536, readahead_kb: int = 128) -> List[Dict[str, Any]]:
    """The file scenarios as plain dicts, with predictions for the page size, the
    fault-around window and the readahead window (``read_ahead_kb``)."""
    ps = page_size
    win = max(1, fault_around // ps)
    ra = readahead_kb * 1024 // ps

    def kb(pages: int) -> int:
        return pages * ps // 1024

    def data(first: int, count: int) -> int:
        return sum(fill_byte(k) for k in range(first, first + count))

    # the synchronous readahead of a major fault at page idx of an eof-page file (FC1)
    def ra_window(idx: int, eof: int) -> range:
        if ra <= 0:
            return range(idx, idx + 1)
        start = max(0, idx - ra // 2)
        return range(start, min(start + ra, eof))

    cold = ra_window(0, 64)
    big = 4096
    big_idx = 3000
    sync = ra_window(big_idx, big)
    mark = sync.start + len(sync) - ra // 4
    after_mark = min(sync.stop + ra, big) - sync.stop  # the async window, cut at EOF
    near = mark + 1 if (mark + 1) % win else mark - 1  # a page in the marked page's window
    near_window = range(near - near % win, near - near % win + win)
    near_mapped = sum(1 for q in near_window if q in sync and q != mark)
    return [
        {
            "name": "file_private_read",
            "description": "reads of 64 cached pages cost 64/16 faults (FR1); file pages are Rss, not Anonymous",
            "steps": [
                {"op": "file", "file": "f", "pages": 64, "cached": True,
                 "expect": {"f.cached": 64, "f.size": 64 * ps}},
                {"op": "map", "region": "a", "pages": 64, "prot": "r", "file": "f"},
                {"op": "read", "region": "a", "expect": {
                    "minflt": 64 // win, "majflt": 0, "data_sum": data(0, 64), "a.Rss": kb(64),
                    "a.Private_Clean": kb(64), "a.Anonymous": 0, "a.Pss_File": kb(64), "RssFile": kb(64),
                    "RssAnon": 0}},
                {"op": "map", "region": "s", "pages": 64, "prot": "r", "shared": True, "file": "f"},
                {"op": "read", "region": "s", "first": 20, "count": 1,
                 "note": "the window of page 20 only", "expect": {"minflt": 1, "s.Rss": kb(win)}},
                {"op": "read", "region": "s", "expect": {"minflt": 64 // win - 1, "s.Shared_Clean": kb(64)}},
            ],
        },
        {
            "name": "file_private_write",
            "description": "a private write fault copies the page-cache page into a new anonymous page (FR2)",
            "steps": [
                {"op": "file", "file": "f", "pages": 64, "cached": True},
                {"op": "map", "region": "a", "pages": 64, "file": "f"},
                {"op": "write", "region": "a", "first": 5, "count": 1, "value": 9, "expect": {
                    "minflt": 1, "copied": 0, "a.Rss": kb(1), "a.Anonymous": kb(1), "a.Private_Dirty": kb(1),
                    "RssAnon": kb(1), "RssFile": 0}},
                {"op": "fread", "file": "f", "first": 5, "count": 1, "expect": {"data_sum": fill_byte(5)}},
                {"op": "read", "region": "a", "first": 0, "count": 16, "expect": {
                    "minflt": 1, "data_sum": data(0, 16) - fill_byte(5) + 9, "a.Private_Clean": kb(15)}},
            ],
        },
        {
            "name": "file_write_after_read",
            "description": "a write to a page mapped read-only from the page cache is always a copy (FR3)",
            "steps": [
                {"op": "file", "file": "f", "pages": 64, "cached": True},
                {"op": "map", "region": "a", "pages": 64, "file": "f"},
                {"op": "read", "region": "a", "count": 1, "expect": {"minflt": 1, "a.Rss": kb(win)}},
                {"op": "write", "region": "a", "count": 1, "value": 9, "expect": {
                    "minflt": 1, "copied": 1, "a.Private_Clean": kb(win - 1), "a.Private_Dirty": kb(1),
                    "a.Anonymous": kb(1)}},
                {"op": "write", "region": "a", "first": 1, "count": 3, "value": 9,
                 "expect": {"minflt": 3, "copied": 3}},
                {"op": "fread", "file": "f", "count": 1, "expect": {"data_sum": fill_byte(0)}},
            ],
        },
        {
            "name": "file_fork",
            "description": "fork copies all entries of a written private file region, none of an unwritten one (FK1)",
            "steps": [
                {"op": "file", "file": "f", "pages": 64, "cached": True},
                {"op": "map", "region": "a", "pages": 64, "file": "f"},
                {"op": "map", "region": "b", "pages": 64, "prot": "r", "file": "f"},
                {"op": "write", "region": "a", "count": 1, "value": 9},
                {"op": "read", "region": "a", "first": 16, "count": 16},
                {"op": "read", "region": "b", "first": 0, "count": 32},
                {"op": "fork", "child": "child", "expect": {
                    "child:a.Rss": kb(win + 1), "child:a.Shared_Dirty": kb(1),
                    "child:a.Shared_Clean": kb(win), "child:b.Rss": 0, "a.Private_Dirty": 0}},
                {"op": "read", "proc": "child", "region": "a", "first": 20, "count": 1,
                 "expect": {"minflt": 0, "data_sum": fill_byte(20)}},
                {"op": "read", "proc": "child", "region": "b", "count": 1,
                 "expect": {"minflt": 1, "b.Rss": kb(win)}},
                {"op": "read", "proc": "child", "region": "a", "count": 1, "expect": {"minflt": 0, "data_sum": 9}},
            ],
        },
        {
            "name": "file_shared_write",
            "description": "a shared write fault maps one page writable and dirty; the other process and pread "
                           "see the bytes; fsync cleans and write-protects (FR4)",
            "steps": [
                {"op": "file", "file": "f", "pages": 64, "cached": True},
                {"op": "map", "region": "s", "pages": 64, "shared": True, "file": "f"},
                {"op": "write", "region": "s", "first": 3, "count": 1, "value": 9, "expect": {
                    "minflt": 1, "s.Rss": kb(1), "s.Private_Dirty": kb(1), "s.Anonymous": 0, "RssFile": kb(1)}},
                {"op": "fork", "child": "child", "expect": {"child:s.Rss": 0}},
                {"op": "read", "proc": "child", "region": "s", "first": 3, "count": 1, "expect": {
                    "minflt": 1, "data_sum": 9, "s.Rss": kb(win), "s.Shared_Dirty": kb(1)}},
                {"op": "write", "proc": "child", "region": "s", "first": 1, "count": 1, "value": 7,
                 "note": "a read-mapped page: write-notify, same frame", "expect": {"minflt": 1, "copied": 0}},
                {"op": "read", "region": "s", "first": 1, "count": 1, "expect": {"minflt": 1, "data_sum": 7}},
                {"op": "fread", "file": "f", "first": 1, "count": 1, "expect": {"data_sum": 7}},
                {"op": "fsync", "file": "f", "expect": {"s.Shared_Dirty": 0}},
                {"op": "write", "region": "s", "first": 3, "count": 1, "value": 8,
                 "note": "cleaned by fsync: faults again", "expect": {"minflt": 1}},
            ],
        },
        {
            "name": "file_sigbus",
            "description": "past the end of the file: SIGBUS after the read's fault-around; the partial last "
                           "page is accessible and a shared write there does not grow the file (FB1)",
            "steps": [
                {"op": "file", "file": "f", "pages": 10, "cached": True},
                {"op": "map", "region": "a", "pages": 16, "prot": "r", "file": "f"},
                {"op": "read", "region": "a", "first": 12, "count": 1, "expect": {
                    "minflt": 0, "majflt": 0, "sigbus": 1, "segv": 0, "a.Rss": kb(10)}},
                {"op": "map", "region": "w", "pages": 16, "file": "f"},
                {"op": "write", "region": "w", "first": 13, "count": 1, "expect": {"sigbus": 1, "w.Rss": 0}},
                {"op": "file", "file": "p", "pages": 10, "cached": True, "last_bytes": 100},
                {"op": "map", "region": "s", "pages": 16, "shared": True, "file": "p"},
                {"op": "read", "region": "s", "first": 9, "count": 1, "expect": {"minflt": 1, "data_sum": 10}},
                {"op": "write", "region": "s", "first": 9, "count": 1, "value": 7,
                 "expect": {"minflt": 1, "p.size": 9 * ps + 100}},
                {"op": "fread", "file": "p", "first": 9, "count": 1, "expect": {"data_sum": 7}},
                {"op": "read", "region": "s", "first": 10, "count": 1, "expect": {"sigbus": 1, "minflt": 0}},
            ],
        },
        {
            "name": "file_dontneed",
            "description": "MADV_DONTNEED on a private file mapping drops the copies; the next reads return "
                           "the file's bytes (FD1)",
            "steps": [
                {"op": "file", "file": "f", "pages": 64, "cached": True},
                {"op": "map", "region": "a", "pages": 64, "file": "f"},
                {"op": "read", "region": "a", "expect": {"minflt": 64 // win}},
                {"op": "write", "region": "a", "count": 4, "value": 200,
                 "expect": {"copied": 4, "a.Anonymous": kb(4)}},
                {"op": "madvise", "region": "a", "advice": "dontneed",
                 "expect": {"a.Rss": 0, "RssAnon": 0, "RssFile": 0}},
                {"op": "read", "region": "a", "expect": {
                    "minflt": 64 // win, "data_sum": data(0, 64), "a.Anonymous": 0, "f.cached": 64}},
            ],
        },
        {
            "name": "file_unrelated",
            "description": "two processes that share no mapping map one cached file: page-cache sharing "
                           "without fork (FA1)",
            "steps": [
                {"op": "file", "file": "f", "pages": 64, "cached": True},
                {"op": "fork", "child": "other", "note": "before any mapping: unrelated as far as f goes"},
                {"op": "map", "region": "a", "pages": 64, "prot": "r", "file": "f"},
                {"op": "read", "region": "a", "expect": {"minflt": 64 // win, "a.Pss": kb(64)}},
                {"op": "map", "proc": "other", "region": "b", "pages": 64, "prot": "r", "file": "f"},
                {"op": "read", "proc": "other", "region": "b", "expect": {
                    "minflt": 64 // win, "b.Rss": kb(64), "b.Pss": kb(32), "b.Shared_Clean": kb(64),
                    "b.Pss_File": kb(32)}},
                {"op": "measure", "expect": {"a.Rss": kb(64), "a.Pss": kb(32), "a.Shared_Clean": kb(64),
                                             "a.Private_Clean": 0}},
            ],
        },
        {
            "name": "file_cold",
            "description": "an uncached page: one major fault, no minor one; readahead reads the window around "
                           "it, fault-around maps 16; MADV_RANDOM: one page per major fault (FC1)",
            "steps": [
                {"op": "file", "file": "f", "pages": 64, "expect": {"f.cached": 0}},
                {"op": "map", "region": "a", "pages": 64, "prot": "r", "file": "f"},
                {"op": "read", "region": "a", "count": 1, "expect": {
                    "minflt": 0, "majflt": 1, "f.cached": len(cold), "a.Rss": kb(min(win, len(cold)))}},
                {"op": "file", "file": "g", "pages": 64},
                {"op": "map", "region": "r", "pages": 64, "prot": "r", "file": "g"},
                {"op": "madvise", "region": "r", "advice": "random"},
                {"op": "read", "region": "r", "count": 1,
                 "expect": {"minflt": 0, "majflt": 1, "g.cached": 1, "r.Rss": kb(1)}},
                {"op": "read", "region": "r", "first": 1, "count": 1,
                 "expect": {"majflt": 1, "g.cached": 2, "r.Rss": kb(2)}},
                {"op": "evict", "file": "f", "note": "mapped pages stay cached",
                 "expect": {"f.cached": min(win, len(cold))}},
            ],
        },
        {
            "name": "file_readahead_mark",
            "description": "a cold fault in a 16 MiB file: readahead of read_ahead_kb around it with a mark "
                           "ra/4 from its end; fault-around skips the marked page; a fault on it is minor "
                           "and reads the next window (FC1)",
            "steps": [
                {"op": "file", "file": "f", "pages": big},
                {"op": "map", "region": "one", "pages": 1, "prot": "r", "file": "f", "offset": big_idx,
                 "note": "one page: the fault-around of a major fault is timing-dependent"},
                {"op": "read", "region": "one", "count": 1, "expect": {
                    "minflt": 0, "majflt": 1, "f.cached": len(sync), "one.Rss": kb(1),
                    "data_sum": fill_byte(big_idx)}},
                {"op": "map", "region": "a", "pages": big, "prot": "r", "file": "f"},
                {"op": "read", "region": "a", "first": near, "count": 1,
                 "note": "fault-around skips the marked page",
                 "expect": {"minflt": 1, "majflt": 0, "a.Rss": kb(near_mapped)}},
                {"op": "read", "region": "a", "first": mark, "count": 1, "note": "the mark: the next window",
                 "expect": {"minflt": 1, "majflt": 0, "f.cached": len(sync) + after_mark,
                            "a.Rss": kb(near_mapped + 1)}},
            ],
        },
        {
            "name": "file_large_folio",
            "description": "a file written in one write() is one 64-page folio: a read fault maps it whole, a "
                           "shared write fault maps it whole and dirty, a private write copies one page; a file "
                           "cached page by page beside it maps a 16-page window (FL)",
            "steps": [
                {"op": "file", "file": "big", "pages": 64, "fill": "one-write", "cached": True},
                {"op": "folios", "file": "big", "expect": {"big.folios": 1, "big.large": 64, "big.dirty": 0}},
                {"op": "file", "file": "small", "pages": 64, "cached": True},
                {"op": "folios", "file": "small", "expect": {"small.folios": 64, "small.large": 0}},
                {"op": "map", "region": "a", "pages": 64, "prot": "r", "file": "big"},
                {"op": "read", "region": "a", "first": 5, "count": 1,
                 "expect": {"minflt": 1, "a.Rss": kb(64), "data_sum": fill_byte(5)}},
                {"op": "read", "region": "a", "expect": {"minflt": 0}},
                {"op": "map", "region": "b", "pages": 64, "prot": "r", "file": "small"},
                {"op": "read", "region": "b", "first": 5, "count": 1, "expect": {"minflt": 1, "b.Rss": kb(win)}},
                {"op": "file", "file": "big2", "pages": 64, "fill": "one-write", "cached": True},
                {"op": "map", "region": "s", "pages": 64, "shared": True, "file": "big2"},
                {"op": "write", "region": "s", "first": 5, "count": 1, "value": 9,
                 "expect": {"minflt": 1, "s.Rss": kb(64), "s.Private_Dirty": kb(64)}},
                {"op": "folios", "file": "big2", "expect": {"big2.folios": 1, "big2.dirty": 64}},
                {"op": "map", "region": "p", "pages": 64, "file": "big"},
                {"op": "write", "region": "p", "first": 7, "count": 1, "value": 9,
                 "expect": {"minflt": 1, "copied": 0, "p.Rss": kb(1), "p.Anonymous": kb(1)}},
            ],
        },
        {
            "name": "file_large_folio_table",
            "description": "a read fault maps a whole large folio only as the first fault of a fresh page "
                           "table; in an existing table, or for a folio across the table boundary, the "
                           "16-page window; a shared write fault maps the whole folio in either (FL)",
            "steps": [
                {"op": "file", "file": "f", "pages": 128},
                {"op": "fwrite", "file": "f", "first": 64, "count": 64, "value": 7,
                 "note": "an uncached, aligned 64-page range: one 64-page folio"},
                {"op": "fwrite", "file": "f", "first": 0, "count": 1, "value": 5},
                {"op": "fsync", "file": "f"},
                {"op": "folios", "file": "f", "expect": {"f.folios": 2, "f.large": 64, "f.cached": 65}},
                {"op": "map", "region": "a", "pages": 128, "prot": "r", "file": "f"},
                {"op": "read", "region": "a", "count": 1, "expect": {"minflt": 1, "a.Rss": kb(1), "data_sum": 5}},
                {"op": "read", "region": "a", "first": 70, "count": 1, "note": "the table exists: the window",
                 "expect": {"minflt": 1, "a.Rss": kb(1 + win), "data_sum": 7}},
                {"op": "map", "region": "p", "pages": 128, "file": "f"},
                {"op": "write", "region": "p", "first": 70, "count": 1, "value": 9,
                 "expect": {"minflt": 1, "p.Rss": kb(1), "p.Anonymous": kb(1)}},
                {"op": "read", "region": "p", "first": 64, "count": 64, "note": "the table exists: windows",
                 "expect": {"minflt": 64 // win, "p.Rss": kb(64)}},
                {"op": "map", "region": "s", "pages": 128, "shared": True, "file": "f"},
                {"op": "read", "region": "s", "count": 1, "expect": {"minflt": 1, "s.Rss": kb(1)}},
                {"op": "write", "region": "s", "first": 70, "count": 1, "value": 9,
                 "note": "a shared write fault: the whole folio, also in an existing table",
                 "expect": {"minflt": 1, "s.Rss": kb(65), "s.Shared_Dirty": kb(64), "s.Private_Dirty": 0}},
                {"op": "file", "file": "g", "pages": 1000, "fill": "one-write", "cached": True},
                {"op": "folios", "file": "g", "expect": {"g.folios": 6, "g.large": 1000}},
                {"op": "map", "region": "x", "pages": 900, "prot": "r", "file": "g", "offset": 32,
                 "note": "the 256-page folio 512..767 at virtual 480..735: across the table boundary"},
                {"op": "read", "region": "x", "first": 500, "count": 1, "expect": {"minflt": 1, "x.Rss": kb(win)}},
            ],
        },
    ]


FILE_SUITE_NAMES = tuple(d["name"] for d in file_dicts())
