"""Calibration: measure this host's kernel with the probe and fit a :class:`CostModel`.

The probe (``cowsim/host/probe.c``) times, in C, over several repetitions
(9 full, 3 quick; the kinds interleaved repetition by repetition so that a
slow phase of a busy host hits them alike), keeping the best of each:

* faults over a fresh 64 MiB region (8 MiB in quick mode): zero-page reads,
  zero-fill writes, CoW copies (child alive), CoW reuses (child gone);
* fork latency seen by the parent, for no region, 64 MiB and 256 MiB
  resident (8 and 32 MiB quick), and one page in each of 2048 page tables
  (256 quick); the child waits until the parent has its time, then exits;
* munmap of 64 MiB of resident pages; memcpy of 4 KiB pages (cold over 64
  MiB, and hot); mprotect of one present vs one absent page.

The fit: ``fault_ns`` is the zero-page read fault; the other fault kinds'
extras are their totals minus ``fault_ns``; the fork of an empty process
gives ``fork_base_ns``, and a non-negative, relative least-squares fit of
``ptes*a + tables*b`` to the other three fork timings (minus the base) gives
``fork_per_pte_ns`` and ``fork_per_table_ns``; ``tlb_flush_ns`` is the
present - absent mprotect difference; ``exit_per_page_ns`` the munmap time
per page.

>>> model = fit_model(SAMPLE_RAW)
>>> model.fault_ns, model.fork_base_ns, model.fork_per_pte_ns, model.fork_per_table_ns
(1000.0, 50000.0, 150.0, 1000.0)
"""
from __future__ import annotations

import datetime
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..cost import PROFILE_FORMAT, CostModel
from ..errors import InvalidArgument
from . import probe as _probe

__all__ = ["Calibration", "calibrate", "fit_model", "parse_raw", "SAMPLE_RAW"]

#: A small synthetic probe output (for doctests and tests of the fit).
SAMPLE_RAW: List[List[str]] = [
    line.split()
    for line in """info pagesize 4096
fault zero_page 1000 1000000 1000
fault zero_fill 1000 3000000 1000
fault cow_copy 1000 5000000 1000
fault cow_reuse 1000 1500000 1000
fault zero_page 1000 1200000 1000
fault zero_fill 1000 3300000 1000
fault cow_copy 1000 5100000 1000
fault cow_reuse 1000 1600000 1000
fork empty 0 0 50000
fork dense1 16384 32 2539600
fork dense2 65536 128 10008400
fork sparse 2048 2048 2405200
fork empty 0 0 60000
fork dense1 16384 32 2549600
fork dense2 65536 128 10018400
fork sparse 2048 2048 2415200
munmap 16384 8192000
memcpy 16384 16384000
memcpy_hot 20000 1000000
mprotect 40000 100000000 80000000""".splitlines()
]


def parse_raw(raw: Sequence[Sequence[str]]) -> Dict[str, Any]:
    """The probe's calibration lines as a structured dict of measurements (ns).

    Fault and fork lines come once per repetition; each kind gets its best
    (``ns_per_fault``, ``best_ns``), its median and the list of repetitions.

    Raises:
        InvalidArgument: a line is missing or malformed.
    """
    out: Dict[str, Any] = {"faults": {}, "forks": []}
    faults: Dict[str, List[Tuple[int, int, int]]] = {}
    forks: Dict[str, List[Tuple[int, int, int]]] = {}
    try:
        for parts in raw:
            kind = parts[0]
            if kind == "info":
                out[parts[1]] = int(parts[2])
            elif kind == "fault":
                if parts[1] != "warmup":
                    faults.setdefault(parts[1], []).append((int(parts[2]), int(parts[3]), int(parts[4])))
            elif kind == "fork":
                forks.setdefault(parts[1], []).append((int(parts[2]), int(parts[3]), int(parts[4])))
            elif kind == "munmap":
                out["munmap"] = {"pages": int(parts[1]), "ns": int(parts[2]), "ns_per_page": int(parts[2]) / int(parts[1])}
            elif kind == "memcpy":
                n, ns = int(parts[1]), int(parts[2])
                out["memcpy_4k_cold_ns"] = ns / n
                out["page_copy_gb_per_s"] = n * int(out.get("pagesize", 4096)) / ns  # bytes per ns = GB/s
            elif kind == "memcpy_hot":
                out["memcpy_4k_hot_ns"] = int(parts[2]) / int(parts[1])
            elif kind == "mprotect":
                calls, present, absent = int(parts[1]), int(parts[2]), int(parts[3])
                out["mprotect"] = {"calls": calls, "present_ns": present / calls, "absent_ns": absent / calls}
    except (IndexError, ValueError, ZeroDivisionError) as exc:
        raise InvalidArgument(f"calibration: malformed probe output ({exc})") from None
    for label, reps in faults.items():
        per = sorted(ns / max(n, 1) for n, ns, _ in reps)
        out["faults"][label] = {
            "pages": reps[0][0],
            "faults_per_pass": reps[-1][2],
            "ns_per_fault": round(per[0], 1),
            "ns_per_fault_median": round(per[len(per) // 2], 1),
            "reps_ns_per_fault": [round(ns / max(n, 1), 1) for n, ns, _ in reps],
        }
    for label, reps in forks.items():
        times = sorted(ns for _, _, ns in reps)
        out["forks"].append({
            "label": label,
            "ptes": reps[0][0],
            "tables": reps[0][1],
            "best_ns": times[0],
            "median_ns": times[len(times) // 2],
            "reps_ns": [ns for _, _, ns in reps],
        })
    for need in ("zero_page", "zero_fill", "cow_copy", "cow_reuse"):
        if need not in out["faults"]:
            raise InvalidArgument(f"calibration: the probe output lacks the {need} fault timing")
    if len(out["forks"]) < 3 or "munmap" not in out or "mprotect" not in out:
        raise InvalidArgument("calibration: the probe output lacks fork, munmap or mprotect timings")
    return out


def _nnls(rows: List[Tuple[float, ...]], y: List[float]) -> Tuple[float, ...]:
    """Non-negative least squares for a few unknowns: the best of all subsets."""
    import numpy as np

    a = np.array(rows, dtype=float)
    b = np.array(y, dtype=float)
    k = a.shape[1]
    best: Optional[Tuple[float, np.ndarray]] = None
    for size in range(k, 0, -1):
        for cols in itertools.combinations(range(k), size):
            coef, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
            if (coef < 0).any():
                continue
            full = np.zeros(k)
            full[list(cols)] = coef
            err = float(((a @ full - b) ** 2).sum())
            if best is None or err < best[0] - 1e-9:
                best = (err, full)
    assert best is not None
    return tuple(float(v) for v in best[1])


def fit_model(raw: Union[Sequence[Sequence[str]], Dict[str, Any]]) -> CostModel:
    """Fits a :class:`CostModel` to probe output (raw lines or :func:`parse_raw`'s dict)."""
    m = raw if isinstance(raw, dict) else parse_raw(raw)
    f = {k: float(v["ns_per_fault"]) for k, v in m["faults"].items()}
    fault = f["zero_page"]
    forks = m["forks"]
    empty = [x for x in forks if x["ptes"] == 0 and x["tables"] == 0]
    base = float(min(x["best_ns"] for x in empty)) if empty else 0.0
    rest = [x for x in forks if x["ptes"] or x["tables"]]
    # relative least squares: every configuration counts alike, whatever its size
    per_pte, per_table = _nnls(
        [(x["ptes"] / x["best_ns"], x["tables"] / x["best_ns"]) for x in rest],
        [max(0.0, x["best_ns"] - base) / x["best_ns"] for x in rest],
    )
    mp = m["mprotect"]
    return CostModel(
        fork_base_ns=round(base, 1),
        fork_per_pte_ns=round(per_pte, 2),
        fork_per_table_ns=round(per_table, 1),
        fault_ns=round(fault, 1),
        zero_fill_ns=round(max(0.0, f["zero_fill"] - fault), 1),
        copy_page_ns=round(max(0.0, f["cow_copy"] - fault), 1),
        cow_reuse_ns=round(max(0.0, f["cow_reuse"] - fault), 1),
        tlb_flush_ns=round(max(0.0, mp["present_ns"] - mp["absent_ns"]), 1),
        exit_per_page_ns=round(m["munmap"]["ns_per_page"], 1),
    )


@dataclass
class Calibration:
    """A calibration: the fitted model, the measurements and the machine.

    Attributes:
        model: the fitted :class:`CostModel`.
        measurements: :func:`parse_raw`'s dict (ns), plus derived numbers.
        machine: host facts (kernel release, CPU model, memory, page size).
        quick: whether the quick (small, noisier) mode was used.
        created: ISO 8601 UTC time.
    """

    model: CostModel
    measurements: Dict[str, Any]
    machine: Dict[str, str]
    quick: bool
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    def to_profile(self) -> Dict[str, Any]:
        """The profile (JSON-ready) that ``CostModel.load`` reads."""
        return {
            "format": PROFILE_FORMAT,
            "cost_model": self.model.to_dict(),
            "machine": self.machine,
            "quick": self.quick,
            "created": self.created,
            "measurements": self.measurements,
        }

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_profile(), indent=2) + "\n", encoding="utf-8")


def calibrate(quick: bool = False, progress: Optional[Callable[[str], None]] = None) -> Calibration:
    """Measures the host kernel and fits a cost model (full mode ~10 s, quick about 1 s).

    Raises:
        HostUnavailable: not Linux or no C compiler.
        HostProbeError: the probe failed.
    """
    if progress:
        progress("calibrate: compiling/locating the probe")
    _probe.probe_binary()
    if progress:
        progress(f"calibrate: measuring ({'quick' if quick else 'full'} mode)")
    raw = _probe.run_calibration(quick=quick)
    measurements = parse_raw(raw)
    model = fit_model(measurements)
    forks = {x["label"]: x for x in measurements["forks"]}
    if "dense1" in forks and "dense2" in forks:
        d1, d2 = forks["dense1"], forks["dense2"]
        measurements["fork_ns_per_resident_page"] = (d2["best_ns"] - d1["best_ns"]) / max(1, d2["ptes"] - d1["ptes"])
    return Calibration(model, measurements, _probe.host_info(), quick)
