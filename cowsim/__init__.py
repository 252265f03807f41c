"""cowsim — an exact, fast simulator of Linux virtual memory, fork() and copy-on-write.

>>> import cowsim
>>> m = cowsim.Machine(memory="1MiB")
>>> p = m.spawn()
>>> a = p.mmap(2 * 4096)
>>> p.write(a, b"hi")
>>> c = p.fork()
>>> c.touch(a, write=True)
<Outcome.COW_COPY: 3>
"""
from ._types import (
    Advice,
    BatchResult,
    ForkMode,
    OnSegfault,
    Prot,
    ThpCow,
    FrameFlags,
    FileStats,
    MachineStats,
    MemStatus,
    Outcome,
    ProcessState,
    ProcessStats,
    Region,
    Translation,
)
from .errors import (
    BusError,
    CowsimError,
    HostMemoryError,
    InvalidArgument,
    InvariantViolation,
    OutOfMemory,
    ProcessExited,
    ProcessSuspended,
    SegmentationFault,
)
from .file import File, Folio
from .image import ProgramImage, Segment
from .machine import Machine
from .process import FORK_MODES, Process
from .units import format_size, parse_size

__version__ = "0.1.0"

__all__ = [
    "Machine",
    "Process",
    "File",
    "Folio",
    "ProgramImage",
    "Segment",
    "FORK_MODES",
    "Outcome",
    "ForkMode",
    "Prot",
    "Advice",
    "ThpCow",
    "OnSegfault",
    "BatchResult",
    "FrameFlags",
    "MachineStats",
    "FileStats",
    "MemStatus",
    "ProcessState",
    "ProcessStats",
    "Region",
    "Translation",
    "CowsimError",
    "HostMemoryError",
    "SegmentationFault",
    "BusError",
    "OutOfMemory",
    "InvalidArgument",
    "ProcessExited",
    "ProcessSuspended",
    "InvariantViolation",
    "parse_size",
    "format_size",
]
