#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_core.c into fuzz/corpus/.

Each seed is a small, meaningful scenario (fork cow/eager with writes on both
sides, OOM in faults and forks, shared regions and fault-around, mprotect and
madvise, munmap of partial ranges, exits, bad arguments) on every page size,
in data and metadata mode, encoded in the harness's input format:

    c0: page size (c0 % 3), store_data (bit 2), va_bits mode (bits 3-4),
        try an invalid config first (bit 7, then one byte)
    c1: frames (2 + c1 % 96, or 2 + 2*c1 when c1 >= 224)
    c2: fault-around window (c2 & 7)
    then operations: one byte (op % 21) followed by the op's argument bytes.

Run:  python fuzz/make_corpus.py     (deterministic; rewrites fuzz/corpus/)
"""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parent / "corpus"

# op codes (op % 21 in the harness)
SPAWN, MMAP, MMAP_FIXED, MUNMAP, MPROTECT, MADVISE = 0, 2, 5, 6, 7, 8
TOUCH_R, TOUCH_W, READ, WRITE, FORK_COW, FORK_EAGER, EXIT, INSPECT = 9, 11, 13, 14, 15, 16, 17, 18
HOLD = 20   # then the pid byte and one byte: even = cs_proc_get, odd = cs_proc_put
PROT = {"none": 0, "r": 1, "rw": 3}
ADVICE = {"dontfork": 0, "dofork": 1, "wipeonfork": 2, "keeponfork": 3, "dontneed": 4}
VA = {"48": 0, "min": 1, "3level": 2, "63": 3}
FAULT_AROUND = {"64KiB": 0, "off": 1, "4KiB": 2, "16KiB": 3, "1MiB": 4}


def header(page: int = 0, store: bool = True, va: str = "48", frames: int = 64,
           fault_around: str = "64KiB", bad_config: int | None = None) -> bytes:
    """The three config bytes (+ the invalid-config byte)."""
    want = (page, int(store), VA[va], bad_config is not None)
    c0 = next(b for b in range(256)
              if (b % 3, (b >> 2) & 1, (b >> 3) & 3, bool(b & 0x80)) == want)
    assert 2 <= frames <= 97
    out = bytes([c0, frames - 2, FAULT_AROUND[fault_around]])
    if bad_config is not None:
        out += bytes([bad_config])
    return out


class Seq:
    """Builds an operation sequence; tracks how many pids exist (for pick_pid)."""

    def __init__(self, **config) -> None:
        self.buf = bytearray(header(**config))
        self.created = 0

    def pid(self, k: int, exact: bool = True) -> bytes:
        """Byte selecting pid k (1-based); exact=False prefers a live pid."""
        if k <= 0:
            return bytes([{0: 0, -1: 1}.get(k, 2)])
        for b in range(6, 256):
            if b % self.created == k - 1 and (b >= 128) == (not exact):
                return bytes([b])
        raise ValueError(k)

    @staticmethod
    def addr(region: int = 0, pages: int = 0, mode: int = 0) -> bytes:
        """Start of the region-th region (by address) + pages (|pages| <= 31)."""
        return bytes([(region << 4) | mode, (pages * 4) & 0xFF])

    @staticmethod
    def length(pages: int) -> bytes:
        assert 0 <= pages <= 31
        return bytes([pages])

    def op(self, code: int, *parts: bytes) -> "Seq":
        self.buf.append(code)
        for p in parts:
            self.buf += p
        return self

    def spawn(self) -> "Seq":
        self.created += 1
        return self.op(SPAWN)

    def mmap(self, pid: int, pages: int, prot: str = "rw", shared: bool = False) -> "Seq":
        return self.op(MMAP, self.pid(pid), self.length(pages), bytes([PROT[prot] | (4 if shared else 0)]))

    def mmap_fixed(self, pid: int, pages: int, region: int, off: int, prot: str = "rw") -> "Seq":
        return self.op(MMAP_FIXED, self.pid(pid), self.length(pages), bytes([PROT[prot]]),
                       self.addr(region, off))

    def munmap(self, pid: int, region: int, off: int, pages: int) -> "Seq":
        return self.op(MUNMAP, self.pid(pid), self.addr(region, off), self.length(pages))

    def mprotect(self, pid: int, region: int, off: int, pages: int, prot: str) -> "Seq":
        return self.op(MPROTECT, self.pid(pid), self.addr(region, off), self.length(pages), bytes([PROT[prot]]))

    def madvise(self, pid: int, region: int, off: int, pages: int, advice: str) -> "Seq":
        return self.op(MADVISE, self.pid(pid), self.addr(region, off), self.length(pages),
                       bytes([ADVICE[advice]]))

    def touch(self, pid: int, region: int, off: int, write: bool = False) -> "Seq":
        return self.op(TOUCH_W if write else TOUCH_R, self.pid(pid), self.addr(region, off))

    def write(self, pid: int, region: int, off: int, pages: int, fill: int = 0x41) -> "Seq":
        # length byte case 1: (b & 7) pages + next byte bytes
        return self.op(WRITE, self.pid(pid), self.addr(region, off), bytes([0x40 | pages, 0x10, fill]))

    def read(self, pid: int, region: int, off: int, nbytes: int = 40) -> "Seq":
        return self.op(READ, self.pid(pid), self.addr(region, off), bytes([nbytes & 63, 0]))

    def fork(self, pid: int, eager: bool = False) -> "Seq":
        self.created += 1
        return self.op(FORK_EAGER if eager else FORK_COW, self.pid(pid), b"\x00")

    def exit(self, pid: int) -> "Seq":
        return self.op(EXIT, self.pid(pid))

    def hold(self, pid: int, put: bool = False) -> "Seq":
        """cs_proc_get (or cs_proc_put) of pid k; k <= 0 as in pid()."""
        return self.op(HOLD, self.pid(pid), bytes([int(put)]))

    def inspect(self, pid: int, what: int, cap: int = 15) -> "Seq":
        extra = self.addr(0, 1) if what in (4, 7) else b""
        return self.op(INSPECT, self.pid(pid), bytes([(what << 4) | cap]), extra)

    def raw(self, data: bytes) -> "Seq":
        self.buf += data
        return self

    def bytes(self) -> bytes:
        return bytes(self.buf)


def scenarios():
    for page in (0, 1, 2):
        for store in (True, False):
            tag = f"p{page}{'d' if store else 'm'}"
            # Basic CoW: write, fork, child writes (copy), parent writes (reuse).
            s = Seq(page=page, store=store)
            s.spawn().mmap(1, 6).write(1, 0, 0, 3).fork(1).touch(2, 0, 1, True).touch(1, 0, 1, True)
            s.write(2, 0, 0, 2, 0x77).read(1, 0, 0).inspect(1, 3).inspect(2, 1).exit(2).touch(1, 0, 0, True)
            yield f"cow_{tag}", s.bytes()
            # Eager fork, then writes on both sides, exit parent first.
            s = Seq(page=page, store=store)
            s.spawn().mmap(1, 4).write(1, 0, 0, 4).touch(1, 0, 5).fork(1, eager=True).write(2, 0, 0, 1)
            s.exit(1).inspect(2, 1).touch(2, 0, 3, True).exit(2)
            yield f"eager_{tag}", s.bytes()
            # Out of memory in a fault, then free and retry.
            s = Seq(page=page, store=store, frames=8)
            s.spawn().mmap(1, 12).write(1, 0, 0, 7).touch(1, 0, 9, True).munmap(1, 0, 0, 2)
            s.touch(1, 0, 9, True).inspect(1, 0)
            yield f"oom_fault_{tag}", s.bytes()
            # Eager fork out of memory, cow fork fits.
            s = Seq(page=page, store=store, frames=14)
            s.spawn().mmap(1, 8).write(1, 0, 0, 7).fork(1, eager=True).fork(1).touch(3, 0, 0, True)
            yield f"oom_eager_{tag}", s.bytes()
            # Shared region with fault-around; forked child sees the writes.
            s = Seq(page=page, store=store, fault_around="64KiB")
            s.spawn().mmap(1, 20, shared=True).write(1, 0, 0, 3).touch(1, 0, 17, True).fork(1)
            s.touch(2, 0, 0).read(2, 0, 1).touch(2, 0, 17, True).munmap(1, 0, 2, 4).exit(1).inspect(2, 3)
            yield f"shared_{tag}", s.bytes()

    # Geometry variants.
    for va in ("min", "3level", "63"):
        s = Seq(page=0, va=va, frames=40)
        s.spawn().mmap(1, 9).mmap(1, 3, shared=True).write(1, 1, 0, 5).touch(1, 0, 1).fork(1)
        s.munmap(1, 1, 2, 30).touch(2, 1, 2, True).inspect(2, 1).exit(1).exit(2)
        yield f"va_{va}", s.bytes()
    for fa in ("off", "4KiB", "16KiB", "1MiB"):
        s = Seq(page=0, fault_around=fa)
        s.spawn().mmap(1, 31, shared=True).write(1, 0, 0, 7).touch(1, 0, 20, True).fork(1).touch(2, 0, 3)
        s.touch(2, 0, 21).inspect(2, 1).inspect(2, 4)
        yield f"faultaround_{fa}", s.bytes()

    # mprotect: rw -> r -> rw keeps CoW-shared entries read-only.
    s = Seq(page=0)
    s.spawn().mmap(1, 6).write(1, 0, 0, 4).fork(1).mprotect(1, 0, 1, 2, "r").touch(1, 0, 1, True)
    s.mprotect(1, 0, 0, 6, "rw").touch(1, 0, 1, True).mprotect(2, 0, 0, 6, "none").touch(2, 0, 0)
    s.inspect(1, 2).inspect(2, 2)
    yield "mprotect", s.bytes()
    # madvise: dontfork, wipeonfork, dontneed, wipeonfork on shared (ESHARED).
    s = Seq(page=0)
    s.spawn().mmap(1, 4).mmap(1, 4).mmap(1, 2, shared=True).write(1, 0, 0, 3).write(1, 1, 0, 3)
    s.madvise(1, 0, 0, 2, "wipeonfork").madvise(1, 1, 1, 1, "dontfork").madvise(1, 2, 0, 2, "wipeonfork")
    s.fork(1).inspect(2, 2).inspect(2, 1).madvise(1, 1, 0, 4, "dontneed").madvise(1, 0, 0, 4, "keeponfork")
    s.madvise(1, 1, 0, 4, "dofork").fork(1, eager=True).inspect(3, 1)
    yield "madvise", s.bytes()
    # Fixed mmaps: overlap (EEXIST), exact fit in a hole, below user_start.
    s = Seq(page=0)
    s.spawn().mmap(1, 10).munmap(1, 0, 3, 2).mmap_fixed(1, 2, 0, 3).mmap_fixed(1, 1, 0, 3)
    s.mmap_fixed(1, 4, 0, -4).op(MMAP_FIXED, s.pid(1), s.length(1), b"\x03", bytes([11, 0xFC]))
    s.inspect(1, 2)
    yield "mmap_fixed", s.bytes()
    # Exited processes and bad pids everywhere.
    s = Seq(page=0)
    s.spawn().mmap(1, 2).touch(1, 0, 0, True).exit(1).exit(1).op(FORK_COW, s.pid(1), b"\x00").touch(1, 0, 0)
    s.op(MMAP, b"\x00", s.length(1), b"\x03").op(FORK_COW, b"\x01", b"\x00").op(EXIT, b"\x05")
    s.inspect(1, 5).inspect(1, 1).inspect(1, 6)
    yield "exited", s.bytes()
    # Records: held across exit (final stats), reaped at the last put, bad holds.
    s = Seq(page=0)
    s.spawn().mmap(1, 2).touch(1, 0, 0, True).hold(1).hold(1).fork(1).hold(2).exit(1).inspect(1, 5)
    s.hold(1, put=True).inspect(1, 5).hold(1, put=True).inspect(1, 5).hold(1).hold(1, put=True)
    s.hold(2, put=True).hold(2, put=True).hold(0).hold(-1, put=True).exit(2).inspect(2, 6)
    yield "records", s.bytes()
    # Deep process tree, each generation writes one page (chains of CoW).
    s = Seq(page=0, frames=97)
    s.spawn().mmap(1, 8).write(1, 0, 0, 7)
    for k in range(1, 9):
        s.fork(k).touch(k + 1, 0, k % 8, True)
    for k in range(1, 10, 2):
        s.exit(k)
    s.inspect(2, 0)
    yield "tree", s.bytes()
    # Bad arguments: invalid configs, huge lengths, unaligned, raw addresses.
    for i in range(8):
        s = Seq(page=i % 3, bad_config=i)
        s.spawn().mmap(1, 2)
        s.op(MMAP, s.pid(1), bytes([0x60 | i]), b"\x03")                      # huge lengths
        s.op(MUNMAP, s.pid(1), bytes([15, 5]), s.length(1))                   # unaligned
        s.op(TOUCH_R, s.pid(1), bytes([14, 0]) + struct.pack("<Q", (1 << 64) - 1 - i))
        s.op(WRITE, s.pid(1), s.addr(0, 1), bytes([0xC0 | i, 0]))             # overflowing length
        s.op(MPROTECT, s.pid(1), s.addr(0, 0), s.length(2), b"\xf2")           # bad prot
        s.op(MADVISE, s.pid(1), s.addr(0, 0), s.length(1), b"\xfb")            # bad advice
        s.op(FORK_COW, s.pid(1), b"\xff")                                      # bad mode
        s.op(MMAP, s.pid(1), s.length(1), b"\xfe" if i % 2 else b"\xff")      # bad flags / prot
        yield f"bad_{i}", s.bytes()


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    seen = set()
    for name, data in scenarios():
        digest = hashlib.sha1(data).hexdigest()[:8]
        assert digest not in seen, name
        seen.add(digest)
        (OUT / f"{name}").write_bytes(data)
    print(f"wrote {len(seen)} seeds to {OUT}")


if __name__ == "__main__":
    main()
