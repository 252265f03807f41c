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
    then operations: one byte (op % 27) followed by the op's argument bytes.

Besides the small scenarios, ``long_*`` seeds are long multi-process sequences (200+
operations, up to the harness's 256, each under the 2048-byte limit of .ci/fuzz): spawns,
forks of every mode (vfork included), exec, exits, mmaps, writes, batches and replays over
several processes, drawn from a fixed-seed PRNG, so that a one-minute run starts from deep
states (many processes, shared and copied pages, suspended vfork parents) instead of
having to grow there byte by byte.

Run:  python fuzz/make_corpus.py     (deterministic; rewrites fuzz/corpus/)
"""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parent / "corpus"

# op codes (op % 27 in the harness)
SPAWN, MMAP, MMAP_FIXED, MUNMAP, MPROTECT, MADVISE = 0, 2, 5, 6, 7, 8
TOUCH_R, TOUCH_W, READ, WRITE, FORK_COW, FORK_EAGER, EXIT, FILE, INSPECT = 9, 11, 13, 14, 15, 16, 17, 18, 19
# FILE: the pid byte, then b (b & 7: 0 create, 1 pwrite, 2 pread, 3 fsync, 4 evict, 5 unlink,
# 6 drop_caches, 7 mmap; bit 3: cached / a read buffer / a fixed address; bit 4: rw; bit 5: shared),
# c (the file id: c % (files + 2)), the offset (x page/4) and the length (x page/16) bytes
FILE_OPS = {"create": 0, "pwrite": 1, "pread": 2, "fsync": 3, "evict": 4, "unlink": 5, "drop": 6, "mmap": 7}
VFORK, EXEC, BATCH, REPLAY = 20, 21, 22, 24
HOLD = 26   # then the pid byte and one byte: even = cs_proc_get, odd = cs_proc_put
MAX_OPS, MAX_LEN, MAX_PIDS = 256, 2048, 48     # the harness's and .ci/fuzz's limits
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
        who = self.pid(pid)       # (pick_pid counts the pids created before this fork)
        self.created += 1
        return self.op(FORK_EAGER if eager else FORK_COW, who, b"\x00")

    def exit(self, pid: int) -> "Seq":
        return self.op(EXIT, self.pid(pid))

    def vfork(self, pid: int) -> "Seq":
        who = self.pid(pid)
        self.created += 1
        return self.op(VFORK, who)

    def exec(self, pid: int) -> "Seq":
        return self.op(EXEC, self.pid(pid))

    @staticmethod
    def _batch_flags(n: int, write, outcomes: bool, stop: bool) -> bytes:
        """flags (outcomes, stop, per-access writes, write_all) and the length byte."""
        flags = int(outcomes) | int(stop) << 1 | (4 if write is None else 8 * int(bool(write)))
        if n >= 64:
            lb = 240 + min(15, (n - 64) // 24)
        else:
            lb = n % 40
        return bytes([flags, lb])

    @staticmethod
    def _strided(region: int, off: int) -> bytes:
        """The batch's addresses: a strided walk over 32 pages from region + off pages."""
        return Seq.addr(region, off) + bytes([1, (region * 29 + off * 7 + 3) & 0xFF])

    def batch(self, pid: int, region: int, off: int, n: int, write=False, outcomes=False,
              stop=False) -> "Seq":
        """cs_access_batch of about n accesses (write: True, False or None = per access)."""
        fl = self._batch_flags(n, write, outcomes, stop)
        return self.op(BATCH, self.pid(pid), fl, self._strided(region, off))

    def replay(self, runs, write=False, outcomes=False, stop=False) -> "Seq":
        """cs_replay of runs (pid, region, off, count), strided within each run."""
        fl = self._batch_flags(sum(r[3] for r in runs), write, outcomes, stop)
        left = fl[1] % 40 if fl[1] < 240 else 64 + (fl[1] - 240) * 24   # the harness's length
        parts, k = [], 0
        while left > 0:         # the runs, cycled and cut so that they cover exactly that many
            pid, region, off, count = runs[k % len(runs)]
            count = min(count, left, 24)
            parts.append(self.pid(pid) + bytes([count - 1]) + self._strided(region, off))
            left -= count
            k += 1
        return self.op(REPLAY, fl, *parts)

    def hold(self, pid: int, put: bool = False) -> "Seq":
        """cs_proc_get (or cs_proc_put) of pid k; k <= 0 as in pid()."""
        return self.op(HOLD, self.pid(pid), bytes([int(put)]))

    def file(self, pid: int, what: str, file_id: int = 1, off: int = 0, length: int = 64, flags: int = 0,
             files: int = 1) -> "Seq":
        """A file operation (offset in quarter pages, length in sixteenths of a page)."""
        b = FILE_OPS[what] | flags
        c = next(x for x in range(256) if x % (files + 2) == file_id)
        return self.op(FILE, self.pid(pid), bytes([b, c, off, length]))

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

    # Files: create (cached / not), write, map private and shared, read and write through the
    # mappings, fork, sync, evict, drop_caches, unlink while mapped.
    for page in (0, 1, 2):
        for store in (True, False):
            s = Seq(page=page, store=store, frames=90)
            s.spawn().file(1, "create", length=160, flags=8, files=0).file(1, "create", length=255, files=1)
            s.file(1, "pwrite", 2, off=2, length=200, files=2).file(1, "mmap", 1, length=160, files=2)
            s.file(1, "mmap", 2, length=255, flags=0x30, files=2).touch(1, 0, 3).touch(1, 0, 2, True)
            s.touch(1, 1, 9).touch(1, 0, 1, True).fork(1).touch(2, 0, 4, True).file(1, "fsync", 2, files=2)
            s.touch(2, 0, 4, True).file(1, "evict", 1, files=2).file(1, "drop", files=2)
            s.file(1, "unlink", 2, files=2).exit(2).touch(1, 1, 12).file(1, "pread", 1, off=1, length=90,
                                                                          flags=8, files=2)
            yield f"files_p{page}{'d' if store else 'm'}", s.bytes()

    # vfork, exec, batches and replays, small.
    s = Seq(page=0, frames=40)
    s.spawn().mmap(1, 6).write(1, 0, 0, 3).vfork(1).touch(1, 0, 0).batch(2, 0, 0, 12, write=True)
    s.exec(1).exec(2).touch(1, 0, 1, True).replay([(1, 0, 0, 8), (2, 0, 0, 4), (1, 0, 1, 6)])
    s.vfork(1).exit(3).replay([(1, 0, 0, 4), (3, 0, 0, 4)]).exit(2).replay([(2, 0, 0, 3)])
    yield "vfork_exec_batch", s.bytes()
    for i, (page, frames) in enumerate([(0, 97), (1, 80), (2, 60), (0, 64), (0, 90), (1, 97)]):
        yield f"long_{i}", long_sequence(i, page, frames)


class Long(Seq):
    """A Seq that also tracks each pid's state (live, suspended vfork parent, exited) and
    its region count, so that random operations mostly act on live processes."""

    def __init__(self, rng, **config) -> None:
        super().__init__(**config)
        self.rng = rng
        self.state: dict[int, str] = {}
        self.lender: dict[int, int] = {}
        self.nregions: dict[int, int] = {}
        self.ops = 0

    def op(self, code: int, *parts: bytes) -> "Seq":
        self.ops += 1
        return super().op(code, *parts)

    def live(self) -> list[int]:
        return [p for p, st in self.state.items() if st == "live"]

    def any_pid(self) -> int:
        """Mostly a live pid; now and then a suspended, exited, 0 or -1 one."""
        r = self.rng.random()
        others = [p for p, st in self.state.items() if st != "live"]
        if r < 0.06 and others:
            return self.rng.choice(others)
        if r < 0.08:
            return self.rng.choice([0, -1])
        return self.rng.choice(self.live())

    def new_pid(self, parent: int, mode: str) -> None:
        child = self.created       # (Seq.created was just incremented)
        self.state[child] = "live"
        self.nregions[child] = self.nregions.get(parent, 0)
        if mode == "vfork" and self.state.get(parent) == "live":
            self.state[parent] = "suspended"
            self.lender[child] = parent
        elif self.state.get(parent) != "live":
            del self.state[child]     # the fork fails: no child
            self.created -= 1

    def release(self, pid: int) -> None:
        if pid in self.lender:
            self.state[self.lender.pop(pid)] = "live"


def long_sequence(seed: int, page: int, frames: int) -> bytes:
    """About 200-250 random operations over up to a dozen processes."""
    import random
    rng = random.Random(seed)
    s = Long(rng, page=page, frames=frames, store=seed % 2 == 0)
    for _ in range(3):
        s.spawn()
        s.state[s.created] = "live"
        s.nregions[s.created] = 0
    for p in (1, 2, 3):
        s.mmap(p, rng.randint(4, 20), shared=p == 3)
        s.nregions[p] = 1
        s.write(p, 0, 0, rng.randint(1, 4), 0x30 + p)
    while s.ops < 240 and len(s.buf) < MAX_LEN - 64:
        if not s.live():
            s.spawn()
            s.state[s.created] = "live"
            s.nregions[s.created] = 0
            continue
        pid = s.any_pid()
        nreg = max(1, s.nregions.get(pid, 1))
        reg, off = rng.randrange(nreg), rng.randint(-2, 20)
        kind = rng.choices(["touch", "write", "fork", "vfork", "exec", "exit", "mmap", "munmap",
                            "mprotect", "batch", "replay", "spawn", "read", "inspect"],
                           [14, 8, 6, 4, 3, 4, 6, 3, 3, 12, 10, 2, 3, 3])[0]
        if kind in ("fork", "vfork", "spawn") and s.created >= MAX_PIDS - 1:
            kind = "batch"
        if kind == "touch":
            s.touch(pid, reg, off, rng.random() < 0.6)
        elif kind == "write":
            s.write(pid, reg, off % 16, rng.randint(0, 3), rng.randrange(256))
        elif kind == "read":
            s.read(pid, reg, off, rng.randint(1, 63))
        elif kind == "fork":
            if pid <= 0:
                continue
            eager = rng.random() < 0.25
            who = s.pid(pid)
            s.created += 1
            s.op(FORK_EAGER if eager else FORK_COW, who, bytes([rng.randrange(2)]))   # odd: odf
            s.new_pid(pid, "fork")
        elif kind == "vfork":
            if pid <= 0:
                continue
            s.vfork(pid)
            s.new_pid(pid, "vfork")
        elif kind == "exec":
            s.exec(pid)
            if s.state.get(pid) == "live":
                s.release(pid)
                s.nregions[pid] = 0
        elif kind == "exit":
            if len(s.live()) < 3 and rng.random() < 0.8:
                continue
            s.exit(pid)
            if s.state.get(pid) == "live":
                s.release(pid)
                s.state[pid] = "exited"
        elif kind == "mmap":
            s.mmap(pid, rng.randint(1, 24), prot=rng.choice(["rw", "rw", "rw", "r"]), shared=rng.random() < 0.3)
            if s.state.get(pid) == "live":
                s.nregions[pid] = nreg + 1
        elif kind == "munmap":
            s.munmap(pid, reg, rng.randint(0, 4), rng.randint(1, 6))
        elif kind == "mprotect":
            s.mprotect(pid, reg, rng.randint(0, 4), rng.randint(1, 6), rng.choice(["r", "rw", "rw", "none"]))
        elif kind == "batch":
            s.batch(pid, reg, off % 8, rng.choice([16, 40, 100, 200, 400]), write=rng.choice([True, False, None]),
                    outcomes=rng.random() < 0.5, stop=rng.random() < 0.3)
        elif kind == "replay":
            runs = [(s.any_pid(), rng.randrange(2), rng.randint(0, 8), rng.randint(2, 24))
                    for _ in range(rng.randint(2, 6))]
            s.replay(runs, write=rng.choice([True, False, None]), outcomes=rng.random() < 0.5,
                     stop=rng.random() < 0.3)
        elif kind == "spawn":
            s.spawn()
            s.state[s.created] = "live"
            s.nregions[s.created] = 0
        else:
            s.inspect(pid, rng.randrange(8))
    data = s.bytes()
    assert len(data) <= MAX_LEN and s.ops <= MAX_OPS, (len(data), s.ops)
    return data


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
