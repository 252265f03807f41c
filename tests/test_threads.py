"""Several threads on one machine: cffi releases the GIL during every C call,
and the core serializes them with its per-machine mutex.

The workloads are designed so that the totals are exact whatever the
interleaving: each thread owns its own process tree (or its own pages of one
process), so every count is a sum of per-thread counts known in advance.  A
short GIL switch interval makes the interleavings fine-grained.  Under
``.ci/sanitize`` these tests also prove the absence of data races that ASan
can see (use after free, double free) -- notably ``close()`` racing with calls.
"""
from __future__ import annotations

import dataclasses
import random
import sys
import threading
from typing import Callable, List

import pytest

import cowsim
from cowsim import CowsimError, OutOfMemory, ProcessExited, SegmentationFault

PAGE = 4096
THREADS = 4


@pytest.fixture(autouse=True)
def fine_grained_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(target: Callable[[int], None], n: int = THREADS, timeout: float = 300) -> None:
    """Runs target(0..n-1) in n threads started together; re-raises the first error."""
    barrier = threading.Barrier(n)
    errors: List[BaseException] = []

    def body(k: int) -> None:
        try:
            barrier.wait()
            target(k)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "thread hung"
    if errors:
        raise errors[0]


# -- each thread owns a process tree: fork, write, exit --------------------------------

P = 48        # pages each thread's root process writes
W = 8         # pages each child writes
ROUNDS = 10   # even rounds cow, odd rounds eager


def _tree_worker(m: cowsim.Machine, k: int, out: dict) -> None:
    p = m.spawn()
    a = p.mmap(P * PAGE)
    mine = bytes([65 + k]) * PAGE
    for i in range(P):
        p.write(a + i * PAGE, mine)
    children = []
    for r in range(ROUNDS):
        eager = r % 2 == 1
        c = p.fork("eager" if eager else "cow")
        theirs = bytes([97 + (k * ROUNDS + r) % 26]) * 100
        for i in range(W):
            c.write(a + i * PAGE, theirs)
        if m.store_data:
            assert c.read(a, 100) == theirs
            assert c.read(a + (W - 1) * PAGE + 100, 4) == mine[:4]   # rest of a page written by p
            assert c.read(a + W * PAGE, 4) == mine[:4]               # not written by c
        children.append((eager, c))
        c.exit()
        for i in range(W):
            p.write(a + i * PAGE, mine[:100])
        if m.store_data:
            assert p.read(a, PAGE) == mine
    out[k] = (p, a, children)


@pytest.mark.parametrize("store", [True, False], ids=["data", "meta"])
def test_threads_own_process_trees_exact_totals(store: bool) -> None:
    m = cowsim.Machine(memory="8MiB", store_data=store)
    out: dict = {}
    run_threads(lambda k: _tree_worker(m, k, out))
    m.check()
    cow, eager = ROUNDS // 2, ROUNDS - ROUNDS // 2
    s = m.stats
    # per thread: spawn root + 3 tables + P pages stay; every child's frames were freed
    assert s.processes == THREADS
    assert s.forks == THREADS * ROUNDS
    assert s.frames_used == THREADS * (4 + P)
    assert s.page_table_frames == THREADS * 4 and s.data_frames == THREADS * P
    assert s.pages_copied == THREADS * (cow * W + eager * P)
    assert s.minflt == THREADS * (P + cow * 2 * W)     # eager children and their parents only hit
    assert s.frames_allocated == THREADS * (4 + P + cow * (4 + W) + eager * (4 + P))
    assert s.frames_freed == THREADS * (cow * (4 + W) + eager * (4 + P))
    assert s.segfaults == 0 and s.shared_objects == 0
    pids = set()
    for k in range(THREADS):
        p, a, children = out[k]
        ps = p.stats
        assert (ps.minflt, ps.faults_zero_fill, ps.faults_cow_reuse, ps.faults_cow_copy, ps.pages_copied) == \
            (P + cow * W, P, cow * W, 0, 0)
        assert ps.page_table_frames == 4
        for eager_child, c in children:
            cs = c.stats
            assert not c.alive and c.parent == p
            if eager_child:
                assert (cs.minflt, cs.pages_copied) == (0, P)
            else:
                assert (cs.minflt, cs.faults_cow_copy, cs.pages_copied) == (W, W, W)
            pids.add(c.pid)
        pids.add(p.pid)
        smaps = p.smaps()
        assert smaps["Rss"] == P * 4 and smaps["Pss"] == P * 4 and smaps["Private_Dirty"] == P * 4
    assert pids == set(range(1, THREADS * (1 + ROUNDS) + 1))
    for k in range(THREADS):
        out[k][0].exit()
    assert m.stats.frames_used == 0
    m.check()
    m.close()


# -- threads on one process: distinct pages, and the same pages --------------------------

def test_threads_on_one_process_exact_totals() -> None:
    K = 64
    m = cowsim.Machine(memory="8MiB")
    p = m.spawn()
    own = p.mmap(THREADS * K * PAGE)        # thread k writes pages [k*K, (k+1)*K)
    common = p.mmap(K * PAGE)               # every thread reads every page

    def work(k: int) -> None:
        for i in range(k * K, (k + 1) * K):
            assert p.touch(own + i * PAGE, write=True) == cowsim.Outcome.ZERO_FILL
        for i in range(K):
            assert p.touch(common + i * PAGE) in (cowsim.Outcome.ZERO_PAGE, cowsim.Outcome.HIT)
        p.write(own + k * K * PAGE + 7, b"thread %d" % k)

    run_threads(work)
    m.check()
    st = p.stats
    # one zero-page fault per common page, whoever came first; the rest hit
    assert (st.faults_zero_fill, st.faults_zero_page, st.minflt) == (THREADS * K, K, THREADS * K + K)
    # 256 + 64 pages in one 2 MiB span: root + 3 tables
    assert (m.stats.page_table_frames, m.stats.data_frames) == (4, THREADS * K)
    for k in range(THREADS):
        assert p.read(own + k * K * PAGE + 7, 8) == b"thread %d" % k
    m.close()


def test_threads_fork_one_shared_region() -> None:
    m = cowsim.Machine(memory="4MiB")
    p = m.spawn()
    s = p.mmap(16 * PAGE, shared=True)
    kids = [p.fork() for _ in range(THREADS)]
    written = threading.Barrier(THREADS)

    def work(k: int) -> None:
        c = kids[k]
        assert c.touch(s + k * PAGE, write=True) == cowsim.Outcome.SHARED
        c.write(s + k * PAGE, b"kid %d" % k)
        written.wait()   # every page exists before anyone reads: fault-around is deterministic
        for i in range(THREADS):
            assert c.read(s + i * PAGE, 5) == b"kid %d" % i

    run_threads(work)
    m.check()
    # each child: its write fault, then one read fault whose fault-around maps the rest
    assert [c.stats.minflt for c in kids] == [2] * THREADS
    assert m.stats.data_frames == THREADS and m.stats.shared_objects == 1
    assert all(c.smaps()["Rss"] == THREADS * 4 for c in kids)
    assert p.read(s + (THREADS - 1) * PAGE, 5) == b"kid %d" % (THREADS - 1)
    m.close()


# -- readers during writers --------------------------------------------------------------

def test_readers_see_consistent_state_while_writers_work() -> None:
    m = cowsim.Machine(memory="8MiB", store_data=False)
    stop = threading.Event()
    seen = []

    def writer(k: int) -> None:
        p = m.spawn()
        a = p.mmap(32 * PAGE)
        for r in range(30):
            c = p.fork()
            for i in range(32):
                c.touch(a + i * PAGE, write=True)
            c.exit()
            p.munmap(a, 32 * PAGE)
            a = p.mmap(32 * PAGE)

    def reader() -> None:
        last = 0
        while not stop.is_set():
            s = m.stats
            assert s.forks >= last            # cumulative counters never go back
            last = s.forks
            assert s.frames_used + s.frames_free == s.frames_total
            assert s.page_table_frames + s.data_frames == s.frames_used
            m.check()                                   # never InvariantViolation mid-operation
            for pid in range(1, 4):
                try:
                    m.process(pid).smaps()
                except (ProcessExited, cowsim.InvalidArgument):
                    pass
            seen.append(s.forks)

    errors: list = []

    def guarded() -> None:
        try:
            reader()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            stop.set()

    readers = [threading.Thread(target=guarded) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        run_threads(writer, n=3)
    finally:
        stop.set()
        for t in readers:
            t.join(60)
    assert not errors, errors[0]
    assert seen                                 # the readers did run alongside
    assert m.stats.forks == 3 * 30 and m.stats.frames_used == 3
    m.check()
    m.close()


# -- a free-for-all: any thread, any process, any operation ---------------------------------

def test_free_for_all_stays_consistent() -> None:
    m = cowsim.Machine(memory="2MiB")
    roots = [m.spawn() for _ in range(3)]
    for p in roots:
        p.mmap(16 * PAGE)
        p.mmap(8 * PAGE, shared=True)
    allowed = (ProcessExited, OutOfMemory, SegmentationFault, cowsim.InvalidArgument)
    everyone = list(roots)            # every process ever made (list.append is atomic)

    def chaos(k: int) -> None:
        rng = random.Random(k)
        for _ in range(400):
            procs = [q for q in everyone[-40:]]
            p = rng.choice(procs)
            try:
                regions = p.regions
                if not regions or rng.random() < 0.05:
                    p.mmap(rng.randint(1, 16) * PAGE, shared=rng.random() < 0.3)
                    continue
                r = rng.choice(regions)
                addr = r.start + rng.randrange(r.length // PAGE) * PAGE
                what = rng.random()
                if what < 0.35:
                    p.touch(addr, write=rng.random() < 0.6)
                elif what < 0.5:
                    p.write(addr, b"z" * rng.randint(1, 3 * PAGE))
                elif what < 0.6 and m.stats.processes < 24:
                    everyone.append(p.fork(rng.choice(["cow", "eager", "odf"])))
                elif what < 0.7:
                    p.exit()
                elif what < 0.78:
                    p.munmap(addr, rng.randint(1, 4) * PAGE)
                elif what < 0.86:
                    p.mprotect(r.start, r.length, rng.choice(["r", "rw", "none", "rw"]))
                elif what < 0.94:
                    p.madvise(r.start, r.length, rng.choice(["dontfork", "dofork", "dontneed", "keeponfork"]))
                else:
                    m.check()
            except allowed:
                pass

    run_threads(chaos)
    m.check()
    for p in everyone:
        if p.alive:
            p.exit()
    s = m.stats
    assert s.processes == 0 and s.frames_used == 0 and s.shared_objects == 0
    assert s.frames_allocated == s.frames_freed
    m.check()
    m.close()


# -- close() racing with calls in other threads ------------------------------------------

@pytest.mark.parametrize("rep", range(10))
def test_close_while_other_threads_call(rep: int) -> None:
    """Every call either completes or raises CowsimError('... closed'); the core
    is freed only once no call is running (see Machine.close)."""
    m = cowsim.Machine(memory="64MiB", store_data=rep % 2 == 0)
    p = m.spawn()
    a = p.mmap(1024 * PAGE)
    p.write(a, b"q" * 1024 * PAGE)
    started = threading.Barrier(THREADS + 1)
    outcomes: List[str] = []
    errors: List[BaseException] = []

    def call_until_closed(k: int) -> None:
        try:
            started.wait()
            i = 0
            while True:
                i += 1
                if k == 0:
                    m.check()                       # long: walks every table
                elif k == 1:
                    c = p.fork()
                    c.touch(a + (i % 1024) * PAGE, write=True)
                    c.exit()
                elif k == 2:
                    p.page_table()                  # p's entry count does not change here
                    p.regions
                else:
                    p.smaps()
                    m.stats
        except CowsimError as exc:
            if "closed" not in str(exc) and not isinstance(exc, ProcessExited):
                errors.append(exc)
            outcomes.append(type(exc).__name__)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=call_until_closed, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    started.wait()
    threading.Event().wait(0.02 + 0.01 * rep)
    m.close()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert not errors, errors
    assert len(outcomes) == THREADS
    assert m.closed


def test_concurrent_close_calls() -> None:
    for _ in range(20):
        m = cowsim.Machine(memory="1MiB")
        m.spawn().mmap(PAGE)
        run_threads(lambda k: m.close(), n=8)
        assert m.closed
        with pytest.raises(CowsimError, match="closed"):
            m.stats


def test_stats_are_frozen_snapshots() -> None:
    m = cowsim.Machine(memory="1MiB")
    s = m.stats
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.forks = 3  # type: ignore[misc]
    m.close()


# -- listings that size a buffer with one C call and fill it with another ----------------
# Machine.processes, Machine.frames(), Process.regions and Process.page_table()
# call the C function twice (count, then fill); another thread can change the
# count in between.  Seen before the wrapper retried: IndexError from
# processes/regions when the count grew; a shrinking count left uninitialized rows
# (np.empty) in frames() and page_table(), a growing one truncated them.
#
# The deterministic tests make the race happen every time: the wrapper's `lib` is
# replaced by a stand-in that, right after the count call, changes the machine as
# another thread would (grows the listing beyond the slack of the buffer, or shrinks
# it), and the listing must then be exactly the state after the change.  The
# threaded tests below them are stress runs of the same (a race may or may not land
# between the two calls in a given run; each checks what the racing reader saw).


class _ChangeAfterCount:
    """Stands in for the cffi ``lib`` of a wrapper module: forwards everything, and
    after the first call of ``name`` (the listing's count call) runs ``change()``
    once.  ``calls`` records the order: "count", "change", "fill", ..."""

    def __init__(self, real, name: str, change: Callable[[], None]) -> None:
        self._real, self._name, self._change = real, name, change
        self.calls: List[str] = []

    def __getattr__(self, attr: str):
        fn = getattr(self._real, attr)
        if attr != self._name:
            return fn

        def call(*args):
            rc = fn(*args)
            if not self.calls:
                self.calls += ["count", "change"]
                self._change()
            else:
                self.calls.append("fill")
            return rc
        return call


def _raced(monkeypatch, module, name: str, change: Callable[[], None], listing: Callable[[], object]):
    stand_in = _ChangeAfterCount(module.lib, name, change)
    monkeypatch.setattr(module, "lib", stand_in)
    got = listing()
    monkeypatch.undo()
    assert stand_in.calls[:3] == ["count", "change", "fill"], stand_in.calls   # the race happened
    return got


@pytest.mark.parametrize("grow", [True, False])
def test_processes_listing_when_the_count_changes(monkeypatch, grow) -> None:
    import cowsim.machine
    m = cowsim.Machine(memory="1MiB", store_data=False)
    first = [m.spawn() for _ in range(1 if grow else 20)]
    born: List[cowsim.Process] = []

    def change() -> None:   # 20 spawns: beyond the 8 spare slots; or 15 exits
        if grow:
            born.extend(m.spawn() for _ in range(20))
        else:
            for q in first[2:17]:
                q.exit()

    got = _raced(monkeypatch, cowsim.machine, "cs_pids", change, lambda: m.processes)
    want = list(range(1, 22)) if grow else [1, 2, 18, 19, 20]
    assert [q.pid for q in got] == want
    m.close()


@pytest.mark.parametrize("grow", [True, False])
def test_regions_listing_when_the_count_changes(monkeypatch, grow) -> None:
    import cowsim.process
    m = cowsim.Machine(memory="1MiB", store_data=False)
    p = m.spawn()
    starts = [p.mmap(PAGE) for _ in range(2 if grow else 12)]

    def change() -> None:   # 10 more regions (4 spare slots), or 10 fewer
        if grow:
            starts.extend(p.mmap(PAGE) for _ in range(10))
        else:
            for a in starts[:10]:
                p.munmap(a, PAGE)
            del starts[:10]

    got = _raced(monkeypatch, cowsim.process, "cs_regions", change, lambda: p.regions)
    assert sorted(r.start for r in got) == sorted(starts) and len(got) == (12 if grow else 2)
    m.close()


@pytest.mark.parametrize("grow", [True, False])
def test_frames_listing_when_the_count_changes(monkeypatch, grow) -> None:
    import cowsim.machine
    m = cowsim.Machine(memory="4MiB", store_data=False)
    p = m.spawn()
    a = p.mmap(200 * PAGE)
    for i in range(0 if grow else 100):
        p.touch(a + i * PAGE, write=True)

    def change() -> None:   # 100 data frames more (64 spare rows), or 100 fewer
        if grow:
            for i in range(100):
                p.touch(a + i * PAGE, write=True)
        else:
            p.munmap(a, 100 * PAGE)

    got = _raced(monkeypatch, cowsim.machine, "cs_frames", change, m.frames)
    # The root, 3 tables and 100 pages; or the root and the 3 tables munmap leaves (the
    # region's rest still needs them).
    assert len(got) == (104 if grow else 4) == m.stats.frames_used
    assert got.tobytes() == m.frames().tobytes()
    assert ((got["refcount"] == 1) & (got["frame"] > 0)).all() and (got["frame"][1:] > got["frame"][:-1]).all()
    m.close()


@pytest.mark.parametrize("grow", [True, False])
def test_page_table_listing_when_the_count_changes(monkeypatch, grow) -> None:
    import cowsim.process
    m = cowsim.Machine(memory="4MiB", store_data=False)
    p = m.spawn()
    a = p.mmap(200 * PAGE)
    for i in range(0 if grow else 100):
        p.touch(a + i * PAGE, write=True)

    def change() -> None:   # 100 entries more (64 spare rows), or 90 fewer
        if grow:
            for i in range(100):
                p.touch(a + i * PAGE, write=True)
        else:
            p.munmap(a, 90 * PAGE)

    got = _raced(monkeypatch, cowsim.process, "cs_page_table", change, p.page_table)
    first = a // PAGE + (0 if grow else 90)
    assert got["vpage"].tolist() == list(range(first, a // PAGE + 100))
    assert got["writable"].all() and got["dirty"].all()
    m.close()


def _race(listing: Callable[[cowsim.Machine, cowsim.Process], None], mutate) -> None:
    m = cowsim.Machine(memory="16MiB", store_data=False)
    p = m.spawn()
    stop = threading.Event()

    def mutator(k: int) -> None:
        if k == 0:
            for _ in range(1500):
                mutate(m, p)
            stop.set()
        else:
            while not stop.is_set():
                listing(m, p)

    try:
        run_threads(mutator, n=2)
    finally:
        stop.set()
    m.close()


def _churn(m: cowsim.Machine, p: cowsim.Process) -> None:
    a = [p.mmap(PAGE) for _ in range(6)]
    for x in a:
        p.touch(x, write=True)
    c = p.fork()
    c.exit()
    for x in a:
        p.munmap(x, PAGE)


def _spawn_exit(m: cowsim.Machine, p: cowsim.Process) -> None:
    for q in [m.spawn() for _ in range(6)]:
        q.exit()


def _check_frames(m: cowsim.Machine, p: cowsim.Process) -> None:
    f = m.frames()
    assert (f["refcount"] > 0).all() and (f["frame"][1:] > f["frame"][:-1]).all(), "garbage rows"


def _check_page_table(m: cowsim.Machine, p: cowsim.Process) -> None:
    t = p.page_table()
    assert (t["vpage"][1:] > t["vpage"][:-1]).all(), "garbage rows"


def _check_processes(m: cowsim.Machine, p: cowsim.Process) -> None:
    pids = [q.pid for q in m.processes]
    # p (pid 1) lives throughout; at most the 6 of one _spawn_exit round besides it.
    assert pids[0] == 1 and pids == sorted(set(pids)) and len(pids) <= 7, pids


def _check_regions(m: cowsim.Machine, p: cowsim.Process) -> None:
    r = p.regions
    # at most the 6 one-page regions of one _churn round, sorted and disjoint.
    assert len(r) <= 6 and all(x.end - x.start == PAGE for x in r), r
    assert all(x.end <= y.start for x, y in zip(r, r[1:])), r


def test_processes_listing_races_with_spawn_and_exit() -> None:
    _race(_check_processes, _spawn_exit)


def test_regions_listing_races_with_mmap() -> None:
    _race(_check_regions, _churn)


def test_frames_listing_races_with_faults() -> None:
    _race(_check_frames, _churn)


def test_page_table_listing_races_with_faults() -> None:
    _race(_check_page_table, _churn)
