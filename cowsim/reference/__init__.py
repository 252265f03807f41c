"""A pure-Python reference model of cowsim: the executable specification.

This package implements docs/SEMANTICS.md in plain, slow, readable Python.  It is the
oracle of the differential test (tests/test_differential.py), which drives the C core
(:class:`cowsim.Machine`) and this model (:class:`RefMachine`) with the same random
operation sequences and requires identical observable results: outcomes, exceptions,
bytes read, statistics, smaps, page tables, regions and the frame table, frame numbers
included.

The model exposes the same API as docs/API.md (``RefMachine`` for ``Machine``,
``RefProcess`` for ``Process``) and returns the same types.  Clarity wins over speed
everywhere: page tables are dictionaries, frames are Python lists, a multi-page access
is a loop over pages.  It is pure Python and independent of the core: it imports only
the public types and errors of :mod:`cowsim`.

Its modules mirror ``csrc/``, so that one rule is found in the same-named file on both
sides::

    internal.py   internal.h   constants, argument checks, tables, entries, regions
    frames.py     frames.c     the frame allocator (LIFO free list, huge blocks)
    pagetable.py  pagetable.c  lookups, allocation, walks, freeing of tables
    regions.py    regions.c    mmap, munmap, mprotect, madvise, splits, zaps
    fault.py      fault.c      F1-F6, touch, read, write
    filemap.py    filemap.c    files, the page cache, readahead, file faults (FR1-FR4, FB1, FC1, FL)
    thp.py        thp.c        transparent huge pages
    odf.py        odf.c        on-demand fork: shared last-level tables
    fork.py       fork.c       fork (cow, eager, odf, vfork), exec, exit
    batch.py      batch.c      Process.access, Machine.replay
    stats.py      stats.c      counters, smaps, regions, translate, page and frame tables
    check.py      check.c      the invariant check
    machine.py    machine.c    RefMachine, RefProcess (process records, pidmap.c)

Each operation is a function of the process (or machine) it acts on, named after its C
counterpart where there is one (``zap_range``, ``thp_split``, ``odf_unshare``...);
``RefMachine`` and ``RefProcess`` bind the public ones as methods.

Orders that decide frame numbers (the free list is LIFO, so the order in which frames
are freed is observable).  Where docs/SEMANTICS.md leaves an order open, the model does
what Linux does; each module's docstring states its orders (a fault allocates its
missing tables top-down, then its data frame; fork walks regions and tables in address
order; munmap zaps, then frees tables, then releases shmem objects; ...).

The package ships in the wheel (``cowsim.reference``) as the executable specification:
a reader or a downstream tool may run it beside the core.  It is not the simulator --
it is thousands of times slower -- and its only stable surface is what this module
exports; its internals change with the core.

Example:
    >>> m = RefMachine(memory="1MiB")
    >>> p = m.spawn()
    >>> a = p.mmap(3 * 4096)
    >>> p.write(a, b"hi")
    >>> p.read(a, 2)
    b'hi'
    >>> p.stats.faults_zero_fill, m.stats.page_table_frames
    (1, 4)
"""
from .internal import FRAME_DTYPE, PAGE_TABLE_DTYPE, parse_size
from .filemap import RefFile
from .machine import RefMachine, RefProcess

__all__ = ["RefMachine", "RefProcess", "RefFile", "FRAME_DTYPE", "PAGE_TABLE_DTYPE", "parse_size"]
