"""The comparison: one :class:`Row` per compared value, the merged :class:`ValidationResult`,
and how several kernel runs of one scenario settle on a value (:func:`settle_kernel_runs`).

smaps values (kB) must be equal; fault counts (``FAULT_METRICS``) must be equal
too, unless a tolerance is given.  A value the kernel runs did not settle is
*kernel noise* (``Row.noise``): not a cowsim mismatch, but no success either.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import InvalidArgument
from .scenario import Measurements, Scenario

__all__ = ["Row", "ValidationResult", "FAULT_METRICS", "settle_kernel_runs", "Key"]

#: Metrics compared with ``fault_tolerance``; everything else is exact.
FAULT_METRICS = ("minflt",)

#: A measured value's key: ``(step, proc, region, metric)``.
Key = Tuple[int, str, str, str]


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
        from .report import format_table

        return format_table(self, all_regions)


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
