"""Batched accesses over NumPy arrays: validation, the C call, the result.

cffi's ``from_buffer`` only reinterprets bytes, so dtype, shape and
contiguity are checked here before any pointer reaches C.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

from ._ffi import bus_error, check, ffi, lib, segfault
from ._types import BatchResult
from .errors import CowsimError, InvalidArgument, OutOfMemory

WriteSpec = Union[bool, np.ndarray]
_ON_SEGFAULT = ("continue", "raise")


def describe(value: Any, what: str) -> str:
    """``<N what>`` for an operation's message, whatever ``value`` is (a 0-d array has no len)."""
    size = getattr(value, "size", None) if isinstance(value, np.ndarray) else None
    if size is None and isinstance(value, (list, tuple)):
        size = len(value)
    return f"<{size if size is not None else '?'} {what}>"


def as_array(op: str, name: str, value: Any, dtype: str, length: Optional[int] = None) -> np.ndarray:
    """Checks that ``value`` is a 1-D, C-contiguous, aligned array of ``dtype`` (and length).

    Misaligned arrays (``np.frombuffer(buf, np.uint64, offset=1)``) are rejected, not copied:
    the core reads them in place, and a silent copy of a large trace would double its memory.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{op}: {name} must be a NumPy array of {dtype}, not {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise TypeError(f"{op}: {name} must have dtype {dtype}, not {value.dtype} (use .astype({dtype!r}))")
    if value.ndim != 1:
        raise InvalidArgument(f"{op}: {name} must be 1-D, got shape {value.shape}")
    if not value.flags.c_contiguous:
        raise InvalidArgument(f"{op}: {name} must be contiguous (use np.ascontiguousarray)")
    if not value.flags.aligned:
        raise InvalidArgument(
            f"{op}: {name} is not aligned to its {value.dtype.itemsize}-byte items (use .copy())")
    if length is not None and len(value) != length:
        raise InvalidArgument(f"{op}: {name} has length {len(value)}, expected {length}")
    return value


def write_spec(op: str, write: WriteSpec, n: int) -> Tuple[Any, int, Optional[np.ndarray]]:
    """Returns (pointer or NULL, write_all flag, array kept alive)."""
    if isinstance(write, (bool, np.bool_)):
        return ffi.NULL, int(bool(write)), None
    if not isinstance(write, np.ndarray):
        raise TypeError(f"{op}: write must be a bool or a NumPy bool array, not {type(write).__name__}")
    arr = as_array(op, "write", write, "bool", n)
    return ffi.from_buffer("uint8_t[]", arr), 0, arr


def on_segfault_flag(op: str, on_segfault: str) -> int:
    if on_segfault not in _ON_SEGFAULT:
        raise InvalidArgument(f"{op}: on_segfault must be one of {_ON_SEGFAULT}, got {on_segfault!r}")
    return int(on_segfault == "raise")


def run(
    op: str,
    addrs: Any,
    write: WriteSpec,
    outcomes: bool,
    on_segfault: str,
    call: Callable[..., int],
    error_context: Optional[Callable[[Any], str]] = None,
) -> BatchResult:
    """Validates a batch, runs ``call(addrs, writes, write_all, n, outcomes, stop, res)`` (the C
    function with its leading arguments bound) and builds the result or the exception."""
    arr = as_array(op, "addrs", addrs, "uint64")
    n = len(arr)
    wptr, wall, _keep = write_spec(op, write, n)
    stop = on_segfault_flag(op, on_segfault)
    out = np.empty(n, np.uint8) if outcomes else None
    res = ffi.new("cs_batch_result *")
    out_ptr = ffi.from_buffer("uint8_t[]", out) if out is not None else ffi.NULL
    rc = call(ffi.from_buffer("uint64_t[]", arr), wptr, wall, n, out_ptr, stop, res)
    return finish(op, rc, res, out, write, error_context)


def finish(
    op: str,
    rc: int,
    res: Any,
    out: Optional[np.ndarray],
    write: WriteSpec,
    error_context: Optional[Callable[[Any], str]] = None,
) -> BatchResult:
    """Builds the result, or raises with the stopping index and the partial result.

    Every stop -- a segfault, out of frames, a replay's pid that is not live -- raises an
    error carrying ``.index`` (the access that stopped the batch, not done) and ``.result``
    (what was done before it, which took effect).
    """
    result = BatchResult._from_c(res, out)
    if rc == lib.CS_OK:
        return result
    index = int(res.stop_index)
    err: CowsimError
    if rc in (lib.CS_ESEGV, lib.CS_ESIGBUS):
        written = write if isinstance(write, (bool, np.bool_)) else bool(write[index])
        if rc == lib.CS_ESIGBUS:
            err = bus_error(op, int(res.info.addr), bool(written), index)
        else:
            err = segfault(op, int(res.info.addr), bool(written), int(res.info.segv_reason), index)
    elif rc == lib.CS_ENOMEM:
        err = OutOfMemory(f"{op}: out of simulated physical memory at index {index}")
    else:
        try:
            check(rc, error_context(res) if error_context else op)
        except CowsimError as e:
            err = e
        else:  # pragma: no cover - check() returns only for CS_OK
            raise AssertionError(f"{op}: status {rc} raised nothing")
    err.index = index
    err.result = result
    raise err
