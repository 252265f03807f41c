"""The experiments: one module per workload, each a function returning a frozen result.

- :func:`fork_cost` — what fork() costs by resident size, strategy and child writes;
- :func:`snapshot` / :func:`snapshot_sweep` — a Redis-style BGSAVE snapshot;
- :func:`prefork` — a gunicorn ``--preload`` server with CPython refcounts and GC;
- :func:`zygote` — Android-style zygote against apps that load their own copy;
- :func:`cowtest` — the teaching kernels' copy-on-write test, under each strategy.

Every result converts to NumPy (``to_numpy()``), records (``records()``), text
(``to_table()``), CSV and JSON, and draws its figure with ``plot(path)``.
"""
from ._common import FORK_MODES, THP_CHOICES, Column, ExperimentResult, MissingDependency, Table, concurrent_fork_modes, pyplot
from ._cowtest import COWTESTS, CowtestResult, cowtest
from ._fork_cost import ForkCostResult, fork_cost
from ._prefork import PREFORK_MODES, PreforkResult, prefork
from ._snapshot import SnapshotResult, SnapshotSweepResult, snapshot, snapshot_sweep
from ._zygote import ZygoteResult, zygote

__all__ = [
    "FORK_MODES",
    "THP_CHOICES",
    "pyplot",
    "concurrent_fork_modes",
    "Column",
    "Table",
    "ExperimentResult",
    "MissingDependency",
    "fork_cost",
    "ForkCostResult",
    "prefork",
    "PreforkResult",
    "PREFORK_MODES",
    "snapshot",
    "snapshot_sweep",
    "SnapshotResult",
    "SnapshotSweepResult",
    "cowtest",
    "CowtestResult",
    "COWTESTS",
    "zygote",
    "ZygoteResult",
]
