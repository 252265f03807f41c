"""The cowsim exception family (DESIGN.md section 4)."""
from __future__ import annotations

from typing import Any, Optional


class CowsimError(Exception):
    """Base class of every error cowsim raises on purpose.

    Attributes:
        index: for a batch that stopped, the index of the access that stopped it.
        result: for a batch that stopped, the ``BatchResult`` of what was done.
    """

    index: Optional[int] = None
    result: Any = None


class SegmentationFault(CowsimError):
    """An access outside every region, or without the region's permission.

    Attributes:
        address: the first faulting byte address.
        access: ``"read"`` or ``"write"``.
        reason: ``"unmapped"`` or ``"protection"``.
    """

    def __init__(self, message: str, address: int, access: str, reason: str) -> None:
        super().__init__(message)
        self.address = address
        self.access = access
        self.reason = reason


class BusError(CowsimError):
    """SIGBUS: an access to a page of a file mapping wholly past the end of the file (FB1).

    Attributes:
        address: the faulting byte address.
        access: ``"read"`` or ``"write"``.
    """

    def __init__(self, message: str, address: int, access: str) -> None:
        super().__init__(message)
        self.address = address
        self.access = access


class OutOfMemory(CowsimError, MemoryError):
    """The simulated machine ran out of physical frames (or virtual space)."""


class HostMemoryError(CowsimError, MemoryError):
    """The host refused memory to the simulator itself (not a simulated OOM)."""


class InvalidArgument(CowsimError, ValueError):
    """An argument is out of range, unaligned, unknown or inconsistent."""


class ProcessExited(CowsimError):
    """The process has exited; only its final statistics remain readable."""


class ProcessSuspended(CowsimError):
    """The process lent its address space to a vfork child and waits for it to
    exec or exit; only its statistics are readable meanwhile."""


class InvariantViolation(CowsimError, AssertionError):
    """``Machine.check()`` found the core's state inconsistent (a cowsim bug)."""
