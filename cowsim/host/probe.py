"""The host kernel's probe and its driver: runs scenarios in real Linux processes with a small C probe.

The probe (``probe.c``, shipped next to this module) is compiled on first use
with the system C compiler (``$CC`` or ``cc``) into a cache directory
(``$COWSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/cowsim`` or ``~/.cache/cowsim``,
else a per-user directory under the system temp dir), keyed by a hash of the
source and the compiler, so later runs reuse it.

The probe does every access and every measurement itself, in C: anonymous
``mmap`` at the scenario's fixed addresses (with ``MADV_NOHUGEPAGE`` and a
one-page guard mapping on each side so the kernel cannot merge a region with
its neighbours), real ``fork()``, minor faults from ``getrusage(RUSAGE_SELF)``
taken around each step in the process that performs it, the region's own
``/proc/self/smaps`` entries, and frame numbers from ``/proc/self/pagemap``
(visible to root only; otherwise ``copied`` is not measured).

Where this cannot work (not Linux, no C compiler, a page size cowsim does
not model) :func:`unavailable_reason` says why and :func:`run_scenario`
raises :class:`KernelUnavailable`.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from ..errors import CowsimError

if TYPE_CHECKING:  # the scenario model is validation's; read at call time only (no import cycle)
    from ..validation.scenario import Measurements, Scenario

__all__ = [
    "KernelUnavailable",
    "KernelProbeError",
    "KernelRun",
    "unavailable_reason",
    "probe_binary",
    "probe_source",
    "run_scenario",
    "run_calibration",
    "host_info",
    "host_page_size",
    "fault_around_bytes",
]

PROBE_SOURCE = Path(__file__).resolve().parent / "probe.c"
CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wl,-z,now")
SUPPORTED_PAGE_SIZES = (4096, 16384, 65536)
_OPS_ARGS = {"none": 0, "r": 1, "rw": 3}
_ADVICE = {"dontfork": 0, "dofork": 1, "wipeonfork": 2, "keeponfork": 3, "dontneed": 4}
# glibc registers an rseq area that the kernel writes on preemption: after a
# fork that would be a copy-on-write fault inside a measured step.
_PROBE_ENV = {"GLIBC_TUNABLES": "glibc.pthread.rseq=0", "LC_ALL": "C"}


class KernelUnavailable(CowsimError):
    """The host cannot run the kernel probe (not Linux, no C compiler, ...).

    Attributes:
        reason: why, in one sentence.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the host kernel side is unavailable: {reason}")
        self.reason = reason


class KernelProbeError(CowsimError):
    """The probe ran but failed (a syscall refused, a timeout, bad output)."""


@dataclass
class KernelRun:
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


# ------------------------------------------------------------------------- the host
def _compiler() -> Optional[List[str]]:
    cc = os.environ.get("CC", "").strip()
    argv = shlex.split(cc) if cc else ["cc"]
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    return [exe] + argv[1:]


def host_page_size() -> int:
    """The host's page size in bytes (``os.sysconf``)."""
    return int(os.sysconf("SC_PAGE_SIZE"))


def unavailable_reason() -> Optional[str]:
    """None when the kernel side can run here; otherwise the reason it cannot."""
    if platform.system() != "Linux":
        return f"not Linux (this is {platform.system() or 'an unknown system'})"
    if not os.path.exists("/proc/self/smaps"):
        return "/proc/self/smaps is missing (procfs not mounted?)"
    if host_page_size() not in SUPPORTED_PAGE_SIZES:
        return f"the host page size {host_page_size()} is not one cowsim models {SUPPORTED_PAGE_SIZES}"
    if _compiler() is None:
        return "no C compiler found (set $CC or install cc)"
    if not PROBE_SOURCE.exists():
        return f"the probe source {PROBE_SOURCE} is missing from the installation"
    return None


def _cache_dir() -> Path:
    env = os.environ.get("COWSIM_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "cowsim"


def _writable_dir(candidates: List[Path]) -> Path:
    for d in candidates:
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK | os.X_OK):
                return d
        except OSError:
            continue
    raise KernelUnavailable("no writable cache directory for the compiled probe (set COWSIM_CACHE_DIR)")


def probe_source() -> Path:
    """The path of ``probe.c``."""
    return PROBE_SOURCE


def probe_binary(rebuild: bool = False) -> Path:
    """Compiles the probe if needed and returns the executable's path.

    Raises:
        KernelUnavailable: not Linux, no compiler, or the compiler failed.
    """
    reason = unavailable_reason()
    if reason:
        raise KernelUnavailable(reason)
    cc = _compiler()
    assert cc is not None
    src = PROBE_SOURCE.read_bytes()
    key = hashlib.sha256(src + "\0".join(cc + list(CFLAGS) + [platform.machine()]).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    cache = _writable_dir([_cache_dir(), Path(tempfile.gettempdir()) / f"cowsim-{uid}"])
    exe = cache / f"probe-{key}"
    if exe.exists() and not rebuild:
        return exe
    tmp = cache / f".probe-{key}-{os.getpid()}"
    cmd = cc + list(CFLAGS) + ["-o", str(tmp), str(PROBE_SOURCE)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelUnavailable(f"running the C compiler failed: {exc}") from None
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        detail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise KernelUnavailable(f"the C compiler failed on {PROBE_SOURCE.name}: " + " | ".join(detail))
    os.replace(tmp, exe)
    return exe


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def fault_around_bytes() -> Tuple[int, bool]:
    """The kernel's shmem fault-around window and whether it was read (debugfs)
    rather than assumed (the default, 65536)."""
    text = _read("/sys/kernel/debug/fault_around_bytes")
    if text and text.isdigit():
        return int(text), True
    return 65536, False


def host_info() -> Dict[str, str]:
    """Facts about the host that matter for the comparison and for calibration."""
    info = {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "page_size": str(host_page_size()) if hasattr(os, "sysconf") else "?",
    }
    cpuinfo = _read("/proc/cpuinfo") or ""
    ident = []
    for line in cpuinfo.split("\n\n", 1)[0].splitlines():  # the first CPU
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "cpu model", "Processor") and value and "cpu" not in info:
            info["cpu"] = value
        elif key in ("vendor_id", "cpu family", "model", "stepping", "CPU implementer", "CPU part") and value:
            ident.append(f"{key} {value}")
    if ident:
        info["cpu_id"] = ", ".join(ident)
    info["cpus"] = str(os.cpu_count() or "?")
    fa, known = fault_around_bytes()
    info["fault_around_bytes"] = str(fa) + ("" if known else " (assumed: debugfs not readable)")
    for key, path in (
        ("thp_enabled", "/sys/kernel/mm/transparent_hugepage/enabled"),
        ("thp_defrag", "/sys/kernel/mm/transparent_hugepage/defrag"),
        ("thp_use_zero_page", "/sys/kernel/mm/transparent_hugepage/use_zero_page"),
        ("thp_shmem_enabled", "/sys/kernel/mm/transparent_hugepage/shmem_enabled"),
        ("ksm_run", "/sys/kernel/mm/ksm/run"),
        ("numa_balancing", "/proc/sys/kernel/numa_balancing"),
    ):
        text = _read(path)
        if text is not None:
            info[key] = text
    damon = _damon_state()
    if damon:
        info["damon"] = damon
    meminfo = _read("/proc/meminfo") or ""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            info["memory"] = line.split(":", 1)[1].strip()
    return info


def _damon_state(root: str = "/sys/kernel/mm/damon/admin/kdamonds") -> str:
    """DAMON monitors running on the host, e.g. "paddr: pageout" ("" none): a
    physical-address monitor briefly takes references on sampled pages, which
    can turn a copy-on-write reuse into a copy (see docs/VALIDATION.md)."""
    out = []
    try:
        names = sorted(d for d in os.listdir(root) if d.isdigit())
    except OSError:
        return ""
    for d in names:
        if _read(f"{root}/{d}/state") != "on":
            continue
        base = f"{root}/{d}/contexts/0"
        ops = _read(f"{base}/operations") or "?"
        try:
            schemes = sorted(x for x in os.listdir(f"{base}/schemes") if x.isdigit())
        except OSError:
            schemes = []
        actions = [_read(f"{base}/schemes/{x}/action") or "?" for x in schemes]
        out.append(ops + (": " + ", ".join(actions) if actions else ""))
    return "; ".join(out)


def _host_warnings(info: Dict[str, str]) -> List[str]:
    out = []
    shmem = info.get("thp_shmem_enabled", "")
    if "[force]" in shmem or "[always]" in shmem:
        out.append(f"shmem THP is {shmem!r}: shared regions may use huge pages, which cowsim does not model")
    if info.get("ksm_run", "0") not in ("0", ""):
        out.append("KSM is running: it may merge identical pages behind the scenario's back")
    if info.get("numa_balancing", "0") not in ("0", ""):
        out.append("NUMA balancing is on: its hinting faults may add minor faults")
    return out


# ---------------------------------------------------------------------- running
def _run_probe(args: List[str], stdin: str, timeout: float) -> str:
    exe = probe_binary()
    env = dict(os.environ)
    # A sanitizer runtime preloaded into Python (the ASan test run) must not reach the probe:
    # its reserved memory collides with the probe's fixed-address mappings.
    env.pop("LD_PRELOAD", None)
    env.update(_PROBE_ENV)
    proc = subprocess.Popen(
        [str(exe)] + args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: a timeout stops all its processes
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise KernelProbeError(f"the kernel probe timed out after {timeout:g} s") from None
    errors = [line.split(" ", 2) for line in out.splitlines() if line.startswith("error ")]
    if errors:
        _, step, msg = (errors[0] + ["", ""])[:3]
        where = f"step {step}" if step not in ("0", "") else "setup"
        raise KernelProbeError(f"the kernel probe failed at {where}: {msg}")
    if proc.returncode != 0 or not out.rstrip().endswith("done"):
        detail = (err or "").strip() or f"exit status {proc.returncode}"
        raise KernelProbeError(f"the kernel probe ended abnormally: {detail}")
    return out


def _encode(scenario: Scenario, page_size: int) -> str:
    procs = {p: i for i, p in enumerate(scenario.procs)}
    regions = {r: i for i, r in enumerate(scenario.regions)}
    layout = scenario.layout(page_size)
    lines = ["cowsim-probe 1", f"procs {len(procs)}"]
    for name, spec in scenario.regions.items():
        lines.append(f"region {regions[name]} {layout[name]:x} {spec.pages}")
    for s in scenario.steps:
        a = [0, 0, 0, 0]
        proc = procs[s.proc]
        if s.op == "map":
            a = [regions[s.region or ""], _OPS_ARGS[s.prot or "rw"], int(s.shared), int(s.huge)]
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
        lines.append(f"step {s.number} {s.op} {proc} {a[0]} {a[1]} {a[2]} {a[3]}")
    lines.append("end")
    return "\n".join(lines) + "\n"


def _decode(scenario: Scenario, out: str) -> Tuple[Measurements, Dict[str, str], List[str]]:
    from ..validation.scenario import PROCESS_METRICS, REGION_METRICS

    procs = list(scenario.procs)
    regions = list(scenario.regions)
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
            for metric in PROCESS_METRICS:
                raw[(step, proc, "", metric)] = kv.get(metric, -1)
        elif parts[0] == "r":
            step, proc, region = int(parts[1]), procs[int(parts[2])], regions[int(parts[3])]
            kv = dict(zip(parts[4::2], map(int, parts[5::2])))
            for metric in REGION_METRICS:
                raw[(step, proc, region, metric)] = kv.get(metric, -1)
    measurements: Measurements = {}
    for s in scenario.reported_steps():
        for key in scenario.keys(s):
            if key not in raw:
                raise KernelProbeError(f"the kernel probe did not report {key} for scenario {scenario.name!r}")
            value = raw[key]
            measurements[key] = None if value < 0 else value
    return measurements, info, warnings


def run_scenario(scenario: Scenario, timeout: float = 60.0) -> KernelRun:
    """Runs a scenario in real processes and returns what the kernel did.

    Raises:
        KernelUnavailable: the host cannot run the probe.
        KernelProbeError: the probe failed (e.g. a fixed address was taken).
    """
    page_size = host_page_size() if unavailable_reason() is None else 0
    if not page_size:
        raise KernelUnavailable(unavailable_reason() or "unknown")
    out = _run_probe(["run"], _encode(scenario, page_size), timeout)
    measurements, probe_info, warnings = _decode(scenario, out)
    info = host_info()
    info["pfn_visible"] = probe_info.get("pfn_visible", "0")
    # pages of the probe's own mappings left unmapped before the first step ("0": none can fault in a step)
    info["unmapped_own_pages"] = probe_info.get("unmapped_own_pages", "?")
    warnings = _host_warnings(info) + warnings
    if info["pfn_visible"] != "1":
        warnings.append("page frame numbers are not visible (/proc/self/pagemap needs CAP_SYS_ADMIN): "
                        "'copied' is not measured on the kernel side")
    return KernelRun(scenario.name, measurements, info, warnings)


def run_calibration(quick: bool = False, timeout: float = 300.0) -> List[List[str]]:
    """Runs the probe's calibration and returns its raw output lines, split in words.

    Raises:
        KernelUnavailable: the host cannot run the probe.
        KernelProbeError: the probe failed.
    """
    out = _run_probe(["calibrate"] + (["quick"] if quick else []), "", timeout)
    return [line.split() for line in out.splitlines() if line.strip() and line != "done"]
