"""snapshot: a Redis-style BGSAVE — a forked child saves memory while the parent keeps writing.

The parent loads a data set (every page written), then forks.  The child reads
the whole data set sequentially in ``steps`` equal chunks, as a snapshot writer
does; between two chunks the parent serves ``writes_per_step`` writes to keys.
Keys are pages: uniformly chosen (``skew`` 0) or Zipf-distributed with
exponent ``skew`` over the pages (the popular pages are scattered over the data
set by a seeded permutation).  The first parent write to a page still shared
with the child copies it (the parent writes, so the parent copies; the child
keeps the old frame, which becomes its private dirty page: what Redis reports
as "memory used by copy-on-write").  The child exits after the last chunk.

With ``thp="split"`` or ``"copy-huge"`` the data set lives in transparent huge pages
(2 MiB): under "split" (Linux >= 5.8) a parent write to a shared huge page splits the
parent's mapping and copies 4 KiB; under "copy-huge" (older kernels) it copies the whole
2 MiB -- the Redis report of 1039 MB copied instead of 9 MB by a few thousand writes.

The time series has one row after the fork (step 0) and one per step; memory
ratio is the data frames in use (parent and child) over the data set's pages,
1.0 right after the fork and at most 2.0 (Redis documents up to twice the data
set).  With no parent writes the snapshot costs no data frame at all (exact).

>>> r = snapshot(dataset="1MiB", steps=4, writes_per_step=0)
>>> r.summary["cow_pages_peak"], r.summary["peak_ratio"]
(0, 1.0)
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

import numpy as np

from .. import ForkMode, ThpCow
from ..machine import Machine
from ..cost import CostModel, CostModelSpec, NS_PER_MS, fork_events, resolve_cost_model
from ..units import Size, format_size
from ._common import (
    PAGE_SIZE,
    Column,
    ExperimentResult,
    NoBar,
    Table,
    check_choice,
    check_float,
    check_int,
    check_seed,
    check_seq,
    check_size,
    check_thp,
    concurrent_fork_modes,
    renamed_keywords,
    frozen_map,
    log,
    machine_memory,
    mib,
    progress_bar,
)

__all__ = ["snapshot", "snapshot_sweep", "SnapshotResult", "SnapshotSweepResult", "KeySampler"]

_OP = "snapshot"
_KB_PER_PAGE = PAGE_SIZE // 1024

COLUMNS = (
    Column("step", "i8", "step"),
    Column("pages_read", "i8", "child read", ",d"),
    Column("parent_writes", "i8", "parent writes", ",d"),
    Column("child_private_dirty_kb", "i8", "child Private_Dirty kB", ",d"),
    Column("child_shared_kb", "i8", "child Shared kB", ",d"),
    Column("parent_private_dirty_kb", "i8", "parent Private_Dirty kB", ",d"),
    Column("parent_shared_kb", "i8", "parent Shared kB", ",d"),
    Column("frames_used", "i8", "frames used", ",d"),
    Column("data_frames", "i8", text=False),
    Column("cow_pages", "i8", "CoW pages", ",d"),
    Column("memory_ratio", "f8", "memory ratio", ".3f"),
    Column("parent_fault_ms", "f8", "parent faults ms", ".2f"),
    Column("parent_anon_huge_kb", "i8", text=False),
)


SWEEP_COLUMNS = (
    Column("writes_per_step", "i8", "writes/step", ",d"),
    Column("skew", "f8", "skew", ".2f"),
    Column("total_writes", "i8", "total writes", ",d"),
    Column("cow_pages", "i8", "CoW pages", ",d"),
    Column("cow_mib", "f8", "CoW MiB", ",.1f"),
    Column("peak_ratio", "f8", "peak ratio", ".3f"),
    Column("child_private_dirty_kb", "i8", "child Private_Dirty kB", ",d"),
    Column("parent_fault_ms", "f8", "parent faults ms", ".2f"),
)


@dataclass(frozen=True)
class SnapshotResult(ExperimentResult):
    """Result of :func:`snapshot`: the time series ``steps`` (step 0 = right after the fork)."""

    experiment = "snapshot"

    def _figure(self, plt: Any) -> Any:
        data = self.to_numpy()
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        steps = data["step"]
        kb_to_mib = 1 / 1024
        left.plot(steps, data["child_private_dirty_kb"] * kb_to_mib, label="child Private_Dirty")
        left.plot(steps, data["child_shared_kb"] * kb_to_mib, label="child Shared")
        left.plot(steps, data["parent_private_dirty_kb"] * kb_to_mib, linestyle="--", label="parent Private_Dirty")
        left.set_xlabel("snapshot step")
        left.set_ylabel("MiB")
        left.set_title("smaps during the snapshot")
        left.legend(fontsize=7)
        right.plot(steps, data["memory_ratio"], color="C3")
        right.axhline(2.0, color="grey", linestyle=":", linewidth=1)
        right.set_ylim(0.9, 2.1)
        right.set_xlabel("snapshot step")
        right.set_ylabel("memory / data set")
        p = self.params
        dist = "uniform" if p["skew"] == 0 else f"Zipf s={p['skew']:g}"
        right.set_title(f"{p['writes_per_step']:,} writes/step, {dist}")
        fig.tight_layout()
        return fig


@dataclass(frozen=True)
class SnapshotSweepResult(ExperimentResult):
    """Result of :func:`snapshot_sweep`: one row per (writes per step, skew)."""

    experiment = "snapshot-sweep"

    def _figure(self, plt: Any) -> Any:
        data = self.to_numpy()
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for skew in dict.fromkeys(data["skew"].tolist()):
            rows = data[data["skew"] == skew]
            label = "uniform" if skew == 0 else f"Zipf s={skew:g}"
            ax.plot(rows["writes_per_step"], rows["peak_ratio"], marker="o", label=label)
        ax.axhline(2.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("symlog", linthresh=max(1, int(data["writes_per_step"][data["writes_per_step"] > 0].min(initial=1))))
        ax.set_xlabel("parent writes per step")
        ax.set_ylabel("peak memory / data set")
        ax.set_title("snapshot peak memory")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig


class KeySampler:
    """Draws indexes in ``[0, n)``: uniform (``skew`` 0) or bounded Zipf of exponent
    ``skew`` (rank r has weight r**-skew), ranks mapped to indexes by a permutation
    drawn from ``rng``, so the popular ones are scattered.

    >>> s = KeySampler(np.random.default_rng(0), 100, 1.2)
    >>> keys = s.draw(1000)
    >>> bool(keys.min() >= 0 and keys.max() < 100)
    True
    """

    def __init__(self, rng: np.random.Generator, n: int, skew: float) -> None:
        self.rng = rng
        self.n = n
        self.skew = skew
        if skew:
            self.order = rng.permutation(n)
            self.cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -skew)

    def draw(self, count: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """``count`` indexes, drawn with ``rng`` (default: the sampler's own)."""
        rng = self.rng if rng is None else rng
        if count == 0:
            return np.empty(0, np.int64)
        if not self.skew:
            return rng.integers(0, self.n, size=count)
        ranks = np.searchsorted(self.cdf, rng.random(count) * self.cdf[-1], side="right")
        picked: np.ndarray = self.order[np.minimum(ranks, self.n - 1)]
        return picked


def _params(
    dataset: Size, steps: Any, writes_per_step: Any, skew: Any, fork_mode: Any, seed: Any, thp: Any = "off"
) -> Tuple[int, int, int, float, str, int, str]:
    nbytes = check_size(_OP, "dataset", dataset)
    pages = nbytes // PAGE_SIZE
    steps = check_int(_OP, "steps", steps, 1, pages)
    writes_per_step = check_int(_OP, "writes_per_step", writes_per_step, 0, 10**9)
    skew = check_float(_OP, "skew", skew, 0.0, 10.0)
    fork_mode = check_choice(_OP, "fork_mode", fork_mode, concurrent_fork_modes())
    seed = check_seed(_OP, seed)
    thp = check_thp(_OP, thp)
    return nbytes, steps, writes_per_step, skew, fork_mode, seed, thp


@renamed_keywords(mode="fork_mode")
def snapshot(
    dataset: Size = "1GiB",
    steps: int = 32,
    writes_per_step: int = 8192,
    skew: float = 0.0,
    fork_mode: str = "cow",
    seed: int = 0,
    cost_model: CostModelSpec = None,
    progress: bool = False,
    thp: str = "off",
) -> SnapshotResult:
    """Simulates a BGSAVE-style snapshot and returns its memory time series.

    Args:
        dataset: the data set's size (bytes or "1GiB"; rounded up to pages).
        steps: chunks the child reads the data set in (1 to the data set's pages).
        writes_per_step: parent writes between two chunks (>= 0).
        skew: 0 for uniform keys, else the Zipf exponent of key popularity (<= 10).
        fork_mode: the fork strategy; one of ``concurrent_fork_modes()`` (the parent runs
            on beside its children).  Old name ``mode`` (deprecated).
        seed: chooses the written keys.
        cost_model: prices (a ``CostModel``, a dict, a JSON profile path; None: defaults).
        progress: show a progress bar on stderr (when it is a terminal).
        thp: "off" (4 KiB pages), or the data set in huge pages with a write to a shared one
            splitting ("split", Linux >= 5.8) or copying 2 MiB ("copy-huge", older kernels).

    Raises:
        InvalidArgument: a parameter out of range (the message names it).
    """
    nbytes, steps, writes_per_step, skew, mode, seed, thp = _params(
        dataset, steps, writes_per_step, skew, fork_mode, seed, thp)
    model = resolve_cost_model(cost_model)
    log.info("snapshot: %s data set, %d steps of %d writes", format_size(nbytes), steps, writes_per_step)
    started = time.perf_counter()
    bar = progress_bar(steps, "snapshot", progress)
    try:
        rows, summary = _run(nbytes, steps, writes_per_step, skew, mode, seed, model, bar, thp)
    finally:
        bar.close()
    log.info("snapshot: done in %.1f s", time.perf_counter() - started)
    params = {
        "dataset": nbytes,
        "steps": steps,
        "writes_per_step": writes_per_step,
        "skew": skew,
        "fork_mode": mode,
        "seed": seed,
        "page_size": PAGE_SIZE,
        "thp": thp,
    }
    dist = "uniform keys" if skew == 0 else f"Zipf keys (s={skew:g})"
    table = Table.build(
        "steps",
        COLUMNS,
        rows,
        title=f"snapshot: {format_size(nbytes)} data set, {mode} fork, {steps} steps, "
        f"{writes_per_step:,} parent writes per step, {dist}"
        + ("" if thp == "off" else f", huge pages ({thp})") + f" (seed {seed})",
    )
    notes: Tuple[str, ...] = (
        f"peak memory {summary['peak_ratio']:.3f}x the data set; {summary['cow_pages_peak']:,} pages "
        f"({mib(summary['cow_pages_peak']):,.1f} MiB) copied on write; child Private_Dirty at the end "
        f"{summary['child_private_dirty_kb_final']:,} kB.",
        f"modelled fork {summary['fork_model_ms']:.2f} ms; parent fault time {summary['parent_fault_ms_total']:.2f} ms "
        f"in all (max {summary['parent_fault_ms_max_step']:.2f} ms in one step); frames after the child's exit "
        f"{summary['frames_after_exit']:,}.",
    )
    if thp != "off":
        notes += (
            f"huge pages ({thp}): {summary['thp_splits']:,} huge mappings split; parent AnonHugePages "
            f"{summary['parent_anon_huge_kb_at_fork']:,} kB at the fork, {rows[-1][12]:,} kB at the end.",
        )
    return SnapshotResult(frozen_map(params), model, (table,), frozen_map(summary), notes)


def _run(
    nbytes: int, steps: int, writes_per_step: int, skew: float, mode: str, seed: int, model: CostModel, bar: Any,
    thp: str = "off",
) -> Tuple[List[Tuple[Any, ...]], Dict[str, Any]]:
    pages = nbytes // PAGE_SIZE
    sampler = KeySampler(np.random.default_rng([seed, pages]), pages, skew)
    rows: List[Tuple[Any, ...]] = []
    huge = thp != "off"
    memory = machine_memory(2 * pages + (1024 if huge else 0))   # huge: room to align
    with Machine(memory=memory, page_size=PAGE_SIZE, store_data=False,
                 thp_cow=cast(ThpCow, "split" if thp == "off" else thp)) as m:
        parent = m.spawn()
        base = parent.mmap(nbytes, huge=huge)
        every_page = np.uint64(base) + np.arange(pages, dtype=np.uint64) * np.uint64(PAGE_SIZE)
        parent.access(every_page, write=True)
        before = m.stats
        child = parent.fork(cast(ForkMode, mode))
        after = m.stats
        fork_model_ms = model.price_fork(fork_events(child, before, after)) / NS_PER_MS
        start = after
        bounds = np.linspace(0, pages, steps + 1).round().astype(np.int64)
        writes_done = 0

        def row(step: int, fault_ms: float) -> Tuple[Any, ...]:
            s = m.stats
            cs, ps = child.smaps(), parent.smaps()
            return (
                step,
                int(bounds[step]),
                writes_done,
                cs["Private_Dirty"],
                cs["Shared_Clean"] + cs["Shared_Dirty"],
                ps["Private_Dirty"],
                ps["Shared_Clean"] + ps["Shared_Dirty"],
                s.frames_used,
                s.data_frames,
                s.pages_copied - start.pages_copied,
                s.data_frames / pages,
                fault_ms,
                ps["AnonHugePages"],
            )

        rows.append(row(0, 0.0))
        for step in range(1, steps + 1):
            child.access(every_page[bounds[step - 1] : bounds[step]], write=False)
            keys = sampler.draw(writes_per_step)
            copied = parent.stats.pages_copied
            res = parent.access(every_page[keys], write=True)
            copied = parent.stats.pages_copied - copied   # copy-huge: 512 per fault
            writes_done += writes_per_step
            rows.append(row(step, model.price_batch(res, copied) / NS_PER_MS))
            bar.update(1)
        child.exit()
        frames_after_exit = m.stats.frames_used
        thp_splits = parent.stats.thp_splits
    ratios = [r[10] for r in rows]
    faults = [r[11] for r in rows]
    summary = {
        "dataset_pages": pages,
        "peak_ratio": max(ratios),
        "cow_pages_peak": max(r[9] for r in rows),
        "child_private_dirty_kb_final": rows[-1][3],
        "fork_model_ms": fork_model_ms,
        "parent_fault_ms_total": float(sum(faults)),
        "parent_fault_ms_max_step": max(faults),
        "frames_at_fork": after.frames_used,
        "frames_peak": max(r[7] for r in rows),
        "frames_after_exit": frames_after_exit,
        "thp_splits": thp_splits,
        "parent_anon_huge_kb_at_fork": rows[0][12],
    }
    return rows, summary


@renamed_keywords(mode="fork_mode")
def snapshot_sweep(
    writes_per_step: Sequence[int] = (0, 256, 1024, 4096, 16384),
    skews: Sequence[float] = (0.0, 0.8, 1.2),
    dataset: Size = "256MiB",
    steps: int = 32,
    fork_mode: str = "cow",
    seed: int = 0,
    cost_model: CostModelSpec = None,
    progress: bool = False,
    thp: str = "off",
) -> SnapshotSweepResult:
    """Runs :func:`snapshot` over write rates and skews; one summary row per pair.

    Args:
        writes_per_step: the write rates to try (parent writes per step).
        skews: the key skews to try (0 = uniform, else a Zipf exponent).
        dataset, steps, fork_mode, seed, cost_model, thp: as in :func:`snapshot`.
        progress: show a progress bar on stderr (when it is a terminal).

    Raises:
        InvalidArgument: a parameter out of range (the message names it).
    """
    rates = check_seq("snapshot_sweep", "writes_per_step", writes_per_step,
                      lambda o, n, v: check_int(o, n, v, 0, 10**9))
    skew_list = check_seq("snapshot_sweep", "skews", skews, lambda o, n, v: check_float(o, n, v, 0.0, 10.0))
    nbytes, steps, _, _, mode, seed, thp = _params(dataset, steps, 0, 0.0, fork_mode, seed, thp)
    model = resolve_cost_model(cost_model)
    log.info("snapshot sweep: %d write rates x %d skews", len(rates), len(skew_list))
    started = time.perf_counter()
    rows = []
    bar = progress_bar(len(rates) * len(skew_list), "snapshot sweep", progress, unit="run")
    try:
        for skew, rate in itertools.product(skew_list, rates):
            bar.set_postfix_str(f"skew {skew:g}, {rate} writes/step")
            _, s = _run(nbytes, steps, rate, skew, mode, seed, model, NoBar(), thp)
            rows.append(
                (
                    rate,
                    skew,
                    rate * steps,
                    s["cow_pages_peak"],
                    mib(s["cow_pages_peak"]),
                    s["peak_ratio"],
                    s["child_private_dirty_kb_final"],
                    s["parent_fault_ms_total"],
                )
            )
            bar.update(1)
    finally:
        bar.close()
    log.info("snapshot sweep: done in %.1f s", time.perf_counter() - started)
    params = {
        "writes_per_step": list(rates),
        "skews": list(skew_list),
        "dataset": nbytes,
        "steps": steps,
        "fork_mode": mode,
        "seed": seed,
        "page_size": PAGE_SIZE,
        "thp": thp,
    }
    table = Table.build(
        "sweep",
        SWEEP_COLUMNS,
        rows,
        title=f"snapshot sweep: {format_size(nbytes)} data set, {mode} fork, {steps} steps (seed {seed})",
    )
    worst = max(rows, key=lambda r: r[5])
    summary = {"peak_ratio_max": worst[5]}
    notes = (f"highest peak: {worst[5]:.3f}x the data set at {worst[0]:,} writes/step, skew {worst[1]:g}.",)
    return SnapshotSweepResult(frozen_map(params), model, (table,), frozen_map(summary), notes)
