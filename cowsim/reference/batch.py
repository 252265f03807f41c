"""Batched accesses and multi-process trace replay (csrc/batch.c).

A batch is the same access as ``touch``, one after the other: access i either takes
effect (its outcome is counted) or stops the batch with an exception that carries
``.index`` (i) and ``.result`` (the BatchResult of the accesses before it).  The C core's
fast paths change no outcome and no counter, so the model needs none of them.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, List, NoReturn, Optional

import numpy as np

from cowsim import (
    BatchResult,
    CowsimError,
    InvalidArgument,
    OutOfMemory,
    ProcessExited,
    ProcessSuspended,
    SegmentationFault,
)

from .fault import access_one, check_access
from .filemap import bus_error
from .internal import ON_SEGFAULT, Outcome

# The door's BatchResult once it counts file faults and SIGBUS, else a local one with them.
if {"file", "sigbus"} <= {f.name for f in dataclasses.fields(BatchResult)}:
    _BatchResult: Any = BatchResult
else:
    @dataclasses.dataclass(frozen=True)
    class _BatchResult(BatchResult):     # type: ignore[no-redef]
        file: int = 0
        sigbus: int = 0

if TYPE_CHECKING:
    from .machine import RefMachine, RefProcess


def _batch_array(name: str, value: object, dtype: str, length: Optional[int] = None) -> np.ndarray:
    """A batch's array as cowsim checks it: an ndarray (else TypeError) of ``dtype`` (else
    TypeError), 1-D, C-contiguous and aligned (else InvalidArgument), of ``length``."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of {dtype}, not {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {dtype}, not {value.dtype}")
    if value.ndim != 1:
        raise InvalidArgument(f"{name} must be 1-D, got shape {value.shape}")
    if not value.flags.c_contiguous:
        raise InvalidArgument(f"{name} must be contiguous")
    if not value.flags.aligned:
        raise InvalidArgument(f"{name} must be aligned to {value.dtype.alignment} bytes")
    if length is not None and len(value) != length:
        raise InvalidArgument(f"{name} has length {len(value)}, expected {length}")
    return value


def _batch_writes(write: object, n: int) -> List[bool]:
    """The write flag of each access: a bool for all, or a bool array of length n."""
    if isinstance(write, (bool, np.bool_)):
        return [bool(write)] * n
    if not isinstance(write, np.ndarray):
        raise TypeError(f"write must be a bool or a NumPy bool array, not {type(write).__name__}")
    return [bool(w) for w in _batch_array("write", write, "bool", n)]


_BATCH_FIELD = {Outcome.HIT: "hits", Outcome.ZERO_PAGE: "zero_page", Outcome.ZERO_FILL: "zero_fill",
                Outcome.COW_COPY: "cow_copy", Outcome.COW_REUSE: "cow_reuse", Outcome.SHARED: "shared",
                Outcome.SEGFAULT: "segfaults", Outcome.FILE: "file", Outcome.SIGBUS: "sigbus"}


class _Batch:
    """A batch being run (Process.access, Machine.replay): access i either takes effect
    (its outcome is counted) or stops the batch with an exception that carries
    ``.index`` (i) and ``.result`` (the BatchResult of the accesses before it; a segfault
    that stops the batch is itself counted and done)."""

    def __init__(self, addrs: np.ndarray, write: object, outcomes: bool, on_segfault: str) -> None:
        self.addrs = [int(a) for a in addrs]
        self.writes = _batch_writes(write, len(self.addrs))
        if on_segfault not in ON_SEGFAULT:
            raise InvalidArgument(f"on_segfault must be one of {ON_SEGFAULT}, got {on_segfault!r}")
        self.stop = on_segfault == "raise"
        self.outcomes = np.zeros(len(self.addrs), np.uint8) if outcomes else None
        self.counts = dict.fromkeys(_BATCH_FIELD.values(), 0)
        self.done = 0

    def result(self) -> BatchResult:
        return _BatchResult(**self.counts, done=self.done, outcomes=self.outcomes)  # type: ignore[no-any-return]

    def fail(self, err: CowsimError, i: int) -> NoReturn:
        err.index = i
        err.result = self.result()
        raise err

    def step(self, p: RefProcess, i: int) -> None:
        """Access i by process p (live, not suspended)."""
        a, w = self.addrs[i], self.writes[i]
        try:
            check_access(p, a, w)
            outcome = access_one(p, a, w)[0]
        except SegmentationFault as e:
            self.record(i, Outcome.SEGFAULT)
            if self.stop:
                self.fail(SegmentationFault(f"segmentation fault at index {i}: {e}", e.address, e.access,
                                            e.reason), i)
            return
        except OutOfMemory as e:
            self.fail(OutOfMemory(f"out of simulated physical memory at index {i}: {e}"), i)
        self.record(i, outcome)
        if outcome == Outcome.SIGBUS and self.stop:
            be = bus_error(a, w)
            self.fail(type(be)(f"SIGBUS at index {i}: {be}", be.address, be.access), i)  # type: ignore[arg-type, attr-defined]

    def record(self, i: int, outcome: Outcome) -> None:
        self.counts[_BATCH_FIELD[outcome]] += 1
        if self.outcomes is not None:
            self.outcomes[i] = int(outcome)
        self.done = i + 1


def replay(m: RefMachine, pids: np.ndarray, addrs: np.ndarray, write: object = False, outcomes: bool = False,
           on_segfault: str = "continue") -> BatchResult:
    """Access i by ``pids[i]``, in order; a pid that is not a live, running process
    stops the replay there (InvalidArgument for a pid never created, ProcessExited,
    ProcessSuspended) with ``.index`` and ``.result`` as the other stops."""
    m._check_open()
    n = len(_batch_array("addrs", addrs, "uint64"))
    pid_list = [int(p) for p in _batch_array("pids", pids, "int32", n)]
    batch = _Batch(addrs, write, outcomes, on_segfault)
    for i, pid in enumerate(pid_list):
        p = m._procs.get(pid)   # live processes only: exited ones (held or reaped) are not here
        if p is None:
            if 0 < pid < m._next_pid:
                batch.fail(ProcessExited(f"replay: pid {pid} at index {i}: the process has exited"), i)
            batch.fail(InvalidArgument(f"replay: no process with pid {pid} at index {i}"), i)
        try:
            p._m
        except CowsimError as e:        # ProcessExited, ProcessSuspended
            batch.fail(type(e)(f"replay: pid {pid} at index {i}: {e}"), i)
        batch.step(p, i)
    return batch.result()


def access_batch(p: RefProcess, addrs: np.ndarray, write: object = False, outcomes: bool = False,
                 on_segfault: str = "continue") -> BatchResult:
    """A batch: each access as ``touch`` (docs/API.md); see ``_Batch`` for the stops."""
    p.machine._check_open()
    batch = _Batch(_batch_array("addrs", addrs, "uint64"), write, outcomes, on_segfault)
    try:
        p._m
    except (ProcessExited, ProcessSuspended) as e:   # a stop before access 0, as the core's
        batch.fail(e, 0)
    for i in range(len(batch.addrs)):
        batch.step(p, i)
    return batch.result()


