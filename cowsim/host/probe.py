"""The host kernel's probe and its driver: a small C program run in real Linux processes.

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

Scenarios with files get real files in ``$COWSIM_PROBE_DIR`` (default
/var/tmp), which must be on a disk file system (:func:`files_unavailable_reason`).

Where this cannot work (not Linux, no C compiler, a page size cowsim does
not model) :func:`unavailable_reason` says why and :func:`run_probe` raises
:class:`HostUnavailable`.  The scenario protocol (encoding a scenario, decoding
its measurements) is validation's: :mod:`cowsim.validation.host_side`.
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
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import CowsimError

__all__ = [
    "HostUnavailable",
    "HostProbeError",
    "unavailable_reason",
    "probe_binary",
    "probe_source",
    "run_probe",
    "host_warnings",
    "run_calibration",
    "host_info",
    "host_page_size",
    "fault_around_bytes",
    "probe_file_dir",
    "file_system_type",
    "readahead_kb",
    "files_unavailable_reason",
]

PROBE_SOURCE = Path(__file__).resolve().parent / "probe.c"
CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wl,-z,now")
SUPPORTED_PAGE_SIZES = (4096, 16384, 65536)
# glibc registers an rseq area that the kernel writes on preemption: after a
# fork that would be a copy-on-write fault inside a measured step.
_PROBE_ENV = {"GLIBC_TUNABLES": "glibc.pthread.rseq=0", "LC_ALL": "C"}


class HostUnavailable(CowsimError):
    """The host cannot run the kernel probe (not Linux, no C compiler, ...).

    Attributes:
        reason: why, in one sentence.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the host kernel side is unavailable: {reason}")
        self.reason = reason


class HostProbeError(CowsimError):
    """The probe ran but failed (a syscall refused, a timeout, bad output)."""


# The names until 0.1 ("kernel" was ambiguous between the host's and the simulated one).
KernelUnavailable = HostUnavailable
KernelProbeError = HostProbeError


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
    raise HostUnavailable("no writable cache directory for the compiled probe (set COWSIM_CACHE_DIR)")


def probe_source() -> Path:
    """The path of ``probe.c``."""
    return PROBE_SOURCE


def probe_binary(rebuild: bool = False) -> Path:
    """Compiles the probe if needed and returns the executable's path.

    Raises:
        HostUnavailable: not Linux, no compiler, or the compiler failed.
    """
    reason = unavailable_reason()
    if reason:
        raise HostUnavailable(reason)
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
        raise HostUnavailable(f"running the C compiler failed: {exc}") from None
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        detail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise HostUnavailable(f"the C compiler failed on {PROBE_SOURCE.name}: " + " | ".join(detail))
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


# ------------------------------------------------------------------------ files
#: where the probe creates its files unless $COWSIM_PROBE_DIR says otherwise
DEFAULT_FILE_DIR = "/var/tmp"
#: file systems whose page cache is not the one cowsim models (no disk: no readahead, no major faults)
_NOT_DISK = ("tmpfs", "ramfs", "overlay", "squashfs", "proc", "sysfs", "devtmpfs", "fuse", "nfs", "9p", "virtiofs")


def probe_file_dir() -> str:
    """The directory the probe creates its files in (``$COWSIM_PROBE_DIR``, else /var/tmp)."""
    return os.environ.get("COWSIM_PROBE_DIR") or DEFAULT_FILE_DIR


def file_system_type(path: str) -> Optional[str]:
    """The type of the file system holding ``path`` (from /proc/self/mountinfo), None if unknown."""
    text = _read("/proc/self/mountinfo")
    if not text:
        return None
    real = os.path.realpath(path)
    best, fstype = -1, None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        mnt = fields[4].replace("\\040", " ")
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > best:
            best, fstype = len(mnt), right.split()[0]
    return fstype


def readahead_kb(path: str) -> Optional[int]:
    """``read_ahead_kb`` of the block device under ``path`` (its bdi), None if unknown."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    majmin = f"{os.major(dev)}:{os.minor(dev)}"
    for cand in (f"/sys/class/bdi/{majmin}/read_ahead_kb", f"/sys/dev/block/{majmin}/queue/read_ahead_kb",
                 f"/sys/dev/block/{majmin}/../queue/read_ahead_kb"):
        text = _read(cand)
        if text and text.isdigit():
            return int(text)
    return None


def files_unavailable_reason() -> Optional[str]:
    """Why the probe cannot run scenarios with files here, or None."""
    d = probe_file_dir()
    if not os.path.isdir(d) or not os.access(d, os.W_OK | os.X_OK):
        return f"the probe's file directory {d} is not a writable directory (set COWSIM_PROBE_DIR)"
    fs = file_system_type(d)
    if fs is None or fs in _NOT_DISK:
        return (f"the probe's file directory {d} is on {fs or 'an unknown file system'}, not a disk file system "
                "(set COWSIM_PROBE_DIR to a directory on ext4, xfs, btrfs...)")
    if readahead_kb(d) is None:
        return f"read_ahead_kb of the device under {d} is not readable"
    return None


def remove_probe_files(pid: int) -> None:
    """Removes files a probe run (root process ``pid``) left behind (it removes them itself unless killed)."""
    d = Path(probe_file_dir())
    for f in d.glob(f"cowsim-probe-{pid}-f*"):
        try:
            f.unlink()
        except OSError:
            pass


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


def host_warnings(info: Dict[str, str]) -> List[str]:
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
def run_probe(args: List[str], stdin: str, timeout: float) -> str:
    """Runs the probe with ``args``, ``stdin`` on its standard input, and returns its output.

    Raises:
        HostUnavailable: the probe cannot be built here.
        HostProbeError: it reported an error, ended abnormally or timed out.
    """
    exe = probe_binary()
    env = dict(os.environ)
    # A sanitizer runtime preloaded into Python (the ASan test run) must not reach the probe:
    # its reserved memory collides with the probe's fixed-address mappings.
    env.pop("LD_PRELOAD", None)
    env.update(_PROBE_ENV)
    env["COWSIM_PROBE_DIR"] = probe_file_dir()
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
        remove_probe_files(proc.pid)
        raise HostProbeError(f"the kernel probe timed out after {timeout:g} s") from None
    remove_probe_files(proc.pid)
    errors = [line.split(" ", 2) for line in out.splitlines() if line.startswith("error ")]
    if errors:
        _, step, msg = (errors[0] + ["", ""])[:3]
        where = f"step {step}" if step not in ("0", "") else "setup"
        raise HostProbeError(f"the kernel probe failed at {where}: {msg}")
    if proc.returncode != 0 or not out.rstrip().endswith("done"):
        detail = (err or "").strip() or f"exit status {proc.returncode}"
        raise HostProbeError(f"the kernel probe ended abnormally: {detail}")
    return out


def run_calibration(quick: bool = False, timeout: float = 300.0) -> List[List[str]]:
    """Runs the probe's calibration and returns its raw output lines, split in words.

    Raises:
        HostUnavailable: the host cannot run the probe.
        HostProbeError: the probe failed.
    """
    out = run_probe(["calibrate"] + (["quick"] if quick else []), "", timeout)
    return [line.split() for line in out.splitlines() if line.strip() and line != "done"]
