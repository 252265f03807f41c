"""Fidelity check: run the same scenario on the host kernel and in cowsim, compare.

For every step and metric a :class:`Row` records the kernel's value, cowsim's
value, the scenario's stated expectation (if any) and whether they agree.
smaps values (kB) must be equal; fault counts must be equal too, unless a
tolerance is given (``fault_tolerance``; the default 0 has held on every run
so far, see docs/VALIDATION.md).

The kernel's values come from one run of the scenario when they agree with
cowsim's (and the predictions).  When any value disagrees, the scenario's
kernel side is run again, up to ``kernel_reruns`` fresh times (default 3):
each value is then the kernel's when two runs or more gave it and no other
value was given as often (:func:`settle_kernel_runs`), and that value is
compared with cowsim's exactly.  A value the runs did not settle is *kernel
noise* (``Row.noise``, with the values seen in ``Row.kernel_seen``): not a
cowsim mismatch, but no success either (``all_match`` is False).  A kernel
that gives the same value twice and cowsim another is a mismatch.

Scenarios with ``huge`` regions (transparent huge pages) run on the kernel
side only where THP can work as cowsim models it (4 KiB pages, THP not
"never", PMD-size THP only, the huge zero page on for scenarios that read a
huge region before writing it: :func:`thp_skip_reason`), and their kernel
values are set aside as inconclusive when the kernel did not get a huge page
at a region's first write (memory too fragmented).  Either way the scenario's
reason is in ``ValidationResult.skipped`` and cowsim is still checked against
the scenario's predictions.

>>> from cowsim.scenario import Scenario
>>> sc = Scenario.from_dict({"name": "t", "steps": [
...     {"op": "map", "region": "a", "pages": 8},
...     {"op": "write", "region": "a", "expect": {"minflt": 8}}]})
>>> res = run_scenario(sc, kernel=False)        # cowsim against the expectations only
>>> res.all_match
True
>>> [(r.metric, r.cowsim, r.expected) for r in res.rows if r.step == 2 and not r.region]
[('minflt', 8, 8), ('copied', 0, None), ('segv', 0, None)]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from . import kernel as _kernel
from .errors import CowsimError, InvalidArgument, SegmentationFault
from .machine import Machine
from .process import Process
from .scenario import REGION_METRICS, Measurements, Scenario, Step, load_scenarios
from .suite import SUITE_NAMES, builtin_suite

__all__ = [
    "Row",
    "ValidationResult",
    "simulate",
    "run_scenario",
    "run_suite",
    "add_validate_parser",
    "FAULT_METRICS",
    "kernel_run",
    "settle_kernel_runs",
    "thp_skip_reason",
    "KERNEL_RERUNS",
]

#: Fresh kernel runs allowed for a scenario whose first run disagrees.
KERNEL_RERUNS = 3

#: Metrics compared with ``fault_tolerance``; everything else is exact.
FAULT_METRICS = ("minflt",)

Perturb = Callable[[Scenario, Measurements], Optional[Measurements]]


# ----------------------------------------------------------------------- cowsim side
def _machine_memory(scenario: Scenario, page_size: int) -> int:
    frames = scenario.total_pages() * len(scenario.procs) + 64 * len(scenario.procs) * (len(scenario.regions) + 4)
    frames += 1024
    mib = 1 << 20
    return max(64 * mib, (frames * page_size + mib - 1) // mib * mib)


def _region_smaps(p: Process, start: int, end: int) -> Dict[str, int]:
    out = dict.fromkeys(REGION_METRICS, 0)
    for reg in p.regions:
        if reg.start < end and reg.end > start:
            out["mapped"] = 1
            sm = p.smaps(reg.start)
            for name in REGION_METRICS[1:]:
                out[name] += sm[name]
    return out


def simulate(
    scenario: Scenario, *, page_size: int = 4096, fault_around: int = 65536
) -> Measurements:
    """Runs a scenario in cowsim and measures exactly what the kernel probe measures.

    Args:
        scenario: the scenario.
        page_size: the simulated page size (the host's, to compare with the kernel).
        fault_around: cowsim's shmem fault-around window in bytes (0 disables it).

    Returns:
        Values by ``(step, proc, region, metric)`` for every reported step.
    """
    layout = scenario.layout(page_size)
    out: Measurements = {}
    with Machine(
        memory=_machine_memory(scenario, page_size), page_size=page_size, store_data=True, fault_around=fault_around
    ) as m:
        procs: Dict[str, Process] = {scenario.root: m.spawn()}
        for step in scenario.steps:
            values = _sim_step(scenario, step, procs, layout, page_size)
            if step.implicit:
                continue
            for proc in scenario.measured_procs(step):
                p = procs[proc]
                for metric in scenario.process_metrics(step):
                    out[(step.number, proc, "", metric)] = values.get(metric)
                for region, spec in scenario.regions.items():
                    start = layout[region]
                    sm = _region_smaps(p, start, start + spec.pages * page_size)
                    for metric in REGION_METRICS:
                        out[(step.number, proc, region, metric)] = sm[metric]
        m.check()
    return out


def _sim_step(
    scenario: Scenario, step: Step, procs: Dict[str, Process], layout: Dict[str, int], ps: int
) -> Dict[str, Optional[int]]:
    op = step.op
    if op == "exit":
        procs[step.proc].exit()
        return {"minflt": 0}
    p = procs[step.proc]
    f0 = p.stats.minflt
    if op == "fork":
        procs[step.child or ""] = p.fork()
        return {}
    if op == "measure":
        return {"minflt": 0}
    assert step.region is not None
    base = layout[step.region] + step.first * ps
    length = step.count * ps
    if op == "map":
        spec = scenario.regions[step.region]
        p.mmap(spec.pages * ps, prot=spec.prot, shared=spec.shared, addr=base, huge=spec.huge)
    elif op == "mprotect":
        p.mprotect(base, length, step.prot or "rw")
    elif op == "munmap":
        p.munmap(base, length)
    elif op == "madvise":
        p.madvise(base, length, step.advice or "")
    else:  # read / write, one byte at the start of each page, stopping at a segfault
        addrs = [base + k * ps for k in range(step.count)]
        before = [p.translate(a) for a in addrs]
        segv, total = 0, 0
        data = bytes([step.value])
        for a in addrs:
            try:
                if op == "write":
                    p.write(a, data)
                else:
                    total += p.read(a, 1)[0]
            except SegmentationFault:
                segv = 1
                break
        copied = 0
        for a, b in zip(addrs, before):
            after = p.translate(a)
            if b is not None and b.frame != 0 and after is not None and after.frame != b.frame:
                copied += 1
        values: Dict[str, Optional[int]] = {"minflt": p.stats.minflt - f0, "copied": copied, "segv": segv}
        if op == "read":
            values["data_sum"] = total
        return values
    return {"minflt": p.stats.minflt - f0}


# ------------------------------------------------------------------- THP, kernel side
THP_SYSFS = "/sys/kernel/mm/transparent_hugepage"


def _sysfs_choice(path: str) -> Optional[str]:
    """The bracketed choice of a sysfs selector ("always [madvise] never" -> "madvise")."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else text.strip()


def _reads_huge_zero_page(scenario: Scenario) -> bool:
    """True when a read of a huge region comes before the region's first write."""
    written = set()
    for step in scenario.steps:
        if step.region and scenario.regions[step.region].huge:
            if step.op == "write":
                written.add(step.region)
            elif step.op == "read" and step.region not in written:
                return True
    return False


def thp_skip_reason(scenario: Scenario, page_size: Optional[int] = None, sysfs: str = THP_SYSFS) -> Optional[str]:
    """Why the host kernel cannot run a scenario's huge regions as cowsim models
    them, or None (also None for a scenario without huge regions).

    Args:
        scenario: the scenario.
        page_size: the host's page size (None: ``os.sysconf``).
        sysfs: the THP sysfs directory (for tests).
    """
    if not scenario.uses_thp:
        return None
    ps = page_size if page_size is not None else _kernel._page_size()
    if ps != 4096:
        return f"transparent huge pages are modelled for 4 KiB pages only; the host page size is {ps}"
    enabled = _sysfs_choice(f"{sysfs}/enabled")
    if enabled is None:
        return f"the kernel has no transparent huge pages ({sysfs}/enabled is missing)"
    if enabled == "never":
        return "transparent huge pages are disabled (transparent_hugepage/enabled = never)"
    pmd = _sysfs_choice(f"{sysfs}/hugepages-2048kB/enabled")
    if pmd == "never":
        return "2 MiB transparent huge pages are disabled (hugepages-2048kB/enabled = never)"
    try:
        sizes = sorted(os.listdir(sysfs))
    except OSError:
        sizes = []
    for d in sizes:
        if d.startswith("hugepages-") and d != "hugepages-2048kB":
            choice = _sysfs_choice(f"{sysfs}/{d}/enabled")
            if choice not in (None, "never") and not (choice == "inherit" and enabled == "never"):
                return (f"multi-size THP is on for anonymous memory ({d}/enabled = {choice}); "
                        "cowsim models 2 MiB huge pages only")
    if _reads_huge_zero_page(scenario):
        zero = _read_text(f"{sysfs}/use_zero_page")
        if zero != "1":
            return f"the scenario reads the huge zero page, but transparent_hugepage/use_zero_page = {zero}"
    return None


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def kernel_run(scenario: Scenario, timeout: float = 60.0) -> "_kernel.KernelRun":
    """The scenario on the host kernel (``cowsim.kernel.run_scenario``; huge regions are
    mapped there with ``MADV_HUGEPAGE``).

    Raises:
        KernelUnavailable: the host cannot run the probe.
        KernelProbeError: the probe failed.
    """
    return _kernel.run_scenario(scenario, timeout=timeout)


def _thp_inconclusive(scenario: Scenario, kernel: Measurements, sim: Measurements) -> Optional[str]:
    """Why the kernel's values of a THP scenario say nothing about cowsim: at the
    first write of a huge region the kernel mapped less of it with huge pages
    than cowsim (it could not allocate them: fragmented memory, a memory limit)."""
    for name, spec in scenario.regions.items():
        if not spec.huge:
            continue
        step = next((s for s in scenario.steps if s.op == "write" and s.region == name), None)
        if step is None or step.implicit:
            continue
        key = (step.number, step.proc, name, "AnonHugePages")
        k, c = kernel.get(key), sim.get(key)
        if k is not None and c is not None and k < c:
            return (f"the kernel did not allocate a huge page at the first write of region {name!r} "
                    f"(step {step.number}: AnonHugePages {k} kB, cowsim {c} kB); fragmented memory? "
                    "The kernel side of this scenario is inconclusive")
    return None


# ------------------------------------------------------------------------ comparison
@dataclass(frozen=True)
class Row:
    """One compared value.

    Attributes:
        scenario, step, action: where (``action`` describes the step, e.g.
            ``"child: write a[0:16]=2"``).
        proc: the process measured.
        region: the region, or "" for a process metric.
        metric: ``minflt``, ``copied``, ``segv``, ``data_sum`` or an smaps field.
        kernel, cowsim: the two values (None: not measured on that side).
        expected: the scenario's prediction, or None.
        tolerance: the allowed |kernel - cowsim| (0 = exact).
        match: True/False, or None when nothing could be compared.
        note: the step's note from the scenario.
        kernel_seen: the kernel's value in each run, in order, when the runs of
            the scenario gave different values here (else empty).
        noise: the kernel runs did not settle on a value (``kernel`` is None;
            ``match`` then only says whether cowsim met the prediction).
    """

    scenario: str
    step: int
    action: str
    proc: str
    region: str
    metric: str
    kernel: Optional[int]
    cowsim: Optional[int]
    expected: Optional[int]
    tolerance: int
    match: Optional[bool]
    note: str = ""
    kernel_seen: Tuple[Optional[int], ...] = ()
    noise: bool = False

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _match(k: Optional[int], c: Optional[int], e: Optional[int], tol: int) -> Optional[bool]:
    checks: List[bool] = []
    if k is not None and c is not None:
        checks.append(abs(k - c) <= tol)
    if e is not None:
        if c is not None:
            checks.append(c == e)
        if k is not None:
            checks.append(abs(k - e) <= tol)
    return all(checks) if checks else None


@dataclass
class ValidationResult:
    """The rows of one or more scenarios.

    Attributes:
        rows: every compared value (plain records, see :class:`Row`).
        kernel_info: host facts (empty when the kernel side did not run).
        simulator: the cowsim options used.
        warnings: anything that may blur the comparison.
        kernel_skipped: why the kernel side did not run, or None.
        skipped: scenarios whose kernel side was skipped or set aside on a host
            where it could run (THP scenarios: see :func:`thp_skip_reason`), with
            the reason; their rows compare cowsim with the predictions only.
        kernel_runs: how many times each scenario's kernel side ran (1, or more
            when the first run disagreed and was re-run).
    """

    rows: List[Row] = field(default_factory=list)
    kernel_info: Dict[str, str] = field(default_factory=dict)
    simulator: Dict[str, Any] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    kernel_skipped: Optional[str] = None
    descriptions: Dict[str, str] = field(default_factory=dict)
    skipped: Dict[str, str] = field(default_factory=dict)
    kernel_runs: Dict[str, int] = field(default_factory=dict)

    @property
    def compared(self) -> List[Row]:
        return [r for r in self.rows if r.match is not None]

    @property
    def mismatches(self) -> List[Row]:
        return [r for r in self.rows if r.match is False]

    @property
    def noise(self) -> List[Row]:
        """Rows whose kernel runs did not settle on a value (see :class:`Row`)."""
        return [r for r in self.rows if r.noise]

    @property
    def all_match(self) -> bool:
        """True when every compared value agrees (and at least one was compared)
        and every kernel value was settled (no kernel noise)."""
        return bool(self.compared) and not self.mismatches and not self.noise

    @property
    def verdict(self) -> str:
        """"ALL MATCH", "MISMATCH" (cowsim, the kernel or a prediction disagree),
        "KERNEL NOISE" (only the kernel's runs disagreed) or "nothing compared"."""
        if self.mismatches:
            return "MISMATCH"
        if self.noise:
            return "KERNEL NOISE"
        return "ALL MATCH" if self.all_match else "nothing compared"

    @property
    def kernel_reruns(self) -> int:
        """Kernel runs beyond the first, over all scenarios."""
        return sum(n - 1 for n in self.kernel_runs.values() if n > 1)

    def extend(self, other: "ValidationResult") -> None:
        self.rows.extend(other.rows)
        self.kernel_info = self.kernel_info or other.kernel_info
        self.simulator = self.simulator or other.simulator
        self.warnings.extend(w for w in other.warnings if w not in self.warnings)
        self.kernel_skipped = self.kernel_skipped or other.kernel_skipped
        self.descriptions.update(other.descriptions)
        self.skipped.update(other.skipped)
        self.kernel_runs.update(other.kernel_runs)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "all_match": self.all_match,
            "verdict": self.verdict,
            "compared": len(self.compared),
            "mismatches": len(self.mismatches),
            "kernel_noise": len(self.noise),
            "kernel_runs": self.kernel_runs,
            "kernel_reruns": self.kernel_reruns,
            "kernel": self.kernel_info,
            "kernel_skipped": self.kernel_skipped,
            "skipped": self.skipped,
            "simulator": self.simulator,
            "warnings": self.warnings,
            "rows": [r.as_dict() for r in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_table(self, all_regions: bool = False) -> str:
        """The rows as a text table, one line per (step, process, region).

        A cell holds the value when kernel and cowsim agree, marked ``*`` when it
        also equals the scenario's stated prediction; ``K5|S7`` when they differ;
        ``5(e6)`` when both agree but the prediction differs; ``.`` not measured.
        Lines of regions not mapped in the measured process (all zero on both
        sides) are left out unless ``all_regions``.
        """
        return _format_table(self, all_regions)


_PROC_COLS = (("minflt", "flt"), ("copied", "copied"), ("segv", "segv"), ("data_sum", "data"))
_REGION_COLS = (
    ("mapped", "map"),
    ("Rss", "Rss"),
    ("Pss", "Pss"),
    ("Pss_Dirty", "Pss_Dty"),
    ("Shared_Clean", "Sh_Cln"),
    ("Shared_Dirty", "Sh_Dty"),
    ("Private_Clean", "Pr_Cln"),
    ("Private_Dirty", "Pr_Dty"),
    ("Anonymous", "Anon"),
    ("AnonHugePages", "AnHuge"),
)


def _cell(r: Optional[Row]) -> str:
    if r is None:
        return ""
    k, c, e = r.kernel, r.cowsim, r.expected
    if r.noise:
        return "K~" + "/".join("." if v is None else str(v) for v in r.kernel_seen) + f"|S{c}"
    if k is None and c is None:
        return "."
    if k is not None and c is not None and abs(k - c) > r.tolerance:
        return f"K{k}|S{c}"
    v = c if c is not None else k
    if e is not None:
        return f"{v}*" if r.match else f"{v}(e{e})"
    return str(v)


def _format_table(res: ValidationResult, all_regions: bool) -> str:
    lines: List[str] = []
    info = res.kernel_info
    if info:
        lines.append(
            f"kernel: Linux {info.get('release', '?')} {info.get('machine', '')}, {info.get('cpu', '?')}, "
            f"page size {info.get('page_size', '?')}, fault_around {info.get('fault_around_bytes', '?')}"
        )
    else:
        lines.append(f"kernel: not run ({res.kernel_skipped or 'disabled'}); cowsim against the predictions only")
    lines.append("cowsim: " + ", ".join(f"{k}={v}" for k, v in res.simulator.items()))
    lines.append("cells: v = kernel and cowsim agree; v* = and equal the stated prediction; "
                 "K|S = kernel|cowsim differ; v(eN) = prediction N missed; . = not measured; "
                 "K~a/b|S = kernel runs disagreed (noise)")
    headers = ["#", "step", "proc", *[h for _, h in _PROC_COLS], "region", *[h for _, h in _REGION_COLS], "ok"]
    body: List[List[str]] = []
    seps: List[int] = []
    by_scenario: Dict[str, List[Row]] = {}
    for r in res.rows:
        by_scenario.setdefault(r.scenario, []).append(r)
    for name, rows in by_scenario.items():
        seps.append(len(body))
        desc = res.descriptions.get(name, "")
        body.append([f"== {name}" + (f": {desc}" if desc else "")])
        if name in res.skipped:
            body.append([f"   kernel side skipped: {res.skipped[name]}"])
        if res.kernel_runs.get(name, 0) > 1:
            body.append([f"   kernel side run {res.kernel_runs[name]} times (the first run disagreed): "
                         + _runs_note(rows)])
        groups: Dict[Tuple[int, str], List[Row]] = {}
        for r in rows:
            groups.setdefault((r.step, r.proc), []).append(r)
        for (step, proc), grp in groups.items():
            proc_rows = {r.metric: r for r in grp if not r.region}
            regions: Dict[str, Dict[str, Row]] = {}
            for r in grp:
                if r.region:
                    regions.setdefault(r.region, {})[r.metric] = r
            shown = []
            for region, cells in regions.items():
                quiet = all(
                    (x.kernel in (0, None)) and (x.cowsim in (0, None)) and x.expected is None and x.match is not False
                    for x in cells.values()
                )
                if all_regions or not quiet:
                    shown.append(region)
            if not shown:
                shown = [""]
            first = True
            for region in shown:
                cells = regions.get(region, {})
                group_rows = list(cells.values()) + (list(proc_rows.values()) if first else [])
                ok = "FAIL" if any(x.match is False for x in group_rows) else (
                    "ok" if any(x.match for x in group_rows) else "-")
                line = [str(step) if first else "", grp[0].action if first else "", proc if first else ""]
                line += [(_cell(proc_rows.get(m)) if first else "") for m, _ in _PROC_COLS]
                line += [region] + [_cell(cells.get(m)) for m, _ in _REGION_COLS] + [ok]
                body.append(line)
                first = False
    widths = [len(h) for h in headers]
    for line in body:
        if len(line) == len(headers):
            widths = [max(w, len(c)) for w, c in zip(widths, line)]
    left = {1, 2, 7}

    def fmt(line: List[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()

    lines.append(fmt(headers))
    for line in body:
        lines.append(line[0] if len(line) == 1 else fmt(line))
    n, bad, noisy = len(res.compared), len(res.mismatches), len(res.noise)
    lines.append(
        f"{n} values compared, {bad} mismatch{'es' if bad != 1 else ''}"
        + (f", {noisy} kernel noise" if noisy else "") + f": {res.verdict}"
    )
    if res.kernel_runs:
        total = sum(res.kernel_runs.values())
        again = sorted(name for name, k in res.kernel_runs.items() if k > 1)
        plural = "s" if len(res.kernel_runs) != 1 else ""
        lines.append(f"kernel runs: {total} for {len(res.kernel_runs)} scenario{plural}"
                     + (f" (re-run: {', '.join(f'{a} x{res.kernel_runs[a]}' for a in again)})" if again else ""))
    for name, why in res.skipped.items():
        lines.append(f"skipped on the kernel side: {name}: {why}")
    for w in res.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _runs_note(rows: List[Row]) -> str:
    """The values the kernel runs disagreed on, for the table."""
    parts = []
    for r in rows:
        if r.kernel_seen:
            where = f"step {r.step} {r.proc} {r.region + '.' if r.region else ''}{r.metric}"
            seen = ", ".join("." if v is None else str(v) for v in r.kernel_seen)
            parts.append(f"{where} gave {seen}" + (" (noise)" if r.noise else f" (settled {r.kernel})"))
    return "; ".join(parts) if parts else "the re-runs gave the first run's values"


def settle_kernel_runs(
    runs: Sequence[Measurements],
) -> Tuple[Measurements, Dict[Tuple[int, str, str, str], Tuple[Optional[int], ...]], List[Tuple[int, str, str, str]]]:
    """The kernel's value of every key from several runs of one scenario.

    A value is settled when at least two runs gave it and no other value was
    given by as many runs (one run alone settles everything).

    Returns:
        ``(values, seen, unsettled)``: the settled values (None where unsettled),
        the values of every run for the keys where the runs differ, and the
        unsettled keys.

    >>> settle_kernel_runs([{(1, "p", "", "minflt"): 1}, {(1, "p", "", "minflt"): 0},
    ...                     {(1, "p", "", "minflt"): 0}])
    ({(1, 'p', '', 'minflt'): 0}, {(1, 'p', '', 'minflt'): (1, 0, 0)}, [])
    """
    if not runs:
        raise InvalidArgument("settle_kernel_runs needs at least one run")
    keys = list(dict.fromkeys(key for run in runs for key in run))
    values: Measurements = {}
    seen: Dict[Tuple[int, str, str, str], Tuple[Optional[int], ...]] = {}
    unsettled = []
    for key in keys:
        got = tuple(run.get(key) for run in runs)
        if all(v == got[0] for v in got):
            values[key] = got[0]
            continue
        seen[key] = got
        counts = Counter(got).most_common()
        if counts[0][1] >= 2 and counts[0][1] > counts[1][1]:
            values[key] = counts[0][0]
        else:
            values[key] = None
            unsettled.append(key)
    return values, seen, unsettled


def _kernel_disagrees(rows: Iterable[Row]) -> bool:
    """True when some kernel value differs from cowsim's or from the prediction."""
    for r in rows:
        if r.kernel is None:
            continue
        if r.cowsim is not None and abs(r.kernel - r.cowsim) > r.tolerance:
            return True
        if r.expected is not None and abs(r.kernel - r.expected) > r.tolerance:
            return True
    return False


def _compare(
    scenario: Scenario,
    kernel: Optional[Measurements],
    sim: Measurements,
    fault_tolerance: int,
    seen: Optional[Dict[Tuple[int, str, str, str], Tuple[Optional[int], ...]]] = None,
    unsettled: Iterable[Tuple[int, str, str, str]] = (),
) -> List[Row]:
    rows: List[Row] = []
    seen = seen or {}
    noisy = set(unsettled)
    for step in scenario.reported_steps():
        action = f"{step.proc}: {step.describe()}" if step.op != "exit" else f"{step.proc}: exit"
        for key in scenario.keys(step):
            _, proc, region, metric = key
            k = kernel.get(key) if kernel is not None else None
            c = sim.get(key)
            e = step.expect.get((proc, region, metric))
            tol = fault_tolerance if metric in FAULT_METRICS else 0
            rows.append(
                Row(scenario.name, step.number, action, proc, region, metric, k, c, e, tol, _match(k, c, e, tol),
                    step.note, seen.get(key, ()), key in noisy)
            )
    return rows


def run_scenario(
    scenario: Scenario,
    *,
    kernel: Any = True,
    fault_around: Optional[int] = None,
    perturb: Optional[Perturb] = None,
    fault_tolerance: int = 0,
    timeout: float = 60.0,
    kernel_reruns: int = KERNEL_RERUNS,
) -> ValidationResult:
    """Runs one scenario on the kernel and in cowsim and compares them.

    Args:
        scenario: the scenario.
        kernel: True to run the kernel side (``KernelUnavailable`` if it cannot);
            "auto" to run it when possible; False for cowsim against the
            predictions only; or a ready ``cowsim.kernel.KernelRun``.
        fault_around: cowsim's fault-around bytes; None = the kernel's (65536).
            A wrong value here is the supported way to see a mismatch.
        perturb: called as ``perturb(scenario, measurements)`` on cowsim's
            values before the comparison; may edit them in place or return new
            ones (for testing that a wrong simulator is caught).
        fault_tolerance: allowed |kernel - cowsim| for fault counts.
        timeout: seconds for the kernel probe.
        kernel_reruns: fresh kernel runs allowed when the first run disagrees
            with cowsim or a prediction (0: the first run decides; a given
            ``KernelRun`` is never re-run).  See the module docstring.

    Raises:
        InvalidArgument: a negative ``kernel_reruns``.
        KernelUnavailable: ``kernel=True`` on a host that cannot run the probe.
        KernelProbeError: the probe failed.
    """
    if isinstance(kernel_reruns, bool) or not isinstance(kernel_reruns, int) or kernel_reruns < 0:
        raise InvalidArgument(f"kernel_reruns must be an int >= 0, not {kernel_reruns!r}")
    reason = None
    skipped: Optional[str] = None
    run: Optional[_kernel.KernelRun] = None
    can_rerun = False
    if isinstance(kernel, _kernel.KernelRun):
        run = kernel
    elif kernel is True or kernel == "auto":
        can_rerun = True
        reason = _kernel.unavailable_reason()
        if reason is None:
            skipped = thp_skip_reason(scenario)
            if skipped is None:
                run = kernel_run(scenario, timeout=timeout)
        elif kernel is True:
            raise _kernel.KernelUnavailable(reason)
    elif kernel is not False:
        raise TypeError(f"kernel must be True, False, 'auto' or a KernelRun, not {kernel!r}")
    # THP scenarios are stated for 4 KiB pages (cowsim models THP there only)
    page_size = int(run.info.get("page_size", 4096)) if run else 4096
    if skipped is not None:
        page_size = 4096
    if fault_around is None:
        fault_around = _kernel.fault_around_bytes()[0] if (run or skipped) else 65536
    sim = simulate(scenario, page_size=page_size, fault_around=fault_around)
    if perturb is not None:
        changed = perturb(scenario, sim)
        if changed is not None:
            sim = changed
    measured = run.measurements if run else None
    if run is not None and scenario.uses_thp:
        skipped = _thp_inconclusive(scenario, run.measurements, sim)
        if skipped is not None:
            measured = None
    rows = _compare(scenario, measured, sim, fault_tolerance)
    runs = [run] if run is not None else []
    if measured is not None and can_rerun and kernel_reruns and _kernel_disagrees(rows):
        # a host event (see docs/VALIDATION.md) or a real disagreement: fresh runs tell
        for _ in range(kernel_reruns):
            runs.append(kernel_run(scenario, timeout=timeout))
            measured, seen, unsettled = settle_kernel_runs([r.measurements for r in runs])
            if not unsettled:
                break
        rows = _compare(scenario, measured, sim, fault_tolerance, seen, unsettled)
    warnings: List[str] = []
    for r in runs:
        warnings.extend(w for w in r.warnings if w not in warnings)
    info: Dict[str, str] = dict(run.info) if run else {}
    if not info and skipped is not None:
        info = _kernel.host_info()
    return ValidationResult(
        rows=rows,
        kernel_info=info,
        simulator={"page_size": page_size, "fault_around": fault_around, "fault_tolerance": fault_tolerance},
        warnings=warnings,
        kernel_skipped=None if (run or skipped) else (reason or "kernel=False"),
        descriptions={scenario.name: scenario.description},
        skipped={scenario.name: skipped} if skipped else {},
        kernel_runs={scenario.name: len(runs)} if runs else {},
    )


def run_suite(
    scenarios: Optional[Iterable[Scenario]] = None,
    *,
    progress: Optional[Callable[[str], None]] = None,
    **kwargs: Any,
) -> ValidationResult:
    """Runs several scenarios (default: the built-in suite) and merges the rows.

    Keyword arguments are those of :func:`run_scenario`.
    """
    if scenarios is None:
        # the predictions are the kernel's: computed for its page size and window
        reason = _kernel.unavailable_reason()
        page_size = _kernel._page_size() if reason is None else 4096
        fa_kernel = _kernel.fault_around_bytes()[0] if reason is None else 65536
        scenarios = builtin_suite(page_size=page_size, fault_around=fa_kernel)
    total = ValidationResult()
    for sc in scenarios:
        if progress:
            progress(f"validate: {sc.name}")
        total.extend(run_scenario(sc, **kwargs))
    return total


# ------------------------------------------------------------------------------ CLI
def add_validate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers ``validate`` on an argparse subparsers object.

    The parser's ``func`` default is called with the parsed args and returns
    the exit status: 0 all match, 1 a mismatch, 2 a bad scenario, 3 the kernel
    side is unavailable (use ``--sim-only``) or failed, 4 kernel noise (the
    kernel's own runs did not agree on some value; nothing else is wrong).
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="run scenarios on the host kernel and in cowsim and compare them",
        description="Runs scenarios (default: the built-in suite) in real processes on the host "
        "Linux kernel and in cowsim, and prints per step and metric both values.",
    )
    p.add_argument("--scenario", metavar="FILE", action="append", default=[],
                   help="a .json or .toml scenario file (repeatable); none: the built-in suite")
    p.add_argument("--only", metavar="NAME", action="append", default=[],
                   help=f"run only this built-in scenario (repeatable): {', '.join(SUITE_NAMES)}")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.add_argument("--sim-only", action="store_true",
                   help="do not run the kernel side: check cowsim against the scenarios' predictions")
    p.add_argument("--sim-fault-around", metavar="BYTES", type=int, default=None,
                   help="cowsim's fault-around window in bytes (None: the kernel's); 0 shows a deliberate mismatch")
    p.add_argument("--fault-tolerance", metavar="N", type=int, default=0,
                   help="allowed difference of fault counts (0: exact)")
    p.add_argument("--kernel-reruns", metavar="N", type=int, default=KERNEL_RERUNS,
                   help="fresh kernel runs of a scenario whose first run disagrees; a value counts when two runs "
                        "give it (0: the first run decides)")
    p.add_argument("--all-regions", action="store_true", help="also print lines of unmapped, all-zero regions")
    p.set_defaults(func=_cmd_validate)
    return p


def _cmd_validate(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        scenarios: List[Scenario] = []
        for path in args.scenario:
            scenarios.extend(load_scenarios(path))
        if args.only or not args.scenario:
            reason = _kernel.unavailable_reason()
            ps = _kernel._page_size() if reason is None else 4096
            fa = _kernel.fault_around_bytes()[0] if reason is None else 65536
            scenarios.extend(builtin_suite(args.only or None, page_size=ps, fault_around=fa))
        if args.fault_tolerance < 0:
            raise CowsimError("--fault-tolerance must not be negative")
        if args.kernel_reruns < 0:
            raise CowsimError("--kernel-reruns must not be negative")
    except CowsimError as exc:
        print(f"cowsim validate: {exc}", file=sys.stderr)
        return 2
    if not args.sim_only:
        reason = _kernel.unavailable_reason()
        if reason:
            print(f"cowsim validate: the kernel side is unavailable: {reason} (use --sim-only)", file=sys.stderr)
            return 3
    try:
        res = run_suite(
            scenarios,
            progress=progress,
            kernel=not args.sim_only,
            fault_around=args.sim_fault_around,
            fault_tolerance=args.fault_tolerance,
            kernel_reruns=args.kernel_reruns,
        )
    except (_kernel.KernelUnavailable, _kernel.KernelProbeError) as exc:
        print(f"cowsim validate: {exc}", file=sys.stderr)
        return 3
    except CowsimError as exc:
        print(f"cowsim validate: {exc}", file=sys.stderr)
        return 2
    print(res.to_json() if args.json else res.to_table(args.all_regions))
    if res.all_match:
        return 0
    return 4 if res.noise and not res.mismatches else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m cowsim.validate`` (the same as ``cowsim validate``)."""
    parser = argparse.ArgumentParser(prog="cowsim")
    sub = parser.add_subparsers(dest="command", required=True)
    add_validate_parser(sub)
    args = parser.parse_args(["validate", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
