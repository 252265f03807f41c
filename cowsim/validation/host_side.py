"""A scenario on the host kernel: encoded in the probe's line protocol, run by
:mod:`cowsim.host.probe` in real processes, and its measurements decoded.

Where the probe cannot work :func:`cowsim.host.probe.unavailable_reason` says why and
:func:`run_scenario` raises :class:`~cowsim.host.HostUnavailable`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from ..host import probe as _probe
from .file_steps import FILE_METRICS, FILE_PROCESS_METRICS, FOLIO_METRICS
from .scenario import PROCESS_METRICS, REGION_METRICS, Measurements, Scenario

__all__ = ["HostRun", "run_scenario"]

_OPS_ARGS = {"none": 0, "r": 1, "rw": 3}
_ADVICE = {"dontfork": 0, "dofork": 1, "wipeonfork": 2, "keeponfork": 3, "dontneed": 4, "random": 5, "normal": 6}
_FILLS = {"none": 0, "pages": 1, "one-write": 2}
_CACHED = {"no": 0, "yes": 1, "dirty": 2}


@dataclass
class HostRun:
    """What the kernel did for one scenario.

    Attributes:
        scenario: the scenario's name.
        measurements: values by ``(step, proc, region, metric)``; None = not measured.
        info: host facts (kernel release, page size, fault-around bytes, ...).
        warnings: anything the probe noticed that may blur the comparison.
    """

    scenario: str
    measurements: Measurements
    info: Dict[str, str] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)


def _encode(scenario: Scenario, page_size: int) -> str:
    procs = {p: i for i, p in enumerate(scenario.procs)}
    regions = {r: i for i, r in enumerate(scenario.regions)}
    files = {f: i for i, f in enumerate(scenario.files)}
    layout = scenario.layout(page_size)
    lines = ["cowsim-probe 1", f"procs {len(procs)}"]
    for name, spec in scenario.regions.items():
        lines.append(f"region {regions[name]} {layout[name]:x} {spec.pages}")
    for s in scenario.steps:
        a = [0, 0, 0, 0]
        proc = procs[s.proc]
        if s.op == "map":
            a = [regions[s.region or ""], _OPS_ARGS[s.prot or "rw"], int(s.shared), int(s.huge)]
            if s.file:
                a += [files[s.file], s.offset]
        elif s.op == "file":
            a = [files[s.file or ""], s.pages, _FILLS[s.fill], _CACHED[s.cached], s.last_bytes]
        elif s.op in ("fsync", "evict", "folios"):
            a = [files[s.file or ""], 0, 0, 0]
        elif s.op in ("fwrite", "fread"):
            a = [files[s.file or ""], s.first, s.count, s.value if s.op == "fwrite" else 0]
        elif s.op in ("read", "write", "mprotect", "munmap", "madvise"):
            a = [regions[s.region or ""], s.first, s.count, 0]
            if s.op == "write":
                a[3] = s.value
            elif s.op == "mprotect":
                a[3] = _OPS_ARGS[s.prot or "rw"]
            elif s.op == "madvise":
                a[3] = _ADVICE[s.advice or ""]
        elif s.op == "fork":
            a = [procs[s.child or ""], 0, 0, 0]
        elif s.op == "exit":
            # the parent performs the step (reaps and measures); a0 is the exiting process
            a = [procs[s.proc], 0, 0, 0]
            proc = procs[scenario.parents[s.proc]]
        op = "fcreate" if s.op == "file" else s.op
        lines.append(f"step {s.number} {op} {proc} " + " ".join(str(x) for x in a))
    lines.append("end")
    return "\n".join(lines) + "\n"


def _decode(scenario: Scenario, out: str) -> Tuple[Measurements, Dict[str, str], List[str]]:
    procs = list(scenario.procs)
    regions = list(scenario.regions)
    files = list(scenario.files)
    raw: Dict[Tuple[int, str, str, str], int] = {}
    info: Dict[str, str] = {}
    warnings: List[str] = []
    for line in out.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "info" and len(parts) >= 3:
            info[parts[1]] = parts[2]
        elif parts[0] == "warn":
            warnings.append(f"{scenario.name}: step {parts[1]}: {' '.join(parts[2:])}")
        elif parts[0] == "m":
            step, proc = int(parts[1]), procs[int(parts[2])]
            kv = dict(zip(parts[3::2], map(int, parts[4::2])))
            kv["data_sum"] = kv.pop("data", -1)
            for metric in PROCESS_METRICS + FILE_PROCESS_METRICS:
                raw[(step, proc, "", metric)] = kv.get(metric, -1)
        elif parts[0] == "r":
            step, proc, region = int(parts[1]), procs[int(parts[2])], regions[int(parts[3])]
            kv = dict(zip(parts[4::2], map(int, parts[5::2])))
            for metric in REGION_METRICS + ("Pss_File",):
                raw[(step, proc, region, metric)] = kv.get(metric, -1)
        elif parts[0] == "f":
            step, proc, name = int(parts[1]), procs[int(parts[2])], files[int(parts[3])]
            kv = dict(zip(parts[4::2], map(int, parts[5::2])))
            for metric in FILE_METRICS + FOLIO_METRICS:
                if metric in kv:
                    raw[(step, proc, name, metric)] = kv[metric]
    measurements: Measurements = {}
    for s in scenario.reported_steps():
        for key in scenario.keys(s):
            if key not in raw:
                raise _probe.HostProbeError(f"the kernel probe did not report {key} for scenario {scenario.name!r}")
            value = raw[key]
            measurements[key] = None if value < 0 else value
    return measurements, info, warnings


def run_scenario(scenario: Scenario, timeout: float = 60.0) -> HostRun:
    """Runs a scenario in real processes and returns what the kernel did.

    Raises:
        HostUnavailable: the host cannot run the probe.
        HostProbeError: the probe failed (e.g. a fixed address was taken).
    """
    page_size = _probe.host_page_size() if _probe.unavailable_reason() is None else 0
    if not page_size:
        raise _probe.HostUnavailable(_probe.unavailable_reason() or "unknown")
    if scenario.uses_files and _probe.files_unavailable_reason():
        raise _probe.HostUnavailable(_probe.files_unavailable_reason() or "unknown")
    out = _probe.run_probe(["run"], _encode(scenario, page_size), timeout)
    measurements, probe_info, warnings = _decode(scenario, out)
    info = _probe.host_info()
    info["pfn_visible"] = probe_info.get("pfn_visible", "0")
    # pages of the probe's own mappings left unmapped before the first step ("0": none can fault in a step)
    info["unmapped_own_pages"] = probe_info.get("unmapped_own_pages", "?")
    if scenario.uses_files:
        info["probe_pid"] = probe_info.get("pid", "?")  # its files were cowsim-probe-<pid>-f*
        info["file_dir"] = _probe.probe_file_dir()
        info["file_fs"] = _probe.file_system_type(info["file_dir"]) or "?"
        info["readahead_kb"] = str(_probe.readahead_kb(info["file_dir"]))
    warnings = _probe.host_warnings(info) + warnings
    if info["pfn_visible"] != "1":
        warnings.append("page frame numbers are not visible (/proc/self/pagemap needs CAP_SYS_ADMIN): "
                        "'copied' is not measured on the kernel side")
    return HostRun(scenario.name, measurements, info, warnings)
