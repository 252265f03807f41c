"""The seed demo: fork() and copy-on-write, step by step, like a lecture slide.

Process A maps two pages and writes both; A forks B (the page tables are
copied, every entry write-protected in both); B writes page 0 (a fault, a
copy); A writes page 0 (a fault, but the frame is reused); B exits and its
frames are freed; A writes page 1 (reused: nobody shares it any more).

After each step the demo prints both page tables, the physical frames in use
and the fault counters.  Every number it prints is read back from the
simulator (``page_table()``, ``frames()``, ``translate()``, ``stats``,
``smaps()``); the text around them only names what is shown.

>>> import io
>>> buf = io.StringIO()
>>> run_demo(buf)
>>> STEP_TITLES[3] in buf.getvalue()
True
"""
from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from .. import FrameFlags, Translation
from ..machine import Machine
from ..process import Process

__all__ = ["run_demo", "STEP_TITLES", "DEMO_FRAMES"]

#: The step titles, in order.  They are part of the demo's stable output.
STEP_TITLES: Tuple[str, ...] = (
    "Step 1: A maps two pages",
    "Step 2: A writes both pages",
    "Step 3: A forks B (copy-on-write)",
    "Step 4: B writes page 0: fault, copy",
    "Step 5: A writes page 0: fault, reuse",
    "Step 6: B exits",
    "Step 7: A writes page 1: fault, reuse",
)

#: The demo machine's memory, in frames of its page size (a small machine keeps the tables short).
DEMO_FRAMES = 64


@dataclass(frozen=True)
class _Glyphs:
    yes: str
    no: str
    arrow: str
    rule: str


_UNICODE = _Glyphs(yes="✓", no="✗", arrow="→", rule="─")
_ASCII = _Glyphs(yes="yes", no="no", arrow="->", rule="-")


def _can_encode(out: TextIO) -> bool:
    encoding = getattr(out, "encoding", None)
    if not encoding:  # io.StringIO and friends hold str: anything goes
        return True
    try:
        "".join((_UNICODE.yes, _UNICODE.no, _UNICODE.arrow, _UNICODE.rule)).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _flag_names(flags: int) -> str:
    names = [f.name for f in FrameFlags if flags & f and f.name]
    return "|".join(names) if names else "-"


class _Slide:
    """Prints the state of the machine and of the demo's processes."""

    def __init__(self, out: TextIO, machine: Machine, glyphs: _Glyphs, width: int = 78) -> None:
        self.out = out
        self.m = machine
        self.g = glyphs
        self.width = width
        self.names: Dict[int, str] = {}  # pid -> "A", "B"
        self.procs: List[Process] = []
        self.base_vpage = 0  # first virtual page of the demo region

    # -- plumbing -------------------------------------------------------------------
    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def label(self, p: Process) -> str:
        return f"{self.names[p.pid]} (pid {p.pid})"

    def mark(self, flag: bool) -> str:
        return self.g.yes if flag else self.g.no

    def title(self, index: int) -> None:
        self.line()
        self.line(self.g.rule * self.width)
        self.line(STEP_TITLES[index])
        self.line(self.g.rule * self.width)

    def explain(self, *sentences: str) -> None:
        """Prints the sentences as one paragraph, wrapped to the slide's width."""
        self.line(textwrap.fill(" ".join(sentences), self.width, break_on_hyphens=False))

    def page_index(self, vpage: int) -> int:
        """The page's index within the demo region (page 0, page 1)."""
        return vpage - self.base_vpage

    def frame_info(self, frame: int) -> str:
        """'refcount 2, mapcount 2, flags ANON' of a used frame (from ``frames()``)."""
        for number, refcount, mapcount, flags in self.m.frames().tolist():
            if number == frame:
                return f"refcount {refcount}, mapcount {mapcount}, flags {_flag_names(flags)}"
        return "not in use"

    def describe(self, t: Optional[Translation]) -> str:
        """One entry, as 'frame 5, read-only' (from ``translate``)."""
        if t is None:
            return "not present"
        access = "writable" if t.writable else "read-only"
        return f"frame {t.frame}, {access}" + (", dirty" if t.dirty else "")

    # -- the slide --------------------------------------------------------------------
    def show(self) -> None:
        """Prints every live process's page table, the frames in use and the counters."""
        live = [p for p in self.procs if p.alive]
        owners: Dict[int, List[str]] = {}
        for p in self.procs:
            self.line()
            if p not in live:
                self.line(f"  {self.label(p)}: exited, no page table")
                continue
            table = p.page_table()
            self.line(f"  {self.label(p)} page table ({len(table)} present entries)")
            if not len(table):
                continue
            head = f"    {'page':<6}{'virtual address':<18}{'frame':>6}  {'writable':<9}{'dirty':<6}"
            self.line((head + ("data" if self.m.store_data else "")).rstrip())
            for vpage, frame, writable, dirty in table[["vpage", "frame", "writable", "dirty"]].tolist():
                owners.setdefault(frame, []).append(f"{self.names[p.pid]} page {self.page_index(vpage)}")
                addr = vpage * self.m.page_size
                row = (
                    f"    {self.page_index(vpage):<6}{addr:<#18x}{frame:>6}  "
                    f"{self.mark(writable):<9}{self.mark(dirty):<6}"
                )
                if self.m.store_data:
                    row += self._data(p, addr)
                self.line(row.rstrip())
        self._frames(owners)
        self._counters(live)

    def _data(self, p: Process, addr: int) -> str:
        # A read of a present page: a hit, so it changes no counter.
        raw = p.read(addr, 16).split(b"\0", 1)[0]
        return repr(raw.decode("ascii", "replace")) if raw else "(zeros)"

    def _frames(self, owners: Dict[int, List[str]]) -> None:
        s = self.m.stats
        self.line()
        self.line(
            f"  Physical frames in use: {s.frames_used} of {s.frames_total} "
            f"(data {s.data_frames}, page tables {s.page_table_frames}; free {s.frames_free})"
        )
        self.line(f"    {'frame':>5}  {'kind':<11}{'refcount':>8}{'mapcount':>10}  {'flags':<16}mapped by")
        for frame, refcount, mapcount, flags in self.m.frames().tolist():
            kind = "page table" if flags & FrameFlags.PAGETABLE else "data"
            users = ", ".join(owners.get(frame, [])) or "-"
            self.line(
                f"    {frame:>5}  {kind:<11}{refcount:>8}{mapcount:>10}  {_flag_names(flags):<16}{users}"
            )

    def _counters(self, live: Sequence[Process]) -> None:
        self.line()
        self.line("  Fault counters (minor faults, by kind) and memory (kB, from smaps)")
        columns = ("minflt", "zero-fill", "cow-copy", "cow-reuse", "copied", "tables", "Rss", "Pss")
        widths = [max(len(c) + 1, 7) for c in columns]
        self.line(f"    {'':<10}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
        for p in self.procs:
            st = p.stats  # readable after exit too: the final counters
            if p in live:
                sm = p.smaps()
                rss, pss = str(sm["Rss"]), str(sm["Pss"])
            else:
                rss = pss = "exited"
            values = (
                st.minflt,
                st.faults_zero_fill,
                st.faults_cow_copy,
                st.faults_cow_reuse,
                st.pages_copied,
                st.page_table_frames,
                rss,
                pss,
            )
            self.line(f"    {self.label(p):<10}" + "".join(f"{v:>{w}}" for v, w in zip(values, widths)))
        s = self.m.stats
        self.line(
            f"    machine: minflt {s.minflt}, pages copied {s.pages_copied}, forks {s.forks}, "
            f"frames allocated {s.frames_allocated}, freed {s.frames_freed}"
        )


def run_demo(
    out: Optional[TextIO] = None,
    *,
    page_size: int = 4096,
    store_data: bool = True,
    ascii: Optional[bool] = None,
) -> None:
    """Runs the fork/copy-on-write walk-through and prints it.

    Args:
        out: where to print (default: ``sys.stdout`` at call time).
        page_size: 4096, 16384 or 65536.
        store_data: data mode (the pages' bytes are shown) or metadata mode.
        ascii: print yes/no and ASCII rules instead of ✓/✗ and box lines; None
            chooses ASCII only when ``out``'s encoding cannot encode the symbols.

    Raises:
        InvalidArgument: an unsupported page size.
    """
    if out is None:
        out = sys.stdout
    if ascii is None:
        ascii = not _can_encode(out)
    glyphs = _ASCII if ascii else _UNICODE
    with Machine(memory=DEMO_FRAMES * page_size, page_size=page_size, store_data=store_data) as m:
        _scenario(_Slide(out, m, glyphs), m)
    out.flush()


def _scenario(s: _Slide, m: Machine) -> None:
    g = s.g
    mode = "data mode: frames hold bytes" if m.store_data else "metadata mode: no bytes are kept"
    s.explain(
        f"cowsim demo: fork() and copy-on-write on a machine of {m.stats.frames_total} usable frames",
        f"of {m.page_size} bytes with {m.levels}-level page tables ({mode}).",
    )

    # Step 1 -----------------------------------------------------------------------
    a = m.spawn()
    s.names[a.pid] = "A"
    s.procs.append(a)
    a.mmap(2 * m.page_size)
    region = a.regions[0]
    s.base_vpage = region.start // m.page_size
    page0, page1 = region.start, region.start + m.page_size
    s.title(0)
    s.explain(
        f"A private read-write region of {region.length // m.page_size} pages now spans",
        f"[{region.start:#x}, {region.end:#x}).",
        "mmap only records the region: no page is touched, so no data frame is used yet.",
        "The one frame in use is A's root page table, allocated by spawn.",
    )
    s.show()

    # Step 2 -----------------------------------------------------------------------
    outcomes = [a.touch(page0, write=True), a.touch(page1, write=True)]
    if m.store_data:
        a.write(page0, b"A:first")
        a.write(page1, b"A:second")
    s.title(1)
    s.explain(
        f"Each first write faults ({outcomes[0].name}, {outcomes[1].name}): the handler allocates",
        "a zeroed frame and maps it writable and dirty, owned by A alone (ANON|EXCLUSIVE).",
        "The first fault also allocates the missing page-table levels on the way down:",
        f"A now holds {a.stats.page_table_frames} table frames.",
    )
    s.show()

    # Step 3 -----------------------------------------------------------------------
    b = a.fork()
    s.names[b.pid] = "B"
    s.procs.append(b)
    s.title(2)
    s.explain(
        "fork copies the page tables, not the pages: B's entries point at A's frames.",
        "Each shared frame gains a reference and a mapping and loses EXCLUSIVE, and each",
        f"writable entry is write-protected in both processes ({g.yes} {g.arrow} {g.no});",
        "dirty bits stay. No fault is counted.",
        f"B needed {b.stats.page_table_frames} table frames of its own and no data frame;",
        "each process's Pss is now half of the shared pages.",
    )
    s.show()

    # Step 4 -----------------------------------------------------------------------
    before = b.translate(page0)
    shared = s.frame_info(before.frame) if before else "not present"
    outcome = b.touch(page0, write=True)
    if m.store_data:
        b.write(page0, b"B:first")
    after = b.translate(page0)
    s.title(3)
    s.explain(
        f"B's entry for page 0 was {s.describe(before)}: the write faults ({outcome.name}).",
        f"Its frame is shared ({shared}), so the handler copies the page",
        "to a new frame, and the old frame loses one reference and one mapping.",
        f"B's page 0 is now {s.describe(after)}; A's is still {s.describe(a.translate(page0))}.",
    )
    s.show()

    # Step 5 -----------------------------------------------------------------------
    before = a.translate(page0)
    alone = s.frame_info(before.frame) if before else "not present"
    outcome = a.touch(page0, write=True)
    if m.store_data:
        a.write(page0, b"A:again")
    after = a.translate(page0)
    s.title(4)
    s.explain(
        f"A's entry for page 0 was still {s.describe(before)}, so the write faults too",
        f"({outcome.name}). But B no longer uses that frame ({alone}):",
        "it is reused in place and marked EXCLUSIVE again, no copy.",
        f"A's page 0 is now {s.describe(after)}. Whoever writes first copies; the other reuses.",
    )
    s.show()

    # Step 6 -----------------------------------------------------------------------
    used_before = m.stats.frames_used
    b.exit()
    s.title(5)
    s.explain(
        "exit drops one reference per mapped frame, frees every frame that reaches zero",
        "(B's private copy) and frees all of B's page tables:",
        f"frames in use {used_before} {g.arrow} {m.stats.frames_used}.",
        f"A's page 1 is still {s.describe(a.translate(page1))}: exit does not touch A's entries.",
    )
    s.show()

    # Step 7 -----------------------------------------------------------------------
    before = a.translate(page1)
    alone = s.frame_info(before.frame) if before else "not present"
    outcome = a.touch(page1, write=True)
    after = a.translate(page1)
    s.title(6)
    s.explain(
        f"A's page 1 was {s.describe(before)}, so the write faults ({outcome.name}).",
        f"With B gone the frame is A's alone ({alone}): reused, no copy.",
        f"A's page 1 is now {s.describe(after)}.",
    )
    s.show()
    m.check()
    s.line()
    s.line(
        f"Summary: minor faults {m.stats.minflt}, pages copied {m.stats.pages_copied}, "
        f"peak frames in use {m.stats.frames_peak}."
    )
