"""Bad input at every public entry point, and running out of memory everywhere.

Table-driven: every case calls one entry point of a small, known machine with
one bad argument (wrong type, bool for int, negative/zero/huge length,
unaligned address, range leaving the address space, unknown prot/mode/advice,
overlapping fixed mapping, exited process, unknown pid, ...) and asserts

* the documented exception class (``InvalidArgument``, ``TypeError``,
  ``ProcessExited``, ``OutOfMemory``, ``SegmentationFault``, and
  ``CowsimError`` after ``close()``);
* a message naming the operation and the offending argument (substrings);
* ``m.check()`` passes and nothing observable changed: machine stats, frame
  table, live pids, every process's stats, regions, page table and smaps —
  except the segfault counters of a segmentation fault (+1, machine and process).

Then out-of-memory during a fault, a CoW fork, an eager fork, a spawn, a shared
fault and when a new region's page tables cannot be allocated: the operation
fails with ``OutOfMemory``, changes nothing, the machine stays usable, and once
memory is freed the very same operation succeeds with exact counts.

No case here is an xfail: every one passes on the current core (the audit's defects
have their regression tests in test_audit_defects.py).
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import pytest

import cowsim
from cowsim import CowsimError, InvalidArgument, OutOfMemory, ProcessExited, SegmentationFault

PAGE = 4096
U64 = 2**64


# -- a small known world ------------------------------------------------------------

def make_world(store_data: bool = True) -> SimpleNamespace:
    """A 1 MiB machine: process p with private rw / r / none regions, a shared
    region, a freed hole, a forked child, and an exited process."""
    m = cowsim.Machine(memory="1MiB", store_data=store_data)
    p = m.spawn()
    rw = p.mmap(4 * PAGE)
    p.write(rw, b"hello")
    p.touch(rw + PAGE, write=True)
    ro = p.mmap(2 * PAGE, prot="r")
    p.touch(ro)
    none = p.mmap(PAGE, prot="none")
    sh = p.mmap(2 * PAGE, shared=True)
    p.write(sh, b"shared")
    hole = p.mmap(3 * PAGE)
    p.munmap(hole, 3 * PAGE)
    dead = m.spawn()
    dead.mmap(PAGE)
    dead.exit()
    child = p.fork()
    m.check()
    return SimpleNamespace(m=m, p=p, child=child, dead=dead, rw=rw, ro=ro, none=none, sh=sh, hole=hole,
                           end=m.user_end, start=m.user_start)


def observe(m: cowsim.Machine) -> dict:
    """Everything observable about m and all its processes (live and exited)."""
    out: dict = {
        "machine": dataclasses.asdict(m.stats),
        "frames": m.frames().tolist(),
        "pids": [p.pid for p in m.processes],
    }
    live = set(out["pids"])
    for pid in range(1, 64):
        try:
            proc = m.process(pid)
        except InvalidArgument:
            break
        entry: dict = {"stats": {k: v for k, v in dataclasses.asdict(proc.stats).items()
                                 if k != "accesses" and not k.startswith("tlb_")}}
        if pid in live:
            entry.update(regions=[dataclasses.astuple(r) for r in proc.regions],
                         page_table=proc.page_table().tolist(), smaps=proc.smaps())
        out[pid] = entry
    return out


def _without_segfaults(obs: dict) -> dict:
    obs = dict(obs)
    obs["machine"] = {k: v for k, v in obs["machine"].items() if k != "segfaults"}
    for key, entry in list(obs.items()):
        if isinstance(key, int):
            entry = dict(entry)
            entry["stats"] = {k: v for k, v in entry["stats"].items() if k != "segfaults"}
            obs[key] = entry
    return obs


def assert_unchanged(before: dict, after: dict, segfault_pid: Optional[int] = None) -> None:
    if segfault_pid is None:
        assert after == before
        return
    assert _without_segfaults(after) == _without_segfaults(before)
    assert after["machine"]["segfaults"] == before["machine"]["segfaults"] + 1
    assert after[segfault_pid]["stats"]["segfaults"] == before[segfault_pid]["stats"]["segfaults"] + 1


# -- the table ------------------------------------------------------------------------

@dataclasses.dataclass
class Case:
    id: str
    call: Callable[[SimpleNamespace], Any]
    exc: type
    words: Sequence[str]                    # message substrings, formatted with the world's fields
    attrs: Optional[dict] = None            # expected exception attributes (segfaults)
    store_data: bool = True

    def param(self):
        return pytest.param(self, id=self.id)


def _cases() -> List[Case]:
    C = Case
    cases: List[Case] = []
    add = cases.append

    # ---- Machine.process(pid)
    for bad, exc in [("1", TypeError), (1.0, TypeError), (None, TypeError), (True, TypeError),
                     (False, TypeError), (b"1", TypeError)]:
        add(C(f"process-type-{bad!r}", lambda w, bad=bad: w.m.process(bad), exc, ["process", "pid"]))
    for bad in [0, -1, 99, 2**31 - 1, 2**31, U64, -U64]:
        add(C(f"process-unknown-{bad}", lambda w, bad=bad: w.m.process(bad), InvalidArgument,
              ["process", str(bad), "no such process"]))

    # ---- spawn / check / close / page_table / regions / stats take no arguments
    add(C("spawn-extra-arg", lambda w: w.m.spawn(1), TypeError, ["spawn"]))
    add(C("check-extra-arg", lambda w: w.m.check(1), TypeError, ["check"]))
    add(C("close-extra-arg", lambda w: w.m.close(1), TypeError, ["close"]))
    add(C("frames-extra-arg", lambda w: w.m.frames(1), TypeError, ["frames"]))
    add(C("page_table-extra-arg", lambda w: w.p.page_table(0), TypeError, ["page_table"]))
    add(C("exit-extra-arg", lambda w: w.p.exit(1), TypeError, ["exit"]))

    # ---- mmap
    add(C("mmap-length-zero", lambda w: w.p.mmap(0), InvalidArgument, ["mmap", "length", "0"]))
    add(C("mmap-length-negative", lambda w: w.p.mmap(-PAGE), InvalidArgument, ["mmap", "length", "-4096"]))
    add(C("mmap-length-2**64", lambda w: w.p.mmap(U64), InvalidArgument, ["mmap", "length", str(U64)]))
    add(C("mmap-length-2**64-1", lambda w: w.p.mmap(U64 - 1), InvalidArgument, ["mmap", f"length={U64 - 1}"]))
    add(C("mmap-length-user-space", lambda w: w.p.mmap(w.end), InvalidArgument, ["mmap", "length={end}"]))
    add(C("mmap-length-no-virtual-room", lambda w: w.p.mmap(w.end - w.start), OutOfMemory,
          ["mmap", "length={}".format(2**47 - 65536), "no free virtual address range"]))
    for bad in [4096.0, None, True, b"x"]:
        add(C(f"mmap-length-type-{bad!r}", lambda w, bad=bad: w.p.mmap(bad), TypeError, ["mmap", "length"]))
    add(C("mmap-length-numpy-float", lambda w: w.p.mmap(np.float64(PAGE)), TypeError, ["mmap", "length"]))
    for bad in ["RW", "w", "x", "", "rwx", "wr", "read"]:
        add(C(f"mmap-prot-unknown-{bad!r}", lambda w, bad=bad: w.p.mmap(PAGE, prot=bad), InvalidArgument,
              ["mmap", "prot", repr(bad)]))
    for bad in [3, None, b"rw", ("rw",)]:
        add(C(f"mmap-prot-type-{bad!r}", lambda w, bad=bad: w.p.mmap(PAGE, prot=bad), TypeError,
              ["mmap", "prot"]))
    add(C("mmap-fixed-unaligned", lambda w: w.p.mmap(PAGE, addr=w.hole + 1), InvalidArgument,
          ["mmap", "addr", "not page aligned"]))
    add(C("mmap-fixed-zero", lambda w: w.p.mmap(PAGE, addr=0), InvalidArgument, ["mmap", "addr", "0"]))
    add(C("mmap-fixed-negative", lambda w: w.p.mmap(PAGE, addr=-PAGE), InvalidArgument, ["mmap", "addr"]))
    add(C("mmap-fixed-below-user-start", lambda w: w.p.mmap(PAGE, addr=PAGE), InvalidArgument,
          ["mmap", "addr=4096"]))
    add(C("mmap-fixed-at-user-end", lambda w: w.p.mmap(PAGE, addr=w.end), InvalidArgument,
          ["mmap", "addr={end}"]))
    add(C("mmap-fixed-past-user-end", lambda w: w.p.mmap(2 * PAGE, addr=w.end - PAGE), InvalidArgument,
          ["mmap", "addr={}".format(2**47 - PAGE)]))
    add(C("mmap-fixed-2**64", lambda w: w.p.mmap(PAGE, addr=U64), InvalidArgument, ["mmap", "addr"]))
    add(C("mmap-fixed-top-of-u64", lambda w: w.p.mmap(PAGE, addr=U64 - PAGE), InvalidArgument,
          ["mmap", "addr={}".format(U64 - PAGE)]))
    add(C("mmap-fixed-type", lambda w: w.p.mmap(PAGE, addr=float(w.hole)), TypeError, ["mmap", "addr"]))
    add(C("mmap-fixed-bool", lambda w: w.p.mmap(PAGE, addr=True), TypeError, ["mmap", "addr"]))
    # overlapping fixed mappings (MAP_FIXED_NOREPLACE semantics)
    add(C("mmap-fixed-same", lambda w: w.p.mmap(4 * PAGE, addr=w.rw), InvalidArgument,
          ["mmap", "addr={rw}", "overlaps"]))
    add(C("mmap-fixed-inside", lambda w: w.p.mmap(PAGE, addr=w.rw + PAGE), InvalidArgument,
          ["mmap", "overlaps"]))
    add(C("mmap-fixed-over-start", lambda w: w.p.mmap(4 * PAGE, addr=w.hole), InvalidArgument,
          ["mmap", "addr={hole}", "overlaps"]))
    add(C("mmap-fixed-covering", lambda w: w.p.mmap(6 * PAGE, addr=w.ro - PAGE), InvalidArgument,
          ["mmap", "overlaps"]))
    add(C("mmap-fixed-over-shared", lambda w: w.p.mmap(PAGE, addr=w.sh + PAGE, shared=True), InvalidArgument,
          ["mmap", "overlaps"]))
    add(C("mmap-fixed-over-none", lambda w: w.p.mmap(PAGE, addr=w.none, prot="none"), InvalidArgument,
          ["mmap", "overlaps"]))
    add(C("mmap-exited", lambda w: w.dead.mmap(PAGE), ProcessExited, ["pid 2", "mmap", "exited"]))
    add(C("mmap-fixed-exited", lambda w: w.dead.mmap(PAGE, addr=w.hole), ProcessExited, ["mmap", "exited"]))

    # ---- munmap / mprotect / madvise: ranges
    ranged = {
        "munmap": lambda p, a, n: p.munmap(a, n),
        "mprotect": lambda p, a, n: p.mprotect(a, n, "r"),
        "madvise": lambda p, a, n: p.madvise(a, n, "dontneed"),
    }
    for op, f in ranged.items():
        add(C(f"{op}-length-zero", lambda w, f=f: f(w.p, w.rw, 0), InvalidArgument, [op, "length", "0"]))
        add(C(f"{op}-length-negative", lambda w, f=f: f(w.p, w.rw, -1), InvalidArgument, [op, "length", "-1"]))
        add(C(f"{op}-length-2**64", lambda w, f=f: f(w.p, w.rw, U64), InvalidArgument, [op, "length"]))
        add(C(f"{op}-length-past-end", lambda w, f=f: f(w.p, w.rw, 5 * PAGE), InvalidArgument,
              [op, "leaves the address space"]))
        add(C(f"{op}-length-2**63", lambda w, f=f: f(w.p, w.rw, 2**63), InvalidArgument,
              [op, str(2**63), "leaves the address space"]))
        add(C(f"{op}-length-2**64-1", lambda w, f=f: f(w.p, w.start, U64 - 1), InvalidArgument, [op]))
        add(C(f"{op}-addr-unaligned", lambda w, f=f: f(w.p, w.rw + 1, PAGE), InvalidArgument,
              [op, "not page aligned"]))
        add(C(f"{op}-addr-unaligned-high", lambda w, f=f: f(w.p, w.rw + PAGE - 1, PAGE), InvalidArgument,
              [op, "not page aligned"]))
        add(C(f"{op}-addr-negative", lambda w, f=f: f(w.p, -PAGE, PAGE), InvalidArgument, [op, "addr", "-4096"]))
        add(C(f"{op}-addr-2**64", lambda w, f=f: f(w.p, U64, PAGE), InvalidArgument, [op, "addr"]))
        add(C(f"{op}-addr-user-end", lambda w, f=f: f(w.p, w.end, PAGE), InvalidArgument,
              [op, "leaves the address space"]))
        add(C(f"{op}-addr-top-of-u64", lambda w, f=f: f(w.p, U64 - PAGE, PAGE), InvalidArgument,
              [op, "leaves the address space"]))
        for bad in [float(PAGE), "4096", None]:
            add(C(f"{op}-length-type-{bad!r}", lambda w, f=f, bad=bad: f(w.p, w.rw, bad), TypeError,
                  [op, "length"]))
            add(C(f"{op}-addr-type-{bad!r}", lambda w, f=f, bad=bad: f(w.p, bad, PAGE), TypeError, [op, "addr"]))
        add(C(f"{op}-length-bool", lambda w, f=f: f(w.p, w.rw, True), TypeError, [op, "length", "bool"]))
        add(C(f"{op}-addr-bool", lambda w, f=f: f(w.p, False, PAGE), TypeError, [op, "addr", "bool"]))
        add(C(f"{op}-exited", lambda w, f=f: f(w.dead, w.rw, PAGE), ProcessExited, [op, "exited"]))
    for op in ("mprotect", "madvise"):
        f = ranged[op]
        add(C(f"{op}-unmapped", lambda w, f=f: f(w.p, w.hole, PAGE), InvalidArgument, [op, "not entirely mapped"]))
        add(C(f"{op}-partly-unmapped", lambda w, f=f: f(w.p, w.hole, 4 * PAGE), InvalidArgument,
              [op, "not entirely mapped"]))
        add(C(f"{op}-below-user-start", lambda w, f=f: f(w.p, 0, PAGE), InvalidArgument, [op, "not entirely mapped"]))
    for bad in ["RW", "w", "", "x"]:
        add(C(f"mprotect-prot-unknown-{bad!r}", lambda w, bad=bad: w.p.mprotect(w.rw, PAGE, bad), InvalidArgument,
              ["mprotect", "prot", repr(bad)]))
    for bad in [3, None, True]:
        add(C(f"mprotect-prot-type-{bad!r}", lambda w, bad=bad: w.p.mprotect(w.rw, PAGE, bad), TypeError,
              ["mprotect", "prot"]))
    for bad in ["free", "DONTNEED", "", "dont_need", "hugepage", "remove"]:
        add(C(f"madvise-advice-unknown-{bad!r}", lambda w, bad=bad: w.p.madvise(w.rw, PAGE, bad),
              InvalidArgument, ["madvise", "advice", repr(bad)]))
    for bad in [4, None, b"dontneed"]:
        add(C(f"madvise-advice-type-{bad!r}", lambda w, bad=bad: w.p.madvise(w.rw, PAGE, bad), TypeError,
              ["madvise", "advice"]))
    add(C("madvise-wipeonfork-shared", lambda w: w.p.madvise(w.sh, 2 * PAGE, "wipeonfork"), InvalidArgument,
          ["madvise", "wipeonfork", "shared"]))
    add(C("madvise-wipeonfork-over-shared", lambda w: w.p.madvise(w.sh, 2 * PAGE + 2 * PAGE, "wipeonfork"),
          InvalidArgument, ["madvise", "wipeonfork"]))
    add(C("munmap-bool-both", lambda w: w.p.munmap(True, True), TypeError, ["munmap", "bool"]))

    # ---- touch
    add(C("touch-addr-negative", lambda w: w.p.touch(-1), InvalidArgument, ["touch", "addr", "-1"]))
    add(C("touch-addr-2**64", lambda w: w.p.touch(U64), InvalidArgument, ["touch", "addr"]))
    for bad in [1.5, "0", None, True]:
        add(C(f"touch-addr-type-{bad!r}", lambda w, bad=bad: w.p.touch(bad), TypeError, ["touch", "addr"]))
    add(C("touch-unmapped", lambda w: w.p.touch(w.hole), SegmentationFault, ["touch", "unmapped"],
          {"access": "read", "reason": "unmapped"}))
    add(C("touch-below-user-start", lambda w: w.p.touch(0), SegmentationFault, ["touch", "0x0", "unmapped"],
          {"address": 0, "reason": "unmapped"}))
    add(C("touch-user-end", lambda w: w.p.touch(w.end, write=True), SegmentationFault, ["touch", "write"],
          {"access": "write", "reason": "unmapped"}))
    add(C("touch-top-of-u64", lambda w: w.p.touch(U64 - 1), SegmentationFault, ["touch", hex(U64 - 1)],
          {"address": U64 - 1}))
    add(C("touch-write-readonly", lambda w: w.p.touch(w.ro, write=True), SegmentationFault,
          ["touch", "write", "protection"], {"access": "write", "reason": "protection"}))
    add(C("touch-read-none", lambda w: w.p.touch(w.none + 5), SegmentationFault, ["touch", "protection"],
          {"access": "read", "reason": "protection"}))
    add(C("touch-exited", lambda w: w.dead.touch(w.rw), ProcessExited, ["touch", "exited"]))

    # ---- read
    add(C("read-n-negative", lambda w: w.p.read(w.rw, -1), InvalidArgument, ["read", "n", "-1"]))
    add(C("read-n-2**64", lambda w: w.p.read(w.rw, U64), InvalidArgument, ["read", "n"]))
    add(C("read-addr-negative", lambda w: w.p.read(-1, 1), InvalidArgument, ["read", "addr"]))
    add(C("read-overflow", lambda w: w.p.read(U64 - 1, 2), InvalidArgument, ["read", "overflows"]))
    for bad in [1.0, "1", None, True]:
        add(C(f"read-n-type-{bad!r}", lambda w, bad=bad: w.p.read(w.rw, bad), TypeError, ["read", "n"]))
        add(C(f"read-addr-type-{bad!r}", lambda w, bad=bad: w.p.read(bad, 1), TypeError, ["read", "addr"]))
    add(C("read-unmapped", lambda w: w.p.read(w.hole, 10), SegmentationFault, ["read", "unmapped"],
          {"access": "read", "reason": "unmapped"}))
    add(C("read-spanning-into-hole", lambda w: w.p.read(w.hole - 10, 20), SegmentationFault, ["read"],
          {"reason": "unmapped"}))
    add(C("read-none", lambda w: w.p.read(w.none, 1), SegmentationFault, ["read", "protection"],
          {"reason": "protection"}))
    add(C("read-past-user-end", lambda w: w.p.read(w.rw + 4 * PAGE - 8, 16), SegmentationFault,
          ["read", hex(2**47)], {"address": 2**47, "reason": "unmapped"}))
    add(C("read-exited", lambda w: w.dead.read(w.rw, 1), ProcessExited, ["read", "exited"]))
    add(C("read-metadata-mode", lambda w: w.p.read(w.rw, 1), InvalidArgument, ["read", "store_data=False"],
          store_data=False))

    # ---- write
    for bad in ["text", 42, None, [1, 2], (1,), 1.5]:
        add(C(f"write-data-type-{type(bad).__name__}", lambda w, bad=bad: w.p.write(w.rw, bad), TypeError,
              ["write", "data", "bytes-like"]))
    add(C("write-addr-negative", lambda w: w.p.write(-1, b"x"), InvalidArgument, ["write", "addr"]))
    add(C("write-addr-2**64", lambda w: w.p.write(U64, b"x"), InvalidArgument, ["write", "addr"]))
    add(C("write-overflow", lambda w: w.p.write(U64 - 1, b"ab"), InvalidArgument, ["write", "overflows"]))
    add(C("write-addr-bool", lambda w: w.p.write(True, b"x"), TypeError, ["write", "addr", "bool"]))
    add(C("write-readonly", lambda w: w.p.write(w.ro, b"x"), SegmentationFault, ["write", "protection"],
          {"access": "write", "reason": "protection"}))
    add(C("write-spanning-rw-into-end", lambda w: w.p.write(w.rw + 4 * PAGE - 2, b"abcd"), SegmentationFault,
          ["write", hex(2**47)], {"address": 2**47, "access": "write"}))
    add(C("write-spanning-none-into-readonly", lambda w: w.p.write(w.ro - 2, b"abcd"), SegmentationFault,
          ["write", "protection"], {"reason": "protection", "access": "write"}))
    add(C("write-spanning-rw-into-readonly", lambda w: w.p.write(w.rw - 2, b"abcd"), SegmentationFault,
          ["write", "protection"], {"reason": "protection"}))
    add(C("write-unmapped", lambda w: w.p.write(w.hole + 2 * PAGE, b"x" * 3 * PAGE), SegmentationFault,
          ["write", "unmapped"], {"reason": "unmapped"}))
    add(C("write-exited", lambda w: w.dead.write(w.rw, b"x"), ProcessExited, ["write", "exited"]))
    add(C("write-readonly-metadata", lambda w: w.p.write(w.ro, b"x"), SegmentationFault, ["write"],
          {"reason": "protection"}, store_data=False))

    # ---- fork / exit
    for bad in ["COW", "VFORK", "ODF", "", "copy", "thp"]:
        add(C(f"fork-mode-unknown-{bad!r}", lambda w, bad=bad: w.p.fork(bad), InvalidArgument,
              ["fork", "mode", repr(bad)]))
    for bad in [0, None, True, b"cow"]:
        add(C(f"fork-mode-type-{bad!r}", lambda w, bad=bad: w.p.fork(bad), TypeError, ["fork", "mode"]))
    add(C("fork-exited", lambda w: w.dead.fork(), ProcessExited, ["pid 2", "fork", "exited"]))
    add(C("fork-eager-exited", lambda w: w.dead.fork("eager"), ProcessExited, ["fork", "exited"]))
    add(C("exit-twice", lambda w: w.dead.exit(), ProcessExited, ["pid 2", "exit", "exited"]))

    # ---- inspection
    add(C("smaps-unmapped", lambda w: w.p.smaps(w.hole), InvalidArgument, ["smaps", "{hole}", "not entirely mapped"]))
    add(C("smaps-negative", lambda w: w.p.smaps(-1), InvalidArgument, ["smaps", "-1"]))
    add(C("smaps-2**64", lambda w: w.p.smaps(U64), InvalidArgument, ["smaps", "addr"]))
    for bad in ["0", 1.5, True]:
        add(C(f"smaps-type-{bad!r}", lambda w, bad=bad: w.p.smaps(bad), TypeError, ["smaps", "addr"]))
    add(C("smaps-exited", lambda w: w.dead.smaps(), ProcessExited, ["smaps", "exited"]))
    add(C("smaps-addr-exited", lambda w: w.dead.smaps(w.rw), ProcessExited, ["smaps", "exited"]))
    add(C("translate-negative", lambda w: w.p.translate(-1), InvalidArgument, ["translate", "addr", "-1"]))
    add(C("translate-2**64", lambda w: w.p.translate(U64), InvalidArgument, ["translate", "addr"]))
    for bad in ["0", 1.5, None, True]:
        add(C(f"translate-type-{bad!r}", lambda w, bad=bad: w.p.translate(bad), TypeError, ["translate", "addr"]))
    add(C("translate-exited", lambda w: w.dead.translate(w.rw), ProcessExited, ["translate", "exited"]))
    add(C("page_table-exited", lambda w: w.dead.page_table(), ProcessExited, ["page_table", "exited"]))
    add(C("regions-exited", lambda w: w.dead.regions, ProcessExited, ["regions", "exited"]))
    return cases


CASES = _cases()


def _words(case: Case, w: SimpleNamespace) -> List[str]:
    """The message substrings, with {rw}, {hole}, {end}, ... filled in from the world."""
    fields = {k: v for k, v in vars(w).items() if isinstance(v, int)}
    return [word.format(**fields) for word in case.words]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input(case: Case) -> None:
    w = make_world(case.store_data)
    before = observe(w.m)
    with pytest.raises(case.exc) as info:
        case.call(w)
    err = info.value
    if case.exc is not TypeError:
        assert isinstance(err, CowsimError)
    message = str(err)
    for word in _words(case, w):
        assert word in message, f"{word!r} not in {message!r}"
    if case.attrs:
        for name, value in case.attrs.items():
            assert getattr(err, name) == value, (name, getattr(err, name))
    w.m.check()
    segv = None
    if isinstance(err, SegmentationFault):
        segv = w.p.pid
        assert err.access in ("read", "write") and err.reason in ("unmapped", "protection")
    assert_unchanged(before, observe(w.m), segv)
    # The machine is still usable: a good operation of the same kind succeeds.
    q = w.m.spawn()
    a = q.mmap(2 * PAGE)
    q.write(a, b"still usable")
    assert q.fork().translate(a) is not None
    w.m.check()


def test_error_classes_are_the_documented_ones() -> None:
    assert issubclass(InvalidArgument, ValueError) and issubclass(InvalidArgument, CowsimError)
    assert issubclass(OutOfMemory, MemoryError) and issubclass(OutOfMemory, CowsimError)
    assert issubclass(ProcessExited, CowsimError) and issubclass(SegmentationFault, CowsimError)


# -- Machine(...) ---------------------------------------------------------------------

MACHINE_CASES = [
    # (id, kwargs, exception, message words)
    ("memory-not-multiple", dict(memory=5000), InvalidArgument, ["Machine", "memory", "5000", "multiple"]),
    ("memory-not-multiple-16k", dict(memory="68KiB", page_size=16384), InvalidArgument,
     ["Machine", "memory", "69632", "16384"]),
    ("memory-not-multiple-64k", dict(memory="1MiB", page_size=65536, store_data=False), None, []),  # valid
    ("memory-not-multiple-64k-bad", dict(memory=65536 * 3 + 4096, page_size=65536), InvalidArgument,
     ["Machine", "memory", "multiple"]),
    ("memory-zero", dict(memory=0), InvalidArgument, ["Machine", "memory", "0"]),
    ("memory-one-frame", dict(memory=4096), InvalidArgument, ["Machine", "memory", "frames", "1"]),
    ("memory-2**32-frames", dict(memory=4096 * 2**32, store_data=False), InvalidArgument,
     ["Machine", "memory", str(2**32)]),
    ("memory-huge-string", dict(memory="1PiB", store_data=False), InvalidArgument, ["Machine", "memory"]),
    ("memory-negative", dict(memory=-4096), InvalidArgument, ["Machine", "memory", "-4096"]),
    ("memory-garbage", dict(memory="lots"), InvalidArgument, ["Machine", "memory", "'lots'"]),
    ("memory-float-string", dict(memory="1.5MiB"), InvalidArgument, ["Machine", "memory", "1.5MiB"]),
    ("memory-float", dict(memory=1048576.0), TypeError, ["Machine", "memory", "float"]),
    ("memory-bool", dict(memory=True), TypeError, ["Machine", "memory", "bool"]),
    ("memory-none", dict(memory=None), TypeError, ["Machine", "memory", "NoneType"]),
    ("memory-bytes", dict(memory=b"1MiB"), TypeError, ["Machine", "memory", "bytes"]),
    ("page-size-8192", dict(page_size=8192), InvalidArgument, ["Machine", "page_size", "8192"]),
    ("page-size-2MiB", dict(page_size=2**21), InvalidArgument, ["Machine", "page_size", str(2**21)]),
    ("page-size-4095", dict(page_size=4095), InvalidArgument, ["Machine", "page_size", "4095"]),
    ("page-size-zero", dict(page_size=0), InvalidArgument, ["Machine", "page_size", "0"]),
    ("page-size-negative", dict(page_size=-4096), InvalidArgument, ["Machine", "page_size", "-4096"]),
    ("page-size-string", dict(page_size="4096"), TypeError, ["Machine", "page_size", "str"]),
    ("page-size-float", dict(page_size=4096.0), TypeError, ["Machine", "page_size", "float"]),
    ("page-size-bool", dict(page_size=True), TypeError, ["Machine", "page_size", "bool"]),
    ("va-bits-64", dict(va_bits=64), InvalidArgument, ["Machine", "va_bits", "64"]),
    ("va-bits-21", dict(va_bits=21), InvalidArgument, ["Machine", "va_bits", "21"]),
    ("va-bits-zero", dict(va_bits=0), InvalidArgument, ["Machine", "va_bits", "0"]),
    ("va-bits-negative", dict(va_bits=-48), InvalidArgument, ["Machine", "va_bits", "-48"]),
    ("va-bits-64k-too-small", dict(page_size=65536, va_bits=29), InvalidArgument, ["Machine", "va_bits", "29"]),
    ("va-bits-bool", dict(va_bits=True), TypeError, ["Machine", "va_bits", "bool"]),
    ("va-bits-float", dict(va_bits=48.0), TypeError, ["Machine", "va_bits", "float"]),
    ("va-bits-string", dict(va_bits="48"), TypeError, ["Machine", "va_bits", "str"]),
    ("fault-around-not-pow2", dict(fault_around=3000), InvalidArgument, ["Machine", "fault_around", "3000"]),
    ("fault-around-negative", dict(fault_around=-1), InvalidArgument, ["Machine", "fault_around", "-1"]),
    ("fault-around-2**32", dict(fault_around=2**32), InvalidArgument, ["Machine", "fault_around", str(2**32)]),
    ("fault-around-garbage", dict(fault_around="wide"), InvalidArgument, ["Machine", "fault_around", "'wide'"]),
    ("fault-around-bool", dict(fault_around=True), TypeError, ["Machine", "fault_around", "bool"]),
    ("fault-around-float", dict(fault_around=65536.0), TypeError, ["Machine", "fault_around", "float"]),
    ("unknown-keyword", dict(swap="1GiB"), TypeError, ["swap"]),
]


@pytest.mark.parametrize("kwargs, exc, words", [pytest.param(k, e, w, id=i) for i, k, e, w in MACHINE_CASES])
def test_bad_machine(kwargs: dict, exc: Optional[type], words: List[str]) -> None:
    kwargs = {"memory": "1MiB", **kwargs}
    if exc is None:
        with cowsim.Machine(**kwargs) as m:
            m.check()
        return
    with pytest.raises(exc) as info:
        cowsim.Machine(**kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


# -- after close() ------------------------------------------------------------------------

AFTER_CLOSE = {
    "spawn": lambda w: w.m.spawn(),
    "process-new": lambda w: w.m.process(w.child.pid + 1),
    "processes": lambda w: w.m.processes,
    "stats": lambda w: w.m.stats,
    "check": lambda w: w.m.check(),
    "frames": lambda w: w.m.frames(),
    "p.mmap": lambda w: w.p.mmap(PAGE),
    "p.munmap": lambda w: w.p.munmap(w.rw, PAGE),
    "p.mprotect": lambda w: w.p.mprotect(w.rw, PAGE, "r"),
    "p.madvise": lambda w: w.p.madvise(w.rw, PAGE, "dontneed"),
    "p.read": lambda w: w.p.read(w.rw, 5),
    "p.write": lambda w: w.p.write(w.rw, b"x"),
    "p.touch": lambda w: w.p.touch(w.rw),
    "p.fork": lambda w: w.p.fork(),
    "p.exit": lambda w: w.p.exit(),
    "p.stats": lambda w: w.p.stats,
    "p.smaps": lambda w: w.p.smaps(),
    "p.regions": lambda w: w.p.regions,
    "p.translate": lambda w: w.p.translate(w.rw),
    "p.page_table": lambda w: w.p.page_table(),
    "p.alive": lambda w: w.p.alive,
    "dead.stats": lambda w: w.dead.stats,
    "dead.exit": lambda w: w.dead.exit(),
}


@pytest.mark.parametrize("name", sorted(AFTER_CLOSE))
def test_use_after_close(name: str) -> None:
    w = make_world()
    w.m.close()
    with pytest.raises(CowsimError, match="closed"):
        AFTER_CLOSE[name](w)
    w.m.close()   # idempotent
    assert w.m.closed
    assert repr(w.m) == "<cowsim.Machine closed>"


# -- out of memory ------------------------------------------------------------------------
# A machine of 16 pages has 15 frames.  With 4 KiB pages and 48-bit addresses
# a process's first page costs 4 table frames (root + 3 levels); the next
# pages in the same 2 MiB span only their data frame.

def small_machine(frames: int, store_data: bool = True) -> cowsim.Machine:
    m = cowsim.Machine(memory=(frames + 1) * PAGE, store_data=store_data)
    assert m.stats.frames_total == frames
    return m


@pytest.fixture(params=[True, False], ids=["data", "meta"])
def store(request) -> bool:
    return request.param


def test_oom_in_a_write_fault_then_retry(store: bool) -> None:
    m = small_machine(15, store)
    p = m.spawn()
    a = p.mmap(16 * PAGE)
    for i in range(11):                     # 4 tables + 11 pages = 15 frames
        p.touch(a + i * PAGE, write=True)
    assert m.stats.frames_free == 0
    p.touch(a + 11 * PAGE)                  # a read still works: the zero page
    before = observe(m)
    with pytest.raises(OutOfMemory, match=r"touch.*no free frame"):
        p.touch(a + 12 * PAGE, write=True)
    with pytest.raises(OutOfMemory):
        p.touch(a + 11 * PAGE, write=True)  # zero page -> new frame (F4)
    m.check()
    assert_unchanged(before, observe(m))
    p.munmap(a, PAGE)                       # frees one data frame
    assert p.touch(a + 12 * PAGE, write=True) == cowsim.Outcome.ZERO_FILL
    p.munmap(a + PAGE, PAGE)
    assert p.touch(a + 11 * PAGE, write=True) == cowsim.Outcome.ZERO_FILL
    s = m.stats
    assert (s.frames_used, s.frames_free, s.page_table_frames, s.data_frames) == (15, 0, 4, 11)
    assert p.stats.faults_zero_fill == 13 and p.stats.faults_zero_page == 1 and p.stats.minflt == 14
    m.check()


def test_oom_when_a_new_regions_tables_cannot_be_allocated(store: bool) -> None:
    m = small_machine(15, store)
    p = m.spawn()
    near = p.mmap(8 * PAGE)
    for i in range(8):
        p.touch(near + i * PAGE, write=True)    # 4 tables + 8 pages = 12 frames
    q = m.spawn()                               # 13
    q_far = q.mmap(PAGE)
    r = m.spawn()                               # 14
    r_a = r.mmap(PAGE)
    # A region 1 GiB below: needs 2 new tables (levels 1 and 0) for p.
    far = p.mmap(PAGE, addr=near - (1 << 30))
    assert m.stats.frames_free == 1
    before = observe(m)
    for call in (lambda: p.touch(far), lambda: p.touch(far, write=True),
                 lambda: q.touch(q_far), lambda: r.write(r_a, b"x")):
        with pytest.raises(OutOfMemory):
            call()                              # mmap'd, but its tables do not fit
        m.check()
        assert_unchanged(before, observe(m))
    r.exit()                                    # frees r's root: 2 frames free
    assert m.stats.frames_free == 2
    assert p.touch(far) == cowsim.Outcome.ZERO_PAGE   # 2 tables, the zero page
    assert m.stats.frames_free == 0 and p.stats.page_table_frames == 6
    with pytest.raises(OutOfMemory):
        p.touch(far, write=True)
    p.munmap(near, PAGE)
    assert p.touch(far, write=True) == cowsim.Outcome.ZERO_FILL
    m.check()


def test_oom_in_spawn_then_retry(store: bool) -> None:
    m = small_machine(4, store)
    procs = [m.spawn() for _ in range(4)]
    before = observe(m)
    with pytest.raises(OutOfMemory, match="spawn"):
        m.spawn()
    m.check()
    assert_unchanged(before, observe(m))
    procs[2].exit()
    assert m.spawn().pid == 5
    assert m.stats.frames_used == 4
    m.check()


def test_oom_in_a_cow_fork_then_retry(store: bool) -> None:
    m = small_machine(15, store)
    p = m.spawn()
    a = p.mmap(6 * PAGE)
    p.write(a, b"x" * 6 * PAGE)                 # 4 tables + 6 pages = 10
    spare = [m.spawn() for _ in range(2)]       # 12: 3 free, the child needs 4 tables
    assert m.stats.frames_free == 3
    before = observe(m)
    with pytest.raises(OutOfMemory, match=r"fork\(mode='cow'\)"):
        p.fork()
    m.check()
    assert_unchanged(before, observe(m))        # K5: parent's entries still writable
    assert all(p.page_table()["writable"])
    spare[0].exit()
    c = p.fork()
    assert c.stats.page_table_frames == 4 and c.stats.pages_copied == 0
    assert m.stats.frames_free == 0 and m.stats.forks == 1
    assert not any(p.page_table()["writable"])
    # Every page shared: a write by the child must copy, which needs a frame.
    with pytest.raises(OutOfMemory):
        c.touch(a, write=True)
    spare[1].exit()
    assert c.touch(a, write=True) == cowsim.Outcome.COW_COPY
    assert p.touch(a, write=True) == cowsim.Outcome.COW_REUSE
    if store:
        assert c.read(a, 2) == b"xx" and p.read(a + 5 * PAGE, 1) == b"x"
    m.check()


def test_oom_in_an_eager_fork_while_cow_fits(store: bool) -> None:
    m = small_machine(31, store)
    p = m.spawn()
    a = p.mmap(16 * PAGE)
    p.write(a, b"y" * 16 * PAGE)                # 4 + 16 = 20 frames: more than half
    before = observe(m)
    with pytest.raises(OutOfMemory, match=r"fork\(mode='eager'\)"):
        p.fork("eager")                         # needs 4 + 16 = 20 > 11 free
    m.check()
    assert_unchanged(before, observe(m))
    c = p.fork("cow")                           # needs 4
    assert m.stats.frames_free == 7
    c.exit()
    p.munmap(a, 10 * PAGE)                      # 4 + 6 = 10 used, 21 free
    c = p.fork("eager")                         # 4 + 6 = 10
    assert c.stats.pages_copied == 6 and m.stats.pages_copied == 6
    assert m.stats.frames_free == 11
    assert c.touch(a + 10 * PAGE, write=True) == cowsim.Outcome.HIT   # eager: own writable copies
    m.check()


def test_oom_in_an_eager_fork_for_want_of_tables_only(store: bool) -> None:
    m = small_machine(12, store)
    p = m.spawn()
    a = p.mmap(4 * PAGE)
    p.write(a, b"z" * 4 * PAGE)                  # 8 frames; eager needs 4 tables + 4 copies
    m.spawn()
    m.spawn()                                    # 10 used, 2 free
    before = observe(m)
    for mode in ("eager", "cow"):
        with pytest.raises(OutOfMemory):
            p.fork(mode)
        m.check()
        assert_unchanged(before, observe(m))


def test_oom_in_a_shared_fault(store: bool) -> None:
    m = small_machine(9, store)
    p = m.spawn()
    s = p.mmap(8 * PAGE, shared=True)
    for i in range(4):
        p.touch(s + i * PAGE)                    # 4 tables + 4 shmem pages = 8
    c = p.fork()                                 # only the child's root: 9
    assert m.stats.frames_free == 0
    before = observe(m)
    with pytest.raises(OutOfMemory):
        c.touch(s)                               # the child's tables do not fit
    with pytest.raises(OutOfMemory):
        p.touch(s + 5 * PAGE, write=True)        # a new shmem page does not fit
    m.check()
    assert_unchanged(before, observe(m))
    p.munmap(s, PAGE)                            # the object keeps page 0
    assert m.stats.frames_free == 0
    p.exit()                                     # 4 tables; the object lives on in c
    assert m.stats.frames_free == 4
    assert c.touch(s + 2 * PAGE) == cowsim.Outcome.SHARED   # maps 0..3 by fault-around
    assert c.touch(s + 5 * PAGE, write=True) == cowsim.Outcome.SHARED
    assert c.stats.minflt == 2 and m.stats.shared_objects == 1
    m.check()


def test_oom_in_a_multi_page_write_keeps_the_machine_usable(store: bool) -> None:
    m = small_machine(15, store)
    p = m.spawn()
    a = p.mmap(20 * PAGE)
    p.touch(a)                                   # 4 tables, zero page at a
    with pytest.raises(OutOfMemory, match="write"):
        p.write(a, b"w" * 20 * PAGE)             # 11 frames left for 20 pages
    m.check()
    p.munmap(a, 20 * PAGE)
    assert m.stats.frames_used == 1              # only the root is left
    a = p.mmap(10 * PAGE)
    p.write(a, b"w" * 10 * PAGE)                 # the same kind of write now fits
    if store:
        assert p.read(a + 9 * PAGE, 3) == b"www"
    m.check()


# -- formerly known defects, fixed ---------------------------------------------------------

def test_oom_in_a_multi_page_write_keeps_the_pages_before() -> None:
    """A multi-page write is a sequence of page accesses (API.md): out of frames at page k,
    pages 0..k-1 are written (as a process that dies in the middle of a memcpy), the failing
    one and those after it are untouched, and the machine stays consistent."""
    m = small_machine(15)
    p = m.spawn()
    a = p.mmap(20 * PAGE)
    p.touch(a)
    free = m.stats.frames_free
    with pytest.raises(OutOfMemory):
        p.write(a, b"w" * 20 * PAGE)
    assert m.stats.frames_free == 0
    assert p.stats.faults_zero_fill == free          # one frame per page written
    assert p.read(a, 1) == b"w" and p.translate(a + free * PAGE) is None
    m.check()


@pytest.mark.parametrize("call", [
    pytest.param(lambda w: w.p.mmap(PAGE, shared="no"), id="mmap-shared-str"),
    pytest.param(lambda w: w.p.touch(w.rw + 2 * PAGE, write="no"), id="touch-write-str"),
    pytest.param(lambda w: cowsim.Machine(memory="1MiB", store_data="no"), id="machine-store_data-str"),
])
def test_bool_arguments_reject_other_types(call) -> None:
    w = make_world()
    with pytest.raises(TypeError):
        call(w)


def test_write_accepts_any_contiguous_buffer() -> None:
    w = make_world()
    w.p.write(w.rw, np.frombuffer(b"abc", dtype=np.uint8))
    w.p.write(w.rw + 3, np.array([0x64656667], dtype="<u4"))        # bytes of any item size
    w.p.write(w.rw + 7, bytearray(b"h"))
    assert w.p.read(w.rw, 8) == b"abcgfedh"
    w.m.check()


def test_write_accepts_a_strided_memoryview() -> None:
    w = make_world()
    w.p.write(w.rw, memoryview(b"abcdef")[::2])
    assert w.p.read(w.rw, 3) == b"ace"


def test_read_huge_length_is_a_segfault() -> None:
    w = make_world()
    with pytest.raises(SegmentationFault):
        w.p.read(w.rw, 2**62)


def test_process_after_close_raises() -> None:
    w = make_world()
    w.m.close()
    with pytest.raises(CowsimError):
        w.m.process(w.p.pid)


def test_process_repr_after_close() -> None:
    w = make_world()
    w.m.close()
    assert "pid=1" in repr(w.p) and "closed" in repr(w.p)
