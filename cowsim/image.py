"""``ProgramImage``: a program as the ELF loader lays it out at ``execve`` (``Process.exec(image=...)``).

The loader (``load_elf_binary`` in fs/binfmt_elf.c) maps each ``PT_LOAD`` segment of
the file privately: its file part (text read-only, ``.data`` read-write) from the
page cache, the rest of its memory (``.bss``) anonymous, zeroing the tail of the last
file page (``padzero``: a write, so that page is copied at once); then the heap
(``brk``) after the last segment and the stack at the top of the address space, where
the kernel writes the arguments and the auxiliary vector (the top page).  Shared
libraries are mapped the same way at addresses the core picks (as ``ld.so``'s
``mmap`` calls do).  An image can be described by sizes (:meth:`ProgramImage.simple`)
or read from a real ELF file's program headers (:meth:`ProgramImage.from_elf`, with
the standard library's ``struct``: the header layout is fixed by the ELF standard).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Tuple, Union

from .errors import InvalidArgument
from .units import Size, parse_size

if TYPE_CHECKING:
    from .file import File
    from .process import Process

PT_LOAD = 1
PF_W = 2


@dataclass(frozen=True)
class Segment:
    """One ``PT_LOAD`` segment: ``memsz`` bytes at ``vaddr``, the first ``filesz`` from the
    file at ``offset``; ``prot`` "r" or "rw" (cowsim has no execute bit)."""

    vaddr: int
    memsz: int
    filesz: int
    offset: int
    prot: str = "r"


@dataclass(frozen=True)
class ProgramImage:
    """A program (or a shared library) to lay out at exec.

    Attributes:
        name: the file's name (one simulated file per name and machine: every process
            that execs the same image shares its page cache, as with a real binary).
        file_size: bytes of the file.
        segments: the ``PT_LOAD`` segments, ``vaddr`` relative to the load base.
        base: the load address of a position-dependent program; ``None`` lets the core
            pick one (libraries, PIE programs: top-down, below the stack).
        heap: bytes of ``brk`` heap mapped after the last segment (anonymous).
        stack: bytes of stack at the top of user space (the top page is written).
        libraries: images mapped after the program (``ld.so``, ``libc.so.6``, ...).
    """

    name: str
    file_size: int
    segments: Tuple[Segment, ...]
    base: Optional[int] = None
    heap: int = 0
    stack: int = 132 * 1024
    libraries: Tuple["ProgramImage", ...] = field(default=())

    @classmethod
    def simple(cls, name: str, text: Size, data: Size = 0, bss: Size = 0, heap: Size = 0,
               stack: Size = "132KiB", libraries: Tuple["ProgramImage", ...] = (),
               page_size: int = 4096) -> "ProgramImage":
        """A program of ``text`` bytes of code (read-only) then ``data`` bytes of
        initialised data and ``bss`` zeroed bytes (read-write), page aligned in the file."""
        t, d, b = (parse_size(v, f"ProgramImage.simple: {n}") for n, v in (("text", text), ("data", data), ("bss", bss)))
        if t <= 0:
            raise InvalidArgument("ProgramImage.simple: text must be at least one byte")
        segs = [Segment(0, t, t, 0, "r")]
        off = -(-t // page_size) * page_size
        if d or b:
            segs.append(Segment(off, d + b, d, off, "rw"))
        return cls(name, off + d, tuple(segs), None, parse_size(heap, "heap"), parse_size(stack, "stack"),
                   tuple(libraries))

    @classmethod
    def from_elf(cls, path: Union[str, Path], heap: Size = 0, stack: Size = "132KiB",
                 libraries: Tuple["ProgramImage", ...] = ()) -> "ProgramImage":
        """Reads the ``PT_LOAD`` program headers of a 64-bit little-endian ELF file.

        Raises:
            InvalidArgument: not such an ELF file, or no loadable segment.
        """
        p = Path(path)
        raw = p.read_bytes()
        if raw[:4] != b"\x7fELF" or len(raw) < 64 or raw[4] != 2 or raw[5] != 1:
            raise InvalidArgument(f"ProgramImage.from_elf({str(path)!r}): not a 64-bit little-endian ELF file")
        e_type = struct.unpack_from("<H", raw, 16)[0]
        phoff, = struct.unpack_from("<Q", raw, 32)
        phentsize, phnum = struct.unpack_from("<HH", raw, 54)
        segs = []
        for i in range(phnum):
            at = phoff + i * phentsize
            if at + 56 > len(raw):
                raise InvalidArgument(f"ProgramImage.from_elf({str(path)!r}): truncated program headers")
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = struct.unpack_from("<IIQQQQQQ", raw, at)
            if p_type == PT_LOAD and p_memsz:
                segs.append(Segment(p_vaddr, p_memsz, p_filesz, p_offset, "rw" if p_flags & PF_W else "r"))
        if not segs:
            raise InvalidArgument(f"ProgramImage.from_elf({str(path)!r}): no PT_LOAD segment")
        base = None if e_type == 3 else 0  # ET_DYN: placed by the core; ET_EXEC: at its addresses
        return cls(p.name, len(raw), tuple(segs), base, parse_size(heap, "heap"), parse_size(stack, "stack"),
                   tuple(libraries))


def _map_image(p: "Process", img: ProgramImage, f: "File", layout: Dict[str, Tuple[int, int]], prefix: str,
               base: Optional[int]) -> int:
    """Maps one image's segments at ``base`` (None: where the core puts it); returns the
    end of its last segment."""
    ps = p.machine.page_size

    def down(x: int) -> int:
        return x - x % ps

    def up(x: int) -> int:
        return -(-x // ps) * ps

    lo = down(min(s.vaddr for s in img.segments))
    hi = up(max(s.vaddr + s.memsz for s in img.segments))
    if base is None:  # reserve the span where the core puts it, then map into it
        base = p.mmap(hi - lo, prot="none") - lo
        p.munmap(base + lo, hi - lo)
    for k, s in enumerate(img.segments):
        if s.vaddr % ps != s.offset % ps:
            raise InvalidArgument(f"exec({img.name!r}): segment {k} is not congruent to its offset")
        start = down(base + s.vaddr)
        file_end = up(base + s.vaddr + s.filesz)
        mem_end = up(base + s.vaddr + s.memsz)
        what = "text" if s.prot == "r" else "data"
        if s.filesz:
            p.mmap(file_end - start, prot=s.prot, file=f, offset=down(s.offset), addr=start)  # type: ignore[arg-type]
            _name(layout, f"{prefix}{what}", (start, file_end))
        if mem_end > file_end:
            p.mmap(mem_end - file_end, prot="rw", addr=file_end)
            _name(layout, f"{prefix}bss", (file_end, mem_end))
        if s.memsz > s.filesz and (base + s.vaddr + s.filesz) % ps:
            p.touch(base + s.vaddr + s.filesz, write=True)  # padzero: the file page's tail is zeroed
    return base + hi


def _name(layout: Dict[str, Tuple[int, int]], name: str, span: Tuple[int, int]) -> None:
    """text, text2, text3, ...: a library has several read-only segments."""
    key, k = name, 1
    while key in layout:
        k += 1
        key = f"{name}{k}"
    layout[key] = span


def exec_image(p: "Process", img: ProgramImage) -> Dict[str, Tuple[int, int]]:
    """``Process.exec(image=...)``'s layout after the core's exec: returns the regions by name."""
    m = p.machine
    layout: Dict[str, Tuple[int, int]] = {}
    ps = m.page_size
    if img.stack:
        size = -(-img.stack // ps) * ps
        top = m.user_end
        p.mmap(size, addr=top - size)
        p.touch(top - ps, write=True)  # argv, envp and the auxiliary vector
        layout["stack"] = (top - size, top)
    # ELF_ET_DYN_BASE: a position-independent program goes at 2/3 of the address space
    base = img.base if img.base is not None else (m.user_end - ps) // 3 * 2 // ps * ps
    end = _map_image(p, img, m._image_file(img), layout, "", base)
    if img.heap:
        size = -(-img.heap // ps) * ps
        p.mmap(size, addr=end)
        layout["heap"] = (end, end + size)
    for lib_img in img.libraries:
        _map_image(p, lib_img, m._image_file(lib_img), layout, f"{lib_img.name}:", lib_img.base)
    return layout


__all__ = ["ProgramImage", "Segment", "exec_image"]
