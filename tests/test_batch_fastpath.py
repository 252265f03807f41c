"""The batch loop's shortcuts (batch.c) against single touches, every counter included.

The batch loop keeps counters in registers, fills the TLB itself on a miss to a
present entry, remembers the last region and level-0 table, and has copies
specialised for reads only / writes only and TLB on / off.  Each test runs the
same accesses once batched and once as single ``touch`` calls (access_one, the
reference path) on identical machines and compares everything observable,
``tlb_hits``, ``tlb_misses`` and ``tlb_flushes`` included.
"""
import numpy as np
import pytest

import cowsim

PS = 4096


def _machine(tlb_entries, store_data=False, page_size=PS):
    """Regions: private rw (resident, then forked), r-only, rw then made "none"
    with present entries, shared rw, and unmapped holes in between."""
    PS = page_size
    m = cowsim.Machine(memory="4MiB", tlb_entries=tlb_entries, store_data=store_data, page_size=page_size)
    p = m.spawn()
    base = p.mmap(64 * PS)
    p.munmap(base + 20 * PS, 4 * PS)                      # hole: pages 20-23
    p.access(base + np.arange(0, 20, 2, dtype=np.uint64) * PS, write=True)
    p.access(base + np.arange(1, 20, 4, dtype=np.uint64) * PS)   # zero-page entries
    p.mprotect(base + 24 * PS, 8 * PS, "r")               # read-only: pages 24-31
    p.access(base + np.arange(32, 40, dtype=np.uint64) * PS, write=True)
    p.mprotect(base + 32 * PS, 8 * PS, "none")            # present entries, no access: 32-39
    shared = p.mmap(16 * PS, shared=True)
    p.access(shared + np.arange(0, 16, 3, dtype=np.uint64) * PS, write=True)
    c = p.fork()
    return m, p, c, base, shared


def _trace(rng, base, shared, n, pattern, page_size=PS):
    PS = page_size
    if pattern == "sequential":
        offs = np.arange(n, dtype=np.uint64) * (PS // 8) % (64 * PS)
        a = base + offs
    else:
        pages = rng.integers(0, 72, n)                    # 64-71: past the end, unmapped
        a = base + pages.astype(np.uint64) * PS + rng.integers(0, PS, n).astype(np.uint64)
        sh = rng.random(n) < 0.15
        a[sh] = shared + rng.integers(0, 16 * PS, int(sh.sum())).astype(np.uint64)
    return a.astype(np.uint64)


def _observe(m, procs):
    return ([(p.stats.as_dict(), p.page_table().tolist()) for p in procs], m.stats, m.frames().tolist())


def _touch_all(proc_of, addrs, writes):
    out = []
    for i, (a, w) in enumerate(zip(addrs.tolist(), writes.tolist())):
        try:
            out.append(int(proc_of(i).touch(a, write=w)))
        except cowsim.SegmentationFault:
            out.append(int(cowsim.Outcome.SEGFAULT))
    return out


@pytest.mark.parametrize("tlb_entries", [0, 1, 16, 64])
@pytest.mark.parametrize("write", ["read", "write", "mixed"])
@pytest.mark.parametrize("outcomes", [False, True])
@pytest.mark.parametrize("pattern", ["sequential", "random"])
def test_access_batch_equals_touches(tlb_entries, write, outcomes, pattern):
    n = 3000
    writes = {"read": np.zeros(n, bool), "write": np.ones(n, bool),
              "mixed": np.random.default_rng(11).random(n) < 0.4}[write]
    results = []
    for batched in (True, False):
        m, p, c, base, shared = _machine(tlb_entries)
        addrs = _trace(np.random.default_rng(12), base, shared, n, pattern)
        for who in (c, p, c):   # the child first (CoW), then the parent (reuse), then again
            if batched:
                spec = writes if write == "mixed" else write == "write"
                r = who.access(addrs, write=spec, outcomes=outcomes)
                out = r.outcomes.tolist() if outcomes else None
                counts = (r.hits, r.zero_page, r.zero_fill, r.cow_copy, r.cow_reuse, r.shared, r.segfaults, r.done)
            else:
                o = _touch_all(lambda i: who, addrs, writes)
                out = o if outcomes else None
                counts = tuple(o.count(k) for k in range(7)) + (n,)
            results.append((out, counts))
        results.append(_observe(m, [p, c]))
        m.check()
    half = len(results) // 2
    assert results[:half] == results[half:]


@pytest.mark.parametrize("tlb_entries", [0, 4, 64])
@pytest.mark.parametrize("write", [False, True, "mixed"])
@pytest.mark.parametrize("outcomes", [True, False])
def test_replay_equals_touches(tlb_entries, write, outcomes):
    n = 4000
    results = []
    for batched in (True, False):
        m, p, c, base, shared = _machine(tlb_entries)
        d = c.fork()
        procs = [p, c, d]
        rng = np.random.default_rng(13)
        addrs = _trace(rng, base, shared, n, "random")
        # runs of one process, and single accesses switching every time
        who = np.repeat(rng.integers(0, 3, n // 8), 8)[:n]
        who[: n // 4] = rng.integers(0, 3, n // 4)
        pids = np.array([procs[k].pid for k in who], dtype=np.int32)
        writes = rng.random(n) < 0.4 if write == "mixed" else np.full(n, write)
        if batched:
            r = m.replay(pids, addrs, write=writes if write == "mixed" else write, outcomes=outcomes)
            out = r.outcomes.tolist() if outcomes else [r.hits, r.zero_page, r.zero_fill, r.cow_copy,
                                                        r.cow_reuse, r.shared, r.segfaults]
        else:
            out = _touch_all(lambda i: procs[who[i]], addrs, writes)
            if not outcomes:
                out = [out.count(k) for k in range(7)]
        results.append((out, _observe(m, procs)))
        m.check()
    assert results[0] == results[1]


def test_replay_stops_at_an_exited_process_with_counters_exact():
    results = []
    for batched in (True, False):
        m, p, c, base, shared = _machine(64)
        d = c.fork()
        d.exit()
        addrs = base + np.arange(40, dtype=np.uint64) * (PS // 2)
        pids = np.array([p.pid] * 20 + [c.pid] * 10 + [d.pid] + [p.pid] * 9, dtype=np.int32)
        if batched:
            with pytest.raises(cowsim.ProcessExited):
                m.replay(pids, addrs)
        else:
            for i in range(30):
                (p if i < 20 else c).touch(int(addrs[i]))
        results.append(_observe(m, [p, c]))
    assert results[0] == results[1]


def test_segfault_raise_and_out_of_memory_keep_counters_exact():
    # raise on the first segfault: the accesses before it, and it, are counted
    obs = []
    for batched in (True, False):
        m, p, c, base, shared = _machine(16)
        addrs = base + np.array([0, 1, 2, 0, 33, 5, 6], dtype=np.uint64) * PS   # page 33: "none"
        if batched:
            with pytest.raises(cowsim.SegmentationFault) as e:
                c.access(addrs, on_segfault="raise")
            assert (e.value.index, e.value.result.done) == (4, 5)
        else:
            _touch_all(lambda i: c, addrs[:5], np.zeros(5, bool))
        obs.append(_observe(m, [p, c]))
    assert obs[0] == obs[1]
    # out of frames in the middle of a write batch
    obs = []
    for batched in (True, False):
        m = cowsim.Machine(memory="256KiB", tlb_entries=64)
        p = m.spawn()
        a = p.mmap(128 * PS)
        addrs = a + np.arange(128, dtype=np.uint64) * PS
        if batched:
            with pytest.raises(cowsim.OutOfMemory) as e:
                p.access(addrs, write=True)
            k = e.value.index
        else:
            for k in range(128):
                try:
                    p.touch(int(addrs[k]), write=True)
                except cowsim.OutOfMemory:
                    break
        obs.append((k, _observe(m, [p])))
    assert obs[0] == obs[1]


@pytest.mark.parametrize("tlb_entries", [0, 64])
@pytest.mark.parametrize("write", ["read", "write", "mixed"])
def test_odf_fork_batches_equal_touches(tlb_entries, write):
    """After an odf fork the level-0 tables are shared and write-protected by the
    level-1 entries above them; a write takes a table over (copy or reuse) and
    the pointers walked before it go stale."""
    n = 3000
    rng = np.random.default_rng(21)
    pages = rng.integers(0, 2048, n)                      # 4 tables' worth, plus the gaps between
    writes = {"read": np.zeros(n, bool), "write": np.ones(n, bool), "mixed": rng.random(n) < 0.4}[write]
    results = []
    for batched in (True, False):
        m = cowsim.Machine(memory="64MiB", tlb_entries=tlb_entries)
        p = m.spawn()
        a = p.mmap(2048 * PS, addr=1 << 30)
        p.access(a + np.arange(0, 2048, 3, dtype=np.uint64) * PS, write=True)
        c = p.fork("odf")
        addrs = a + pages.astype(np.uint64) * PS
        for who in (c, p, c):
            spec = writes if write == "mixed" else write == "write"
            if batched:
                r = who.access(addrs, write=spec, outcomes=True)
                results.append(r.outcomes.tolist())
            else:
                results.append(_touch_all(lambda i: who, addrs, writes))
        results.append(_observe(m, [p, c]))
        m.check()
    half = len(results) // 2
    assert results[:half] == results[half:]


@pytest.mark.parametrize("write", [False, True])
def test_odf_fork_uniform_batches_equal_touches(write):
    """The specialised read-only / write-only copies (no outcomes array) after an odf fork."""
    n = 4000
    offs = np.sort(np.random.default_rng(22).integers(0, 2048 * PS, n)).astype(np.uint64)
    results = []
    for batched in (True, False):
        m = cowsim.Machine(memory="64MiB", tlb_entries=16)
        p = m.spawn()
        a = p.mmap(2048 * PS, addr=1 << 30)
        p.access(a + np.arange(0, 2048, 2, dtype=np.uint64) * PS, write=True)
        c = p.fork("odf")
        addrs = a + offs
        for who in (c, p):
            if batched:
                r = who.access(addrs, write=write)
                results.append((r.hits, r.cow_copy, r.cow_reuse, r.zero_page, r.zero_fill, r.done))
            else:
                o = _touch_all(lambda i: who, addrs, np.full(n, write))
                results.append((o.count(0), o.count(3), o.count(4), o.count(1), o.count(2), n))
        results.append(_observe(m, [p, c]))
        m.check()
    half = len(results) // 2
    assert results[:half] == results[half:]


@pytest.mark.parametrize("tlb_entries", [0, 16])
def test_replay_over_more_processes_than_it_keeps_state_for(tlb_entries):
    """The replay keeps per-process state for 8 pids (by pid mod 8): 13 processes
    collide and are evicted, their counters added on the way."""
    n = 5000
    results = []
    for batched in (True, False):
        m, p, c, base, shared = _machine(tlb_entries)
        procs = [p, c] + [c.fork() if k % 2 else p.fork() for k in range(11)]
        rng = np.random.default_rng(31)
        addrs = _trace(rng, base, shared, n, "random")
        who = np.repeat(rng.integers(0, len(procs), n // 4), 4)[:n]
        pids = np.array([procs[k].pid for k in who], dtype=np.int32)
        writes = rng.random(n) < 0.3
        if batched:
            out = m.replay(pids, addrs, write=writes, outcomes=True).outcomes.tolist()
        else:
            out = _touch_all(lambda i: procs[who[i]], addrs, writes)
        results.append((out, _observe(m, procs)))
        m.check()
    assert results[0] == results[1]


@pytest.mark.parametrize("thp_cow", ["split", "copy-huge"])
@pytest.mark.parametrize("tlb_entries", [0, 64])
@pytest.mark.parametrize("write", ["read", "write", "mixed"])
@pytest.mark.parametrize("outcomes", [False, True])
def test_huge_region_batches_equal_touches(thp_cow, tlb_entries, write, outcomes):
    """A huge (THP) region next to a normal one, partly faulted in, then CoW-forked:
    level-1 entries map 2 MiB directly and a write fault can split or copy them."""
    n = 3000
    H = 2 << 20
    rng = np.random.default_rng(41)
    writes = {"read": np.zeros(n, bool), "write": np.ones(n, bool), "mixed": rng.random(n) < 0.4}[write]
    sel = rng.random(n) < 0.6
    huge_offs = (rng.integers(0, 3 * H, n) & ~7).astype(np.uint64)
    small_offs = (rng.integers(0, 64 * PS, n) & ~7).astype(np.uint64)
    results = []
    for batched in (True, False):
        m = cowsim.Machine(memory="64MiB", tlb_entries=tlb_entries, thp_cow=thp_cow)
        p = m.spawn()
        hb = p.mmap(3 * H, huge=True)
        nb = p.mmap(64 * PS)
        p.access(hb + np.array([0, H + 5 * PS], dtype=np.uint64), write=True)   # two huge pages
        p.access(hb + np.array([2 * H + PS], dtype=np.uint64))                  # the huge zero page
        p.access(nb + np.arange(0, 64, 2, dtype=np.uint64) * PS, write=True)
        c = p.fork()
        addrs = np.where(sel, hb + huge_offs, nb + small_offs).astype(np.uint64)
        for who in (c, p, c):
            spec = writes if write == "mixed" else write == "write"
            if batched:
                r = who.access(addrs, write=spec, outcomes=outcomes)
                results.append(r.outcomes.tolist() if outcomes else
                               [r.hits, r.zero_page, r.zero_fill, r.cow_copy, r.cow_reuse, r.shared, r.segfaults])
            else:
                o = _touch_all(lambda i: who, addrs, writes)
                results.append(o if outcomes else [o.count(k) for k in range(7)])
        results.append(_observe(m, [p, c]))
        m.check()
    half = len(results) // 2
    assert results[:half] == results[half:]


@pytest.mark.parametrize("page_size", [4096, 16384])
@pytest.mark.parametrize("tlb_entries", [0, 64])
@pytest.mark.parametrize("write", ["read", "write", "mixed"])
@pytest.mark.parametrize("replay", [False, True])
def test_every_copy_of_the_loop_equals_touches(page_size, tlb_entries, write, replay):
    """Each entry of batch.c's table of copies (reads / writes / per-access writes, TLB on /
    off, 4 KiB pages or not; no outcome array), and a replay's copy for each machine, against
    single touches: the result's counts and everything observable."""
    n = 3000
    rng = np.random.default_rng(41)
    writes = {"read": np.zeros(n, bool), "write": np.ones(n, bool), "mixed": rng.random(n) < 0.4}[write]
    spec = writes if write == "mixed" else write == "write"
    results = []
    for batched in (True, False):
        m, p, c, base, shared = _machine(tlb_entries, page_size=page_size)
        procs = [p, c]
        addrs = _trace(np.random.default_rng(42), base, shared, n, "random", page_size=page_size)
        who = np.repeat(np.random.default_rng(43).integers(0, 2, n // 4), 4)[:n] if replay else np.ones(n, int)
        if batched:
            if replay:
                pids = np.array([procs[k].pid for k in who], dtype=np.int32)
                r = m.replay(pids, addrs, write=spec)
            else:
                r = c.access(addrs, write=spec)
            counts = [r.hits, r.zero_page, r.zero_fill, r.cow_copy, r.cow_reuse, r.shared, r.segfaults]
        else:
            out = _touch_all(lambda i: procs[who[i]], addrs, writes)
            counts = [out.count(k) for k in range(7)]
        results.append((counts, _observe(m, procs)))
        m.check()
    assert results[0] == results[1]
