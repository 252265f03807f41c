"""Running a scenario on the host kernel and in cowsim, and comparing the two.

For every step and metric a :class:`Row` records the kernel's value, cowsim's
value, the scenario's stated expectation (if any) and whether they agree.
smaps values (kB) must be equal; fault counts must be equal too, unless a
tolerance is given (``fault_tolerance``; the default 0 has held on every run
so far, see docs/VALIDATION.md).

The kernel's values come from one run of the scenario when they agree with
cowsim's (and the predictions).  When any value disagrees, the scenario's
kernel side is run again, up to ``kernel_reruns`` fresh times (default 3):
each value is then the kernel's when two runs or more gave it and no other
value was given as often (:func:`~cowsim.validation.compare.settle_kernel_runs`), and that value is
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

>>> from cowsim.validation import Scenario
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

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, cast

from .. import Advice, Prot
from .. import errors as _errors
from ..errors import InvalidArgument, SegmentationFault
from ..host import probe as _probe
from . import host_side
from ..machine import Machine
from ..process import Process
from .compare import ValidationResult, _compare, _kernel_disagrees, settle_kernel_runs
from .file_steps import fill_byte
from .scenario import REGION_METRICS, Measurements, Scenario, Step
from .suite import DEFAULT_READAHEAD_KB, builtin_suite, default_readahead_kb

__all__ = [
    "simulate",
    "run_scenario",
    "run_suite",
    "kernel_run",
    "thp_skip_reason",
    "host_suite",
    "KERNEL_RERUNS",
    "THP_SYSFS",
]

#: Fresh kernel runs allowed for a scenario whose first run disagrees.
KERNEL_RERUNS = 3

Perturb = Callable[[Scenario, Measurements], Optional[Measurements]]



# ----------------------------------------------------------------------- cowsim side
def _machine_memory(scenario: Scenario, page_size: int) -> int:
    frames = scenario.total_pages() * len(scenario.procs) + 64 * len(scenario.procs) * (len(scenario.regions) + 4)
    frames += 1024 + 2 * sum(f.pages for f in scenario.files.values())  # the page cache
    mib = 1 << 20
    return max(64 * mib, (frames * page_size + mib - 1) // mib * mib)


def _region_smaps(p: Process, start: int, end: int, metrics: Iterable[str] = REGION_METRICS) -> Dict[str, int]:
    out = dict.fromkeys(metrics, 0)
    for reg in p.regions:
        if reg.start < end and reg.end > start:
            out["mapped"] = 1
            sm = p.smaps(reg.start)
            for name in out:
                if name != "mapped":
                    out[name] += sm[name]
    return out


def simulate(
    scenario: Scenario,
    *,
    page_size: int = 4096,
    fault_around: int = 65536,
    readahead_kb: Optional[int] = None,
) -> Measurements:
    """Runs a scenario in cowsim and measures exactly what the kernel probe measures.

    Args:
        scenario: the scenario.
        page_size: the simulated page size (the host's, to compare with the kernel).
        fault_around: cowsim's fault-around window in bytes (0 disables it).
        readahead_kb: the readahead window of a scenario with files (the host's
            ``read_ahead_kb``; None: ``DEFAULT_READAHEAD_KB``).

    Returns:
        Values by ``(step, proc, region, metric)`` for every reported step.

    Raises:
        InvalidArgument: a scenario with files on a core without them.
    """
    layout = scenario.layout(page_size)
    out: Measurements = {}
    kwargs: Dict[str, Any] = {}
    if scenario.uses_files and not hasattr(Machine, "file"):
        raise InvalidArgument(f"scenario {scenario.name!r} uses files, which this cowsim core does not simulate")
    if scenario.uses_files:
        kwargs["readahead_kb"] = DEFAULT_READAHEAD_KB if readahead_kb is None else readahead_kb
    files_on = scenario.uses_files
    with Machine(
        memory=_machine_memory(scenario, page_size), page_size=page_size, store_data=True, fault_around=fault_around,
        **kwargs,
    ) as m:
        procs: Dict[str, Process] = {scenario.root: m.spawn()}
        files: Dict[str, Any] = {}
        for step in scenario.steps:
            if step.op in ("file", "fsync", "evict", "fwrite", "fread", "folios"):
                values = _sim_file_step(m, step, procs[step.proc], files, page_size)
            else:
                values = _sim_step(scenario, step, procs, layout, page_size, files)
            if step.implicit:
                continue
            for proc in scenario.measured_procs(step):
                p = procs[proc]
                status = p.status().as_dict() if files_on else {}
                for metric in scenario.process_metrics(step, files_on):
                    out[(step.number, proc, "", metric)] = status[metric] if metric in status else values.get(metric)
                for region, spec in scenario.regions.items():
                    start = layout[region]
                    sm = _region_smaps(p, start, start + spec.pages * page_size, scenario.region_metrics())
                    for metric in scenario.region_metrics():
                        out[(step.number, proc, region, metric)] = sm[metric]
                for name in scenario.files:
                    for metric in scenario.file_metrics(step, name):
                        out[(step.number, proc, name, metric)] = _file_metric(files[name], metric)
        m.check()
    return out


def _file_metric(f: Any, metric: str) -> int:
    """A file's measured value: its size, cached pages, or (``folios`` steps) its folios."""
    if metric == "size":
        return int(f.size)
    if metric == "cached":
        return int(f.stats().cached)
    folios = f.folios()  # (first_page, npages, dirty)
    if metric == "folios":
        return len(folios)
    if metric == "dirty":
        return sum(n for _, n, dirty in folios if dirty)
    return sum(n for _, n, _ in folios if n > 1)  # "large"


def _sim_file_step(m: Machine, step: Step, p: Process, files: Dict[str, Any], ps: int) -> Dict[str, Optional[int]]:
    """A file step in cowsim (the file API of the file-backed core)."""
    stats = p.stats
    f0, m0 = stats.minflt, getattr(stats, "majflt", 0)
    data_sum: Optional[int] = None
    name = step.file or ""
    if step.op == "file":
        if step.fill == "none":
            f = m.file(step.pages * ps if not step.last_bytes else (step.pages - 1) * ps + step.last_bytes,  # type: ignore[attr-defined,unused-ignore]
                       name=name)
        else:
            f = m.file(0, name=name)  # type: ignore[attr-defined,unused-ignore]
            size = (step.pages - 1) * ps + step.last_bytes if step.last_bytes else step.pages * ps
            chunks = [bytes([fill_byte(k)]) * min(ps, size - k * ps) for k in range(step.pages)]
            if step.fill == "pages":
                for k, chunk in enumerate(chunks):
                    f.write(k * ps, chunk)
            else:
                f.write(0, b"".join(chunks))
        if step.cached != "dirty":
            f.sync()
        if step.cached == "no":
            f.evict()
        files[name] = f
    elif step.op == "fsync":
        files[name].sync()
    elif step.op == "evict":
        files[name].evict()
    elif step.op == "fwrite":
        files[name].write(step.first * ps, bytes([step.value]) * (step.count * ps))
    elif step.op == "fread":
        data = files[name].read(step.first * ps, step.count * ps)
        data_sum = sum(data[o] for o in range(0, len(data), ps))
    stats = p.stats
    return {"minflt": stats.minflt - f0, "majflt": getattr(stats, "majflt", 0) - m0, "data_sum": data_sum}


def _sim_step(
    scenario: Scenario, step: Step, procs: Dict[str, Process], layout: Dict[str, int], ps: int,
    files: Optional[Dict[str, Any]] = None,
) -> Dict[str, Optional[int]]:
    op = step.op
    if op == "exit":
        procs[step.proc].exit()
        return {"minflt": 0, "majflt": 0}
    p = procs[step.proc]
    f0 = p.stats.minflt
    m0 = getattr(p.stats, "majflt", 0)
    if op == "fork":
        procs[step.child or ""] = p.fork()
        return {}
    if op == "measure":
        return {"minflt": 0, "majflt": 0}
    assert step.region is not None
    base = layout[step.region] + step.first * ps
    length = step.count * ps
    if op == "map":
        spec = scenario.regions[step.region]
        if spec.file:
            assert files is not None
            p.mmap(spec.pages * ps, prot=cast(Prot, spec.prot), shared=spec.shared, addr=base,  # type: ignore[call-arg,unused-ignore]
                   file=files[spec.file], offset=spec.offset * ps)
        else:
            p.mmap(spec.pages * ps, prot=cast(Prot, spec.prot), shared=spec.shared, addr=base, huge=spec.huge)
    elif op == "mprotect":
        p.mprotect(base, length, cast(Prot, step.prot or "rw"))
    elif op == "munmap":
        p.munmap(base, length)
    elif op == "madvise":
        p.madvise(base, length, cast(Advice, step.advice or ""))  # (scenario files are checked on load)
    else:  # read / write, one byte at the start of each page, stopping at a segfault
        addrs = [base + k * ps for k in range(step.count)]
        before = [p.translate(a) for a in addrs]
        segv, sigbus, total = 0, 0, 0
        data = bytes([step.value])
        bus_error = getattr(_errors, "BusError", None)  # the file-backed core's SIGBUS
        for a in addrs:
            try:
                if op == "write":
                    p.write(a, data)
                else:
                    total += p.read(a, 1)[0]
            except SegmentationFault:
                segv = 1
                break
            except Exception as exc:
                if bus_error is None or not isinstance(exc, bus_error):
                    raise
                sigbus = 1
                break
        copied = 0
        for a, b in zip(addrs, before):
            after = p.translate(a)
            if b is not None and b.frame != 0 and after is not None and after.frame != b.frame:
                copied += 1
        values: Dict[str, Optional[int]] = {"minflt": p.stats.minflt - f0, "copied": copied, "segv": segv,
                                            "sigbus": sigbus, "majflt": getattr(p.stats, "majflt", 0) - m0}
        if op == "read":
            values["data_sum"] = total
        return values
    return {"minflt": p.stats.minflt - f0, "majflt": getattr(p.stats, "majflt", 0) - m0}


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
    ps = page_size if page_size is not None else _probe.host_page_size()
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


def kernel_run(scenario: Scenario, timeout: float = 60.0) -> host_side.HostRun:
    """The scenario on the host kernel (``cowsim.validation.host_side.run_scenario``; huge regions are
    mapped there with ``MADV_HUGEPAGE``).

    Raises:
        HostUnavailable: the host cannot run the probe.
        HostProbeError: the probe failed.
    """
    return host_side.run_scenario(scenario, timeout=timeout)


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
        kernel: True to run the kernel side (``HostUnavailable`` if it cannot);
            "auto" to run it when possible; False for cowsim against the
            predictions only; or a ready ``cowsim.validation.host_side.HostRun``.
        fault_around: cowsim's fault-around bytes; None = the kernel's (65536).
            A wrong value here is the supported way to see a mismatch.
        perturb: called as ``perturb(scenario, measurements)`` on cowsim's
            values before the comparison; may edit them in place or return new
            ones (for testing that a wrong simulator is caught).
        fault_tolerance: allowed |kernel - cowsim| for fault counts.
        timeout: seconds for the kernel probe.
        kernel_reruns: fresh kernel runs allowed when the first run disagrees
            with cowsim or a prediction (0: the first run decides; a given
            ``HostRun`` is never re-run).  See the module docstring.

    Raises:
        InvalidArgument: a negative ``kernel_reruns``.
        HostUnavailable: ``kernel=True`` on a host that cannot run the probe.
        HostProbeError: the probe failed.
    """
    if isinstance(kernel_reruns, bool) or not isinstance(kernel_reruns, int) or kernel_reruns < 0:
        raise InvalidArgument(f"kernel_reruns must be an int >= 0, not {kernel_reruns!r}")
    reason = None
    skipped: Optional[str] = None
    run: Optional[host_side.HostRun] = None
    can_rerun = False
    if isinstance(kernel, host_side.HostRun):
        run = kernel
    elif kernel is True or kernel == "auto":
        can_rerun = True
        reason = _probe.unavailable_reason()
        if reason is None:
            skipped = thp_skip_reason(scenario)
            if skipped is None and scenario.uses_files:
                skipped = _probe.files_unavailable_reason()
            if skipped is None:
                run = kernel_run(scenario, timeout=timeout)
        elif kernel is True:
            raise _probe.HostUnavailable(reason)
    elif kernel is not False:
        raise TypeError(f"kernel must be True, False, 'auto' or a HostRun, not {kernel!r}")
    # THP scenarios are stated for 4 KiB pages (cowsim models THP there only)
    page_size = int(run.info.get("page_size", 4096)) if run else 4096
    if skipped is not None:
        page_size = 4096
    if fault_around is None:
        fault_around = _probe.fault_around_bytes()[0] if (run or skipped) else 65536
    sim = simulate(scenario, page_size=page_size, fault_around=fault_around, readahead_kb=_readahead(run))
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
        info = _probe.host_info()
    return ValidationResult(
        rows=rows,
        kernel_info=info,
        simulator={"page_size": page_size, "fault_around": fault_around, "fault_tolerance": fault_tolerance,
                   **({"readahead_kb": _readahead(run) or DEFAULT_READAHEAD_KB} if scenario.uses_files else {})},
        warnings=warnings,
        kernel_skipped=None if (run or skipped) else (reason or "kernel=False"),
        descriptions={scenario.name: scenario.description},
        skipped={scenario.name: skipped} if skipped else {},
        kernel_runs={scenario.name: len(runs)} if runs else {},
    )


def _readahead(run: Optional[host_side.HostRun]) -> Optional[int]:
    """The readahead window cowsim uses: the kernel run's, else the host's, else None (the default)."""
    if run is not None and str(run.info.get("readahead_kb", "")).isdigit():
        return int(run.info["readahead_kb"])
    return default_readahead_kb()


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
        scenarios = host_suite()
    total = ValidationResult()
    for sc in scenarios:
        if progress:
            progress(f"validate: {sc.name}")
        total.extend(run_scenario(sc, **kwargs))
    return total


def host_suite(names: Optional[Iterable[str]] = None) -> List[Scenario]:
    """The built-in suite (or the named scenarios of it) with the predictions computed
    for the host kernel's page size and fault-around window (4096 and 65536 where the
    kernel side is unavailable).

    Raises:
        InvalidArgument: an unknown scenario name.
    """
    reason = _probe.unavailable_reason()
    page_size = _probe.host_page_size() if reason is None else 4096
    fault_around = _probe.fault_around_bytes()[0] if reason is None else 65536
    return builtin_suite(list(names) if names else None, page_size=page_size, fault_around=fault_around,
                         readahead_kb=default_readahead_kb())
