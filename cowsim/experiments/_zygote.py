"""zygote: Android's zygote — apps forked from a preloaded process, against apps that load alone.

With a zygote, one process preloads ``preload`` bytes (every page written) and
each app is forked from it and then dirties ``dirty_fraction`` of the preloaded
pages (a seeded random subset per app): under cow each app costs its page
tables plus the pages it dirtied.  Without a zygote, each app is spawned and
loads its own copy of the same pages, then dirties the same subset (its own
pages: no copy).  Frames used (machine-wide, page tables included) are
recorded after each app starts, with ``n`` = 0 … ``apps`` apps running.

Under cow the totals are exact: with ``L`` preloaded pages, ``T`` table frames
of a process holding them, ``k`` = round(``dirty_fraction`` × ``L``):
with zygote ``L + T + n (T + k)``, without ``n (L + T)``.

>>> r = zygote(preload="1MiB", apps=3, dirty_fraction=0.25)
>>> [(row["apps"], row["frames_zygote"], row["frames_alone"]) for row in r.records()]
[(0, 260, 0), (1, 328, 260), (2, 396, 520), (3, 464, 780)]
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, List, Tuple, cast

import numpy as np

from .. import ForkMode
from ..machine import Machine
from ..cost import CostModelSpec, NS_PER_MS, fork_events, resolve_cost_model
from ..units import Size, format_size
from ._common import (
    PAGE_SIZE,
    Column,
    ExperimentResult,
    Table,
    check_choice,
    check_float,
    check_int,
    check_seed,
    check_size,
    concurrent_fork_modes,
    frozen_map,
    log,
    machine_memory,
    mib,
    progress_bar,
)

__all__ = ["zygote", "ZygoteResult"]

_OP = "zygote"

COLUMNS = (
    Column("apps", "i8", "apps"),
    Column("frames_zygote", "i8", "frames (zygote)", ",d"),
    Column("frames_alone", "i8", "frames (alone)", ",d"),
    Column("mib_zygote", "f8", "MiB (zygote)", ",.1f"),
    Column("mib_alone", "f8", "MiB (alone)", ",.1f"),
    Column("saved_frames", "i8", "saved frames", ",d"),
    Column("saved_mib", "f8", "saved MiB", ",.1f"),
    Column("app_pss_kb", "i8", "app Pss kB", ",d"),
    Column("startup_zygote_ms", "f8", "start ms (zygote)", ".2f"),
    Column("startup_alone_ms", "f8", "start ms (alone)", ".2f"),
)


@dataclass(frozen=True)
class ZygoteResult(ExperimentResult):
    """Result of :func:`zygote`: table ``apps``, one row per number of running apps."""

    experiment = "zygote"

    def _figure(self, plt: Any) -> Any:
        data = self.to_numpy()
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.plot(data["apps"], data["mib_alone"], marker="o", label="each app loads its own copy")
        ax.plot(data["apps"], data["mib_zygote"], marker="o", label="apps forked from a zygote")
        ax.set_xlabel("apps running")
        ax.set_ylabel("memory in use (MiB)")
        p = self.params
        ax.set_title(f"zygote: {format_size(p['preload'])} preloaded, each app dirties {p['dirty_fraction']:.0%}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig


def zygote(
    preload: Size = "128MiB",
    apps: int = 16,
    dirty_fraction: float = 0.1,
    fork_mode: str = "cow",
    seed: int = 0,
    cost_model: CostModelSpec = None,
    progress: bool = False,
) -> ZygoteResult:
    """Memory in use against the number of apps, with and without a zygote.

    Args:
        preload: bytes the zygote preloads (and each lone app loads); rounded up to pages.
        apps: apps to start (1 to 1024).
        dirty_fraction: fraction of the preloaded pages each app writes, in [0, 1].
        fork_mode: how the zygote forks apps; one of
            ``concurrent_fork_modes()`` (the parent runs on beside its children).
        seed: chooses the pages each app dirties.
        cost_model: prices (a ``CostModel``, a dict, a JSON profile path; None: defaults).
        progress: show a progress bar on stderr (when it is a terminal).

    Raises:
        InvalidArgument: a parameter out of range (the message names it).
    """
    nbytes = check_size(_OP, "preload", preload)
    apps = check_int(_OP, "apps", apps, 1, 1024)
    fraction = check_float(_OP, "dirty_fraction", dirty_fraction, 0.0, 1.0)
    fork_mode = check_choice(_OP, "fork_mode", fork_mode, concurrent_fork_modes())
    seed = check_seed(_OP, seed)
    model = resolve_cost_model(cost_model)
    pages = nbytes // PAGE_SIZE
    k = math.floor(fraction * pages + 0.5)
    log.info("zygote: %s preloaded, %d apps", format_size(nbytes), apps)
    started = time.perf_counter()
    offsets = np.arange(pages, dtype=np.uint64) * np.uint64(PAGE_SIZE)
    dirty = [np.sort(np.random.default_rng([seed, n]).choice(pages, k, replace=False)) for n in range(1, apps + 1)]
    memory = machine_memory((apps + 1) * pages)
    bar = progress_bar(2 * apps, "zygote", progress, unit="app")
    with_zygote: List[Tuple[int, int, float]] = []
    alone: List[Tuple[int, float]] = []
    try:
        with Machine(memory=memory, page_size=PAGE_SIZE, store_data=False) as m:
            z = m.spawn()
            base = z.mmap(nbytes)
            z.access(offsets + np.uint64(base), write=True)
            with_zygote.append((m.stats.frames_used, 0, 0.0))
            children = []
            for n in range(1, apps + 1):
                before = m.stats
                app = z.fork(cast(ForkMode, fork_mode))
                start_ns = model.price_fork(fork_events(app, before, m.stats))
                res = app.access(offsets[dirty[n - 1]] + np.uint64(base), write=True)
                children.append(app)
                with_zygote.append((m.stats.frames_used, app.smaps()["Pss"], (start_ns + model.price_batch(res)) / NS_PER_MS))
                bar.update(1)
        with Machine(memory=memory, page_size=PAGE_SIZE, store_data=False) as m:
            alone.append((0, 0.0))
            for n in range(1, apps + 1):
                app = m.spawn()
                base = app.mmap(nbytes)
                load = app.access(offsets + np.uint64(base), write=True)
                res = app.access(offsets[dirty[n - 1]] + np.uint64(base), write=True)
                alone.append((m.stats.frames_used, (model.price_batch(load) + model.price_batch(res)) / NS_PER_MS))
                bar.update(1)
    finally:
        bar.close()
    log.info("zygote: done in %.1f s", time.perf_counter() - started)
    rows = []
    for n, ((fz, pss, sz), (fa, sa)) in enumerate(zip(with_zygote, alone)):
        rows.append((n, fz, fa, mib(fz), mib(fa), fa - fz, mib(fa - fz), pss, sz, sa))
    params = {
        "preload": nbytes,
        "apps": apps,
        "dirty_fraction": fraction,
        "fork_mode": fork_mode,
        "seed": seed,
        "page_size": PAGE_SIZE,
    }
    table = Table.build(
        "apps",
        COLUMNS,
        rows,
        title=f"zygote: {format_size(nbytes)} preloaded, each app dirties {fraction:.0%} of it "
        f"({k:,} pages), {fork_mode} fork (seed {seed})",
    )
    last = rows[-1]
    even = next((r[0] for r in rows[1:] if r[5] >= 0), None)
    summary = {
        "saved_frames": last[5],
        "saved_mib": last[6],
        "break_even_apps": even,
        "dirty_pages_per_app": k,
    }
    notes = (
        f"with {apps} apps the zygote saves {last[5]:,} frames ({last[6]:,.1f} MiB)"
        + (f"; it pays for itself from {even} app(s) on." if even is not None else "."),
        "frames: machine-wide, page tables included (the zygote counted in 'zygote'); app Pss: the newest app's;"
        " start ms: modelled fork + faults (zygote) or load faults (alone).",
    )
    return ZygoteResult(frozen_map(params), model, (table,), frozen_map(summary), notes)
