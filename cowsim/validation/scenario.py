"""Scenarios: a short list of memory steps that both the host kernel and cowsim can run.

A scenario maps named regions, accesses page ranges of them, changes their
protection or advice, forks, and lets processes exit.  After every step the
process that performed it is measured: its minor faults during the step (and,
for accesses, how many pages were copied, whether a segmentation fault
stopped it, and the sum of the bytes read), and the smaps fields of every
named region.  ``cowsim.host.probe`` runs a scenario in real processes;
``cowsim.validation`` runs it in cowsim and compares the two.

A scenario is written as JSON or TOML::

    {"name": "cow", "steps": [
        {"op": "map",   "region": "a", "pages": 64},
        {"op": "write", "region": "a"},
        {"op": "fork",  "child": "child",
         "expect": {"a.Pss": 128, "child:a.Pss": 128}},
        {"op": "write", "proc": "child", "region": "a", "count": 16,
         "expect": {"minflt": 16, "copied": 16}},
        {"op": "exit",  "proc": "child"}]}

Steps (``proc`` defaults to the root process, named by the scenario's
``root``, default ``"parent"``; ranges are ``first`` page, default 0, and
``count`` pages, default the rest of the region):

==========  ==================================================================
op          fields
==========  ==================================================================
map         ``region`` (new name), ``pages`` (> 0), ``shared`` (bool, default
            false), ``prot`` ("rw" default, "r", "none"), ``huge`` (bool,
            default false: transparent huge pages, private regions only)
read        ``region``, ``first``, ``count``: reads one byte of each page
write       ``region``, ``first``, ``count``, ``value`` (0-255, default 1):
            writes one byte at the start of each page
mprotect    ``region``, ``first``, ``count``, ``prot``
munmap      ``region``, ``first``, ``count``
madvise     ``region``, ``first``, ``count``, ``advice``: "dontfork",
            "dofork", "wipeonfork", "keeponfork" or "dontneed"
fork        ``child`` (new process name); ``proc`` is the parent
exit        ``proc`` (not the root); its parent reaps it and is measured
measure     nothing: just measures ``proc``
==========  ==================================================================

Files (``file``, ``fsync``, ``evict``, ``fwrite``, ``fread``, ``folios``, and
``map`` with ``file``/``offset``, ``madvise`` "random"/"normal") and their
metrics are described in :mod:`cowsim.validation.file_steps`.

Every step may carry ``note`` (a string shown in tables) and ``expect``: a
table of predicted values, keyed ``"[proc:]metric"`` for process metrics or
``"[proc:]region.Field"`` for region metrics (``proc`` defaults to the
process the step measures first).  Processes still alive at the end exit
implicitly (children first); those steps are not reported.

Process metrics: ``minflt`` (not for fork), and for accesses ``copied``
(pages whose frame changed from a real frame to another one: CoW copies),
``segv`` (1 if a segmentation fault stopped the access) and, for reads,
``data_sum`` (sum of the bytes read).  Region metrics, in kB as in
``/proc/PID/smaps`` (summed over the region's VMAs): ``mapped`` (0/1),
``Rss``, ``Pss``, ``Pss_Dirty``, ``Shared_Clean``, ``Shared_Dirty``,
``Private_Clean``, ``Private_Dirty``, ``Anonymous``, ``AnonHugePages``.

A ``huge`` region is THP-eligible: cowsim maps it with
``Process.mmap(..., huge=True)``, the kernel probe with ``MADV_HUGEPAGE``
(other regions get ``MADV_NOHUGEPAGE``).  Every region starts on a 2 MiB
boundary (see :meth:`Scenario.layout`), so with 4 KiB pages each whole 512-page
span of a huge region can be mapped by one 2 MiB huge page; ``AnonHugePages``
counts the 2 MiB-mapped part.  Huge regions need 4 KiB pages.

>>> sc = Scenario.from_dict({"name": "demo", "steps": [
...     {"op": "map", "region": "a", "pages": 4},
...     {"op": "write", "region": "a", "count": 2, "expect": {"minflt": 2}}]})
>>> [s.describe() for s in sc.steps]
['map a (4 pages, rw private)', 'write a[0:2]=1']
>>> sc.steps[1].expect
{('parent', '', 'minflt'): 2}
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import InvalidArgument
from . import file_steps as _fs
from .file_steps import FileSpec

__all__ = [
    "OPS",
    "PROTS",
    "ADVICE",
    "PROCESS_METRICS",
    "REGION_METRICS",
    "Key",
    "Measurements",
    "RegionSpec",
    "Step",
    "Scenario",
    "LAYOUT_BASE",
    "HUGE_PAGES",
]

OPS = ("map", "read", "write", "mprotect", "munmap", "madvise", "fork", "exit", "measure") + _fs.FILE_OPS
PROTS = ("none", "r", "rw")
ADVICE = ("dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed", "random", "normal")
PROCESS_METRICS = ("minflt", "copied", "segv", "data_sum")
REGION_METRICS = (
    "mapped",
    "Rss",
    "Pss",
    "Pss_Dirty",
    "Shared_Clean",
    "Shared_Dirty",
    "Private_Clean",
    "Private_Dirty",
    "Anonymous",
    "AnonHugePages",
)

#: A measurement's key: (step number, process, region or "" for process metrics, metric).
Key = Tuple[int, str, str, str]
#: Measured values by key; None where the side could not measure it.
Measurements = Dict[Key, Optional[int]]

#: Where the first region is placed (both sides use the same addresses).
LAYOUT_BASE = 0x6000_0000_0000
#: 4 KiB pages per transparent huge page (2 MiB); huge regions need 4 KiB pages.
HUGE_PAGES = 512

MAX_STEPS = 400
MAX_PROCS = 16
MAX_REGIONS = 32
MAX_REGION_PAGES = 1 << 18
MAX_TOTAL_PAGES = 1 << 19

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,31}$")
_RANGE_OPS = ("read", "write", "mprotect", "munmap", "madvise")
_COMMON = {"op", "proc", "expect", "note"}
_FIELDS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    # op: (required, optional)
    "map": (("region", "pages"), ("shared", "prot", "huge", "file", "offset")),
    "read": (("region",), ("first", "count")),
    "write": (("region",), ("first", "count", "value")),
    "mprotect": (("region", "prot"), ("first", "count")),
    "munmap": (("region",), ("first", "count")),
    "madvise": (("region", "advice"), ("first", "count")),
    **_fs.FIELDS,
    "fork": (("child",), ()),
    "exit": (("proc",), ()),
    "measure": ((), ()),
}
_MAPPED, _DONTFORK = 1, 2


@dataclass(frozen=True)
class RegionSpec:
    """A named region: mapped once, by ``proc`` at step ``step``."""

    name: str
    pages: int
    shared: bool
    prot: str
    proc: str
    step: int
    huge: bool = False
    file: Optional[str] = None
    offset: int = 0


@dataclass(frozen=True)
class Step:
    """One validated step (``number`` counts from 1)."""

    number: int
    op: str
    proc: str
    region: Optional[str] = None
    first: int = 0
    count: int = 0
    pages: int = 0
    shared: bool = False
    prot: Optional[str] = None
    advice: Optional[str] = None
    value: int = 1
    child: Optional[str] = None
    huge: bool = False
    note: str = ""
    expect: Dict[Tuple[str, str, str], int] = field(default_factory=dict)
    implicit: bool = False
    file: Optional[str] = None
    offset: int = 0
    fill: str = ""
    cached: str = ""
    last_bytes: int = 0

    def describe(self) -> str:
        """A short human description, e.g. ``"write a[0:16]=7"``."""
        rng = f"{self.region}[{self.first}:{self.first + self.count}]"
        if self.op == "map":
            kind = "shared" if self.shared else "private huge" if self.huge else "private"
            if self.file:
                kind += f" of {self.file}" + (f"@{self.offset}" if self.offset else "")
            return f"map {self.region} ({self.pages} pages, {self.prot} {kind})"
        if self.op in _fs.FILE_OPS:
            return _fs.describe(self)
        if self.op == "read":
            return f"read {rng}"
        if self.op == "write":
            return f"write {rng}={self.value}"
        if self.op == "mprotect":
            return f"mprotect {rng} {self.prot}"
        if self.op == "munmap":
            return f"munmap {rng}"
        if self.op == "madvise":
            return f"madvise {rng} {self.advice}"
        if self.op == "fork":
            return f"fork -> {self.child}"
        return self.op


def _err(where: str, msg: str) -> InvalidArgument:
    return InvalidArgument(f"{where}: {msg}")


def _int(where: str, name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(where, f"field {name!r} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise _err(where, f"field {name!r} must be in [{low}, {high}], got {value}")
    return value


def _name(where: str, fname: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise _err(where, f"field {fname!r} must be a name (letters, digits, '_', '-'; up to 32), got {value!r}")
    return value


def _choice(where: str, fname: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _err(where, f"field {fname!r} must be one of {', '.join(choices)}; got {value!r}")
    return value


class Scenario:
    """A validated scenario.  Build with :meth:`from_dict` or :func:`cowsim.validation.load_scenarios`.

    Attributes:
        name: identifier.
        description: free text.
        root: the name of the initial process.
        steps: the steps, implicit final exits included (``Step.implicit``).
        regions: ``RegionSpec`` by name, in mapping order.
        procs: process names in creation order (the root first).
        parents: the parent of every non-root process.
    """

    def __init__(
        self,
        name: str,
        description: str,
        root: str,
        steps: Sequence[Step],
        regions: Mapping[str, RegionSpec],
        procs: Sequence[str],
        parents: Mapping[str, str],
        source: Optional[Dict[str, Any]] = None,
        files: Optional[Mapping[str, FileSpec]] = None,
    ) -> None:
        self.name = name
        self.description = description
        self.root = root
        self.steps: Tuple[Step, ...] = tuple(steps)
        self.regions: Dict[str, RegionSpec] = dict(regions)
        self.procs: Tuple[str, ...] = tuple(procs)
        self.parents: Dict[str, str] = dict(parents)
        self.files: Dict[str, FileSpec] = dict(files or {})
        self._source = source or {}

    def __repr__(self) -> str:
        return f"<cowsim.Scenario {self.name!r}: {len(self.reported_steps())} steps, regions {list(self.regions)}>"

    # -- queries ---------------------------------------------------------------------
    def reported_steps(self) -> List[Step]:
        """The steps the scenario states (without the implicit final exits)."""
        return [s for s in self.steps if not s.implicit]

    def measured_procs(self, step: Step) -> Tuple[str, ...]:
        """The processes measured after ``step``: the actor; a fork measures parent and
        child; an exit measures the parent that reaped the process."""
        if step.op == "fork":
            assert step.child is not None
            return (step.proc, step.child)
        if step.op == "exit":
            return (self.parents[step.proc],)
        return (step.proc,)

    @staticmethod
    def process_metrics(step: Step, files: bool = False) -> Tuple[str, ...]:
        """The process metrics measured after a step of this kind (``files``: in a
        scenario with files, which adds ``majflt``, ``sigbus`` and the status counters)."""
        if step.op == "read":
            out: Tuple[str, ...] = ("minflt", "copied", "segv", "data_sum")
        elif step.op == "write":
            out = ("minflt", "copied", "segv")
        elif step.op == "fork":
            out = ()
        elif step.op == "fread":
            out = ("minflt", "data_sum")
        else:
            out = ("minflt",)
        if not files:
            return out
        extra: Tuple[str, ...] = ("majflt",) if "minflt" in out else ()
        if step.op in ("read", "write"):
            extra += ("sigbus",)
        return out + extra + _fs.STATUS_METRICS

    def region_metrics(self) -> Tuple[str, ...]:
        """The region metrics (``Pss_File`` too in a scenario with files)."""
        return REGION_METRICS + (("Pss_File",) if self.files else ())

    def file_metrics(self, step: Step, name: str) -> Tuple[str, ...]:
        """The metrics of file ``name`` after ``step`` (none before its creation)."""
        spec = self.files[name]
        if step.number < spec.step:
            return ()
        return _fs.FILE_METRICS + (_fs.FOLIO_METRICS if step.op == "folios" and step.file == name else ())

    def keys(self, step: Step) -> List[Key]:
        """Every measurement key of a step, in table order."""
        out: List[Key] = []
        files = bool(self.files)
        for proc in self.measured_procs(step):
            out.extend((step.number, proc, "", m) for m in self.process_metrics(step, files))
            for region in self.regions:
                out.extend((step.number, proc, region, m) for m in self.region_metrics())
            for name in self.files:
                out.extend((step.number, proc, name, m) for m in self.file_metrics(step, name))
        return out

    def layout(self, page_size: int = 4096) -> Dict[str, int]:
        """The fixed start address of every region (both sides map there).

        Each region starts on a page-table boundary (``page_size * page_size/8``
        bytes: 2 MiB for 4 KiB pages), so shmem fault-around windows, which are
        clamped to one page table, fall identically on both sides; at least one
        whole table's span separates regions (room for guard pages).

        >>> sc = Scenario.from_dict({"name": "x", "steps": [
        ...     {"op": "map", "region": "a", "pages": 600},
        ...     {"op": "map", "region": "b", "pages": 1}]})
        >>> {k: hex(v) for k, v in sc.layout().items()}
        {'a': '0x600000000000', 'b': '0x600000600000'}
        """
        span = page_size * (page_size // 8)
        addr = LAYOUT_BASE
        out = {}
        for spec in self.regions.values():
            out[spec.name] = addr
            end = addr + (spec.pages + 1) * page_size
            addr = (end + span - 1) // span * span + span
        return out

    @property
    def uses_files(self) -> bool:
        """True when the scenario creates files."""
        return bool(self.files)

    @property
    def uses_thp(self) -> bool:
        """True when a region is mapped with ``huge``."""
        return any(r.huge for r in self.regions.values())

    def total_pages(self) -> int:
        return sum(r.pages for r in self.regions.values())

    def to_dict(self) -> Dict[str, Any]:
        """The scenario as a JSON-ready dict (``from_dict`` of it gives it back)."""
        out: Dict[str, Any] = json.loads(json.dumps(self._source))
        return out

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> "Scenario":
        """Validates a scenario given as a dict (as loaded from JSON or TOML).

        Raises:
            InvalidArgument: naming the scenario, the step and the field at fault.
        """
        where0 = f"{source}: scenario" if source else "scenario"
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where0}: must be a table/object, got {type(data).__name__}")
        unknown = set(data) - {"name", "description", "root", "steps"}
        if unknown:
            raise InvalidArgument(f"{where0}: unknown field(s) {', '.join(sorted(unknown))}")
        if "name" not in data:
            raise InvalidArgument(f"{where0}: missing field 'name'")
        name = _name(where0, "name", data["name"])
        where = f"{source}: scenario {name!r}" if source else f"scenario {name!r}"
        description = data.get("description", "")
        if not isinstance(description, str):
            raise _err(where, "field 'description' must be a string")
        root = _name(where, "root", data.get("root", "parent"))
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise _err(where, "field 'steps' must be a non-empty list")
        if len(raw_steps) > MAX_STEPS:
            raise _err(where, f"at most {MAX_STEPS} steps, got {len(raw_steps)}")
        b = _Builder(where, root)
        for i, raw in enumerate(raw_steps, 1):
            b.add(i, raw)
        b.finish()
        source_dict = {"name": name, "steps": raw_steps}
        if description:
            source_dict["description"] = description
        if root != "parent":
            source_dict["root"] = root
        return cls(name, description, root, b.steps, b.regions, b.procs, b.parents, source_dict, b.files)


class _Builder:
    """Validates steps one by one, tracking which pages each process maps."""

    def __init__(self, where: str, root: str) -> None:
        self.where = where
        self.root = root
        self.steps: List[Step] = []
        self.regions: Dict[str, RegionSpec] = {}
        self.procs: List[str] = [root]
        self.parents: Dict[str, str] = {}
        self.alive: List[str] = [root]
        # proc -> region -> per-page flags (_MAPPED, _DONTFORK)
        self.pages: Dict[str, Dict[str, bytearray]] = {root: {}}
        self.files: Dict[str, FileSpec] = {}

    def add(self, i: int, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise _err(f"{self.where} step {i}", f"must be a table/object, got {type(raw).__name__}")
        op = raw.get("op")
        if op is None:
            raise _err(f"{self.where} step {i}", "missing field 'op'")
        if op not in OPS:
            raise _err(f"{self.where} step {i}", f"field 'op': unknown step {op!r}; expected one of {', '.join(OPS)}")
        where = f"{self.where} step {i} ({op})"
        required, optional = _FIELDS[op]
        for fname in required:
            if fname not in raw:
                raise _err(where, f"missing field {fname!r}")
        unknown = set(raw) - _COMMON - set(required) - set(optional)
        if unknown:
            raise _err(where, f"unknown field(s) {', '.join(repr(u) for u in sorted(unknown))}")
        proc = _name(where, "proc", raw.get("proc", self.root))
        if proc not in self.alive:
            state = "has exited" if proc in self.procs else "does not exist (yet)"
            raise _err(where, f"field 'proc': process {proc!r} {state}")
        note = raw.get("note", "")
        if not isinstance(note, str):
            raise _err(where, "field 'note' must be a string")
        kw: Dict[str, Any] = {"number": i, "op": op, "proc": proc, "note": note}
        if op == "map":
            self._map(where, raw, kw)
        elif op in _RANGE_OPS:
            self._range(where, raw, kw)
        elif op == "fork":
            self._fork(where, raw, kw)
        elif op in _fs.FILE_OPS:
            _fs.add_file_step(self, where, raw, kw)
        elif op == "exit":
            if proc == self.root:
                raise _err(where, f"field 'proc': the root process {proc!r} cannot exit (it ends the scenario)")
            live_children = [c for c, p in self.parents.items() if p == proc and c in self.alive]
            if live_children:
                raise _err(where, f"process {proc!r} still has live children {live_children}; exit them first")
            self.alive.remove(proc)
        step = Step(**kw)
        expect = self._expect(where, raw.get("expect", {}), step)
        step = Step(**kw, expect=expect)
        self.steps.append(step)

    def finish(self) -> None:
        # the processes still alive exit, children before parents
        n = len(self.steps)
        for proc in reversed(self.procs):
            if proc != self.root and proc in self.alive:
                n += 1
                self.alive.remove(proc)
                self.steps.append(Step(number=n, op="exit", proc=proc, implicit=True))

    def _map(self, where: str, raw: Dict[str, Any], kw: Dict[str, Any]) -> None:
        region = _name(where, "region", raw["region"])
        if region in self.regions:
            raise _err(where, f"field 'region': region {region!r} is already defined (step {self.regions[region].step})")
        if len(self.regions) >= MAX_REGIONS:
            raise _err(where, f"at most {MAX_REGIONS} regions")
        pages = _int(where, "pages", raw["pages"], 1, MAX_REGION_PAGES)
        total = sum(r.pages for r in self.regions.values()) + pages
        if total > MAX_TOTAL_PAGES:
            raise _err(where, f"the regions exceed {MAX_TOTAL_PAGES} pages in total")
        shared = raw.get("shared", False)
        if not isinstance(shared, bool):
            raise _err(where, f"field 'shared' must be true or false, got {shared!r}")
        prot = _choice(where, "prot", raw.get("prot", "rw"), PROTS)
        huge = raw.get("huge", False)
        if not isinstance(huge, bool):
            raise _err(where, f"field 'huge' must be true or false, got {huge!r}")
        if huge and shared:
            raise _err(where, "field 'huge': transparent huge pages are for private regions only, "
                       f"region {region!r} is shared")
        if region in self.files:
            raise _err(where, f"field 'region': the name {region!r} is already used by a file")
        _fs.map_file_fields(self, where, raw, kw)
        self.regions[region] = RegionSpec(region, pages, shared, prot, kw["proc"], kw["number"], huge,
                                          kw.get("file"), kw.get("offset", 0))
        self.pages[kw["proc"]][region] = bytearray([_MAPPED]) * pages
        kw.update(region=region, pages=pages, shared=shared, prot=prot, count=pages, huge=huge)

    def _range(self, where: str, raw: Dict[str, Any], kw: Dict[str, Any]) -> None:
        op, proc = kw["op"], kw["proc"]
        region = raw["region"]
        if not isinstance(region, str) or region not in self.regions:
            known = ", ".join(self.regions) or "none yet"
            raise _err(where, f"field 'region': unknown region {region!r} (defined so far: {known})")
        spec = self.regions[region]
        first = _int(where, "first", raw.get("first", 0), 0, spec.pages - 1)
        count = _int(where, "count", raw.get("count", spec.pages - first), 1, spec.pages - first)
        kw.update(region=region, first=first, count=count)
        if op == "write":
            kw["value"] = _int(where, "value", raw.get("value", 1), 0, 255)
        if op == "mprotect":
            kw["prot"] = _choice(where, "prot", raw["prot"], PROTS)
        if op == "madvise":
            kw["advice"] = _choice(where, "advice", raw["advice"], ADVICE)
            if spec.shared and kw["advice"] in ("wipeonfork", "keeponfork"):
                raise _err(where, f"field 'advice': {kw['advice']} is not allowed on shared region {region!r} (EINVAL)")
        flags = self.pages[proc].get(region)
        if op in ("mprotect", "madvise"):
            if flags is None or any(not (f & _MAPPED) for f in flags[first : first + count]):
                raise _err(
                    where,
                    f"pages [{first}, {first + count}) of region {region!r} are not all mapped in process {proc!r}",
                )
        if flags is None:
            return
        if op == "munmap":
            flags[first : first + count] = bytes(count)
        elif op == "madvise" and kw["advice"] in ("dontfork", "dofork"):
            for k in range(first, first + count):
                flags[k] = (flags[k] | _DONTFORK) if kw["advice"] == "dontfork" else (flags[k] & ~_DONTFORK)

    def _fork(self, where: str, raw: Dict[str, Any], kw: Dict[str, Any]) -> None:
        child = _name(where, "child", raw["child"])
        if child in self.procs:
            raise _err(where, f"field 'child': process name {child!r} is already used")
        if len(self.procs) >= MAX_PROCS:
            raise _err(where, f"at most {MAX_PROCS} processes")
        parent = kw["proc"]
        self.procs.append(child)
        self.alive.append(child)
        self.parents[child] = parent
        self.pages[child] = {
            r: bytearray(f if not f & _DONTFORK else 0 for f in flags) for r, flags in self.pages[parent].items()
        }
        kw["child"] = child

    def _expect(self, where: str, raw: Any, step: Step) -> Dict[Tuple[str, str, str], int]:
        if not isinstance(raw, dict):
            raise _err(where, "field 'expect' must be a table/object of metric: value")
        if step.op == "fork":
            measured: Tuple[str, ...] = (step.proc, step.child or "")
        elif step.op == "exit":
            measured = (self.parents[step.proc],)
        else:
            measured = (step.proc,)
        out: Dict[Tuple[str, str, str], int] = {}
        for key, value in raw.items():
            proc, sep, rest = str(key).rpartition(":")
            proc = proc if sep else measured[0]
            if proc not in measured:
                raise _err(where, f"field 'expect': key {key!r}: process {proc!r} is not measured by this step "
                           f"(measured: {', '.join(measured)})")
            region, dot, metric = rest.rpartition(".")
            if dot:
                if region in self.files:
                    _fs.check_file_metric(where, key, step, metric)
                elif region not in self.regions:
                    raise _err(where, f"field 'expect': key {key!r}: unknown region {region!r}")
                elif metric not in REGION_METRICS + (("Pss_File",) if self.files else ()):
                    raise _err(where, f"field 'expect': key {key!r}: unknown region metric {metric!r}; "
                               f"expected one of {', '.join(REGION_METRICS)}")
            else:
                if metric not in Scenario.process_metrics(step, bool(self.files)):
                    allowed = ", ".join(Scenario.process_metrics(step, bool(self.files))) or "none"
                    raise _err(where, f"field 'expect': key {key!r}: metric {metric!r} is not measured "
                               f"for {step.op} (measured: {allowed}; region metrics are 'region.Field')")
            out[(proc, region, metric)] = _int(where, f"expect.{key}", value, 0, 2**62)
        return out
