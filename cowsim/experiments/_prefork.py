"""prefork: a pre-forking server (gunicorn ``--preload``) running CPython workers.

The master builds a heap of ``objects`` objects of ``object_size`` bytes,
packed one after the other into pages (every heap page written), then forks
``workers`` workers.  The workers serve requests in turn (round robin; one
``Machine.replay`` per sampling interval); each request touches
``objects_per_request`` objects drawn from a popularity distribution (uniform
for ``skew`` 0, else Zipf with exponent ``skew``; the same popular objects in
every worker, each worker its own seeded request stream).  CPython's
reference counting turns every read of an object into a write of the object's
first bytes, so each touched object's first page becomes private to the
worker (one copy-on-write fault).  The GC modes:

- ``"gc"``: every ``gc_every`` requests a full collection writes the GC header
  of every tracked object — every object of the heap, so every heap page;
- ``"nogc"``: ``gc.disable()``: no collection;
- ``"freeze"``: ``gc.freeze()`` in the master before the fork: collections run
  but skip every object created before the fork, so they touch no heap page.

(This model has no objects created after the fork, so ``freeze`` and ``nogc``
share memory alike: ``gc.freeze()`` gives the sharing of a disabled GC with the
GC on, which is why Instagram proposed it.)

The per-worker time series (table ``workers``) holds each worker's smaps
(Rss, Pss, Shared_*, Private_*, in kB) after every sampling interval; the text
shows the mean over the workers (table ``mean``) and a summary per mode.

>>> r = prefork(objects=2048, workers=2, requests=40, objects_per_request=4, gc_every=20, samples=2)
>>> [(row["mode"], row["shared_kb"]) for row in r.records("summary")]
[('gc', 0), ('nogc', 22), ('freeze', 22)]
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..machine import Machine
from ..cost import CostModel, CostModelSpec, NS_PER_MS, fork_events, resolve_cost_model, stats_delta
from ._common import (
    PAGE_SIZE,
    Column,
    ExperimentResult,
    Table,
    check_choice,
    check_float,
    check_int,
    check_modes,
    check_seed,
    concurrent_fork_modes,
    renamed_keywords,
    frozen_map,
    log,
    machine_memory,
    progress_bar,
)
from ._snapshot import KeySampler

__all__ = ["prefork", "PreforkResult", "PREFORK_MODES"]

#: The CPython garbage-collector settings a worker can run with.
PREFORK_MODES: Tuple[str, ...] = ("gc", "nogc", "freeze")

_OP = "prefork"
_SMAPS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")

WORKER_COLUMNS = (
    Column("mode", "U8", "mode"),
    Column("requests", "i8", "requests", ",d"),
    Column("worker", "i8", "worker"),
    Column("Rss", "i8", "Rss kB", ",d"),
    Column("Pss", "i8", "Pss kB", ",d"),
    Column("Shared_Clean", "i8", "Shared_Clean kB", ",d"),
    Column("Shared_Dirty", "i8", "Shared_Dirty kB", ",d"),
    Column("Private_Clean", "i8", "Private_Clean kB", ",d"),
    Column("Private_Dirty", "i8", "Private_Dirty kB", ",d"),
    Column("cow_copies", "i8", "CoW copies", ",d"),
    Column("gc_passes", "i8", "GC passes", ",d"),
    Column("fault_ms", "f8", "fault ms", ".2f"),
)

MEAN_COLUMNS = (
    Column("mode", "U8", "mode"),
    Column("requests", "i8", "requests", ",d"),
    Column("Rss", "f8", "Rss kB", ",.0f"),
    Column("Pss", "f8", "Pss kB", ",.0f"),
    Column("shared_kb", "f8", "Shared kB", ",.0f"),
    Column("private_kb", "f8", "Private kB", ",.0f"),
    Column("shared_fraction", "f8", "shared", ".1%"),
    Column("frames_used", "i8", "frames used", ",d"),
)

SUMMARY_COLUMNS = (
    Column("mode", "U8", "mode"),
    Column("shared_kb", "i8", "Shared kB/worker", ",d"),
    Column("private_kb", "i8", "Private kB/worker", ",d"),
    Column("pss_kb", "i8", "Pss kB/worker", ",d"),
    Column("total_kb", "i8", "frames used kB", ",d"),
    Column("cow_copies", "i8", "CoW copies", ",d"),
    Column("gc_passes", "i8", "GC passes", ",d"),
    Column("fork_model_ms", "f8", "fork ms/worker", ".2f"),
    Column("fault_ms", "f8", "fault ms/worker", ".1f"),
)


@dataclass(frozen=True)
class PreforkResult(ExperimentResult):
    """Result of :func:`prefork`: tables ``workers`` (per worker and sample), ``mean``
    (mean over the workers) and ``summary`` (per mode, at the end)."""

    experiment = "prefork"

    def _figure(self, plt: Any) -> Any:
        data = self.to_numpy("mean")
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        styles = {"gc": "-", "nogc": "--", "freeze": ":"}
        for i, mode in enumerate(dict.fromkeys(data["mode"].tolist())):
            rows = data[data["mode"] == mode]
            style = styles.get(mode, "-")
            left.plot(rows["requests"], rows["shared_kb"] / 1024, linestyle=style, color=f"C{i}", label=mode)
            right.plot(rows["requests"], rows["private_kb"] / 1024, linestyle=style, color=f"C{i}", label=mode)
        left.set_title("shared memory per worker")
        right.set_title("private memory per worker")
        for ax in (left, right):
            ax.set_xlabel("requests served per worker")
            ax.set_ylabel("MiB")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=7)
        fig.tight_layout()
        return fig


@renamed_keywords(modes="gc_modes")
def prefork(
    objects: int = 1_000_000,
    object_size: int = 64,
    workers: int = 4,
    requests: int = 5000,
    objects_per_request: int = 20,
    gc_every: int = 1000,
    skew: float = 1.2,
    gc_modes: Sequence[str] = PREFORK_MODES,
    samples: int = 10,
    fork_mode: str = "cow",
    seed: int = 0,
    cost_model: CostModelSpec = None,
    progress: bool = False,
) -> PreforkResult:
    """Simulates pre-forked CPython workers and reports their shared and private memory.

    Args:
        objects: objects in the master's heap (>= 1).
        object_size: bytes per object (16 to 1 MiB); objects are packed into pages.
        workers: worker processes forked from the master (1 to 256).
        requests: requests each worker serves (>= 1).
        objects_per_request: objects each request touches (>= 0).
        gc_every: requests between two full collections (>= 1).
        skew: object popularity: 0 uniform, else the Zipf exponent (<= 10).
        gc_modes: GC modes to compare, from ``PREFORK_MODES`` ("gc", "nogc", "freeze");
            old name ``modes`` (deprecated).
        samples: sampling intervals (1 to ``requests``); rows at 0 and after each.
        fork_mode: how the master forks; one of
            ``concurrent_fork_modes()`` (the parent runs on beside its children).
        seed: chooses the popular objects and the request streams (the same in every mode).
        cost_model: prices (a ``CostModel``, a dict, a JSON profile path; None: defaults).
        progress: show a progress bar on stderr (when it is a terminal).

    Raises:
        InvalidArgument: a parameter out of range (the message names it).
    """
    objects = check_int(_OP, "objects", objects, 1, 10**8)
    object_size = check_int(_OP, "object_size", object_size, 16, 1 << 20)
    workers = check_int(_OP, "workers", workers, 1, 256)
    requests = check_int(_OP, "requests", requests, 1, 10**7)
    per_request = check_int(_OP, "objects_per_request", objects_per_request, 0, 10**6)
    gc_every = check_int(_OP, "gc_every", gc_every, 1)
    skew = check_float(_OP, "skew", skew, 0.0, 10.0)
    mode_list = check_modes(_OP, "gc_modes", gc_modes, PREFORK_MODES)
    samples = check_int(_OP, "samples", samples, 1, requests)
    fork_mode = check_choice(_OP, "fork_mode", fork_mode, concurrent_fork_modes())
    seed = check_seed(_OP, seed)
    model = resolve_cost_model(cost_model)
    heap_pages = -(-objects * object_size // PAGE_SIZE)
    params = {
        "objects": objects,
        "object_size": object_size,
        "workers": workers,
        "requests": requests,
        "objects_per_request": per_request,
        "gc_every": gc_every,
        "skew": skew,
        "gc_modes": list(mode_list),
        "samples": samples,
        "fork_mode": fork_mode,
        "seed": seed,
        "page_size": PAGE_SIZE,
        "heap_pages": heap_pages,
    }
    log.info("prefork: %d modes, %d workers x %d requests", len(mode_list), workers, requests)
    started = time.perf_counter()
    bounds = np.unique(np.linspace(0, requests, samples + 1).round().astype(np.int64))
    worker_rows: List[Tuple[Any, ...]] = []
    mean_rows: List[Tuple[Any, ...]] = []
    summary_rows: List[Tuple[Any, ...]] = []
    bar = progress_bar(len(mode_list) * (len(bounds) - 1), "prefork", progress, unit="interval")
    try:
        for gc_mode in mode_list:
            w, mn, sm = _run_mode(gc_mode, params, bounds, model, bar)
            worker_rows += w
            mean_rows += mn
            summary_rows.append(sm)
    finally:
        bar.close()
    log.info("prefork: done in %.1f s", time.perf_counter() - started)
    heap = f"{objects:,} objects of {object_size} B ({heap_pages * PAGE_SIZE / (1 << 20):,.1f} MiB heap)"
    tables = (
        Table.build("workers", WORKER_COLUMNS, worker_rows, title=f"prefork: per worker, {heap}", show=False),
        Table.build(
            "mean",
            MEAN_COLUMNS,
            mean_rows,
            title=f"prefork: {heap}, {workers} workers, {per_request} objects per request "
            f"(skew {skew:g}), full GC every {gc_every} requests (seed {seed}); mean per worker",
        ),
        Table.build("summary", SUMMARY_COLUMNS, summary_rows, title=f"after {requests:,} requests per worker"),
    )
    notes = (
        "Shared = Shared_Clean + Shared_Dirty, Private = Private_Clean + Private_Dirty (smaps, kB);"
        " every object read writes its refcount, a GC pass writes every tracked object's header.",
    )
    summary = {f"shared_kb_{row[0]}": row[1] for row in summary_rows}
    return PreforkResult(frozen_map(params), model, tables, frozen_map(summary), notes)


def _run_mode(
    gc_mode: str, p: Dict[str, Any], bounds: np.ndarray, model: CostModel, bar: Any
) -> Tuple[List[Tuple[Any, ...]], List[Tuple[Any, ...]], Tuple[Any, ...]]:
    objects, size, nworkers = p["objects"], p["object_size"], p["workers"]
    per_request, gc_every, seed = p["objects_per_request"], p["gc_every"], p["seed"]
    heap_pages = p["heap_pages"]
    memory = machine_memory((nworkers + 1) * heap_pages + nworkers * 8)
    worker_rows: List[Tuple[Any, ...]] = []
    mean_rows: List[Tuple[Any, ...]] = []
    with Machine(memory=memory, page_size=PAGE_SIZE, store_data=False) as m:
        master = m.spawn()
        heap = master.mmap(heap_pages * PAGE_SIZE)
        master.access(np.uint64(heap) + np.arange(heap_pages, dtype=np.uint64) * np.uint64(PAGE_SIZE), write=True)
        headers = np.uint64(heap) + np.arange(objects, dtype=np.uint64) * np.uint64(size)
        fork_total = 0.0
        procs = []
        for _ in range(nworkers):
            before = m.stats
            child = master.fork(p["fork_mode"])
            fork_total += model.price_fork(fork_events(child, before, m.stats))
            procs.append(child)
        pids = np.array([w.pid for w in procs], dtype=np.int32)
        start_stats = [w.stats for w in procs]
        popularity = KeySampler(np.random.default_rng([seed, 0]), objects, p["skew"])
        streams = [np.random.default_rng([seed, 1 + i]) for i in range(nworkers)]
        gc_passes = 0
        gc_touches = gc_mode == "gc"  # freeze: collections skip every pre-fork object

        def sample(done: int) -> None:
            per = []
            for i, w in enumerate(procs):
                sm = w.smaps()
                st = stats_delta(w.stats, start_stats[i])
                row = (gc_mode, done, i + 1, *(sm[k] for k in _SMAPS), st.faults_cow_copy, gc_passes,
                       model.faults_ns(st) / NS_PER_MS)
                worker_rows.append(row)
                per.append(sm)
            mean = {k: float(np.mean([s[k] for s in per])) for k in _SMAPS}
            shared = mean["Shared_Clean"] + mean["Shared_Dirty"]
            private = mean["Private_Clean"] + mean["Private_Dirty"]
            mean_rows.append((gc_mode, done, mean["Rss"], mean["Pss"], shared, private,
                              shared / mean["Rss"] if mean["Rss"] else 0.0, m.stats.frames_used))

        sample(0)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            n_req = int(hi - lo)
            # touches[r, w, j]: object j of worker w's request lo + r
            touches = np.stack([popularity.draw(n_req * per_request, rng).reshape(n_req, per_request)
                                for rng in streams], axis=1)
            addr_parts: List[np.ndarray] = []
            pid_parts: List[np.ndarray] = []
            r0 = 0
            gc_rounds = [r for r in range(n_req) if (lo + r + 1) % gc_every == 0]
            ends = gc_rounds if gc_rounds and gc_rounds[-1] == n_req - 1 else gc_rounds + [n_req - 1]
            for r in ends:
                chunk = touches[r0 : r + 1]
                addr_parts.append(headers[chunk.ravel()])
                pid_parts.append(np.broadcast_to(pids[None, :, None], chunk.shape).ravel())
                r0 = r + 1
                if gc_mode != "nogc" and (lo + r + 1) % gc_every == 0:  # each worker collects
                    gc_passes += 1
                    if gc_touches:
                        for pid in pids:
                            addr_parts.append(headers)
                            pid_parts.append(np.full(objects, pid, dtype=np.int32))
            m.replay(np.concatenate(pid_parts).astype(np.int32), np.concatenate(addr_parts), write=True)
            sample(int(hi))
            bar.update(1)
        final = [w.smaps() for w in procs]
        copies = sum(stats_delta(w.stats, s).faults_cow_copy for w, s in zip(procs, start_stats))
        fault_total = sum(model.faults_ns(stats_delta(w.stats, s)) for w, s in zip(procs, start_stats))
        n = len(procs)
        summary = (
            gc_mode,
            sum(s["Shared_Clean"] + s["Shared_Dirty"] for s in final) // n,
            sum(s["Private_Clean"] + s["Private_Dirty"] for s in final) // n,
            sum(s["Pss"] for s in final) // n,
            m.stats.frames_used * PAGE_SIZE // 1024,
            copies,
            gc_passes,
            fork_total / n / NS_PER_MS,
            fault_total / n / NS_PER_MS,
        )
    return worker_rows, mean_rows, summary
