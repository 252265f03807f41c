"""The one door to the C core: only this module imports ``ffi`` and ``lib``.

Also the error funnel: every C call's status goes through :func:`check`.
"""
from __future__ import annotations

from typing import NoReturn, Optional

from ._core import ffi, lib
from .errors import (
    CowsimError,
    HostMemoryError,
    InvalidArgument,
    OutOfMemory,
    ProcessExited,
    ProcessSuspended,
    SegmentationFault,
    BusError,
)

__all__ = ["ffi", "lib", "check", "segfault", "bus_error"]

_SEGV_REASON = {lib.CS_SEGV_UNMAPPED: "unmapped", lib.CS_SEGV_PROTECTION: "protection"}

_MESSAGES = {
    lib.CS_ENOMEM: (OutOfMemory, "out of simulated physical memory (no free frame)"),
    lib.CS_EINVAL: (InvalidArgument, "invalid argument"),
    lib.CS_ENOPROC: (InvalidArgument, "no such process"),
    lib.CS_EEXITED: (ProcessExited, "the process has exited"),
    lib.CS_EHOST: (HostMemoryError, "the host refused memory to the simulator"),
    lib.CS_EEXIST: (InvalidArgument, "the fixed range overlaps an existing region"),
    lib.CS_ENOVSPACE: (OutOfMemory, "no free virtual address range is large enough"),
    lib.CS_ENOTMAPPED: (InvalidArgument, "the range is not entirely mapped"),
    lib.CS_ENODATA: (InvalidArgument, "the machine keeps no bytes (store_data=False)"),
    lib.CS_ESHARED: (InvalidArgument, "not allowed on a shared region"),
    lib.CS_ESUSPENDED: (ProcessSuspended, "suspended until its vfork child execs or exits"),
    lib.CS_ENOFILE: (InvalidArgument, "no such file (never created, or deleted)"),
}


def check(rc: int, context: str, info: Optional[object] = None, write: bool = False) -> None:
    """Raises the exception for a C status code; returns on ``CS_OK``.

    Args:
        rc: the status the C function returned.
        context: the operation and its arguments, for the message.
        info: the ``cs_access_info`` of an access, for segmentation faults.
        write: whether the access was a write.
    """
    if rc == lib.CS_OK:
        return
    _raise(rc, context, info, write)


def segfault(context: str, address: int, write: bool, reason: int, index: Optional[int] = None) -> SegmentationFault:
    """The one place a ``SegmentationFault`` is built (a single access, a batch, ``touch``).

    Args:
        context: the operation and its arguments.
        address: the faulting address.
        write: whether the access was a write.
        reason: the core's ``CS_SEGV_*`` code.
        index: for a batch, the index of the access.
    """
    access = "write" if write else "read"
    why = _SEGV_REASON.get(reason, "unmapped")
    where = "" if index is None else f" at index {index}"
    return SegmentationFault(f"{context}: segmentation fault{where}: {access} at {address:#x} ({why})",
                             address, access, why)


def bus_error(context: str, address: int, write: bool, index: Optional[int] = None) -> BusError:
    """The one place a ``BusError`` (SIGBUS past the end of a file) is built."""
    access = "write" if write else "read"
    where = "" if index is None else f" at index {index}"
    return BusError(f"{context}: SIGBUS{where}: {access} at {address:#x} (past the end of the mapped file)",
                    address, access)


def _raise(rc: int, context: str, info: Optional[object], write: bool) -> NoReturn:
    if rc == lib.CS_ESEGV and info is not None:
        raise segfault(context, int(info.addr), write, int(info.segv_reason))  # type: ignore[attr-defined]
    if rc == lib.CS_ESIGBUS:
        raise bus_error(context, int(info.addr) if info is not None else 0, write)  # type: ignore[attr-defined]
    cls, text = _MESSAGES.get(rc, (CowsimError, f"core error {rc}"))
    raise cls(f"{context}: {text}")
