"""What every experiment shares: parameter checks, result tables, progress, plotting.

A workload returns an :class:`ExperimentResult` (frozen): its ``params``, the
``cost_model`` it priced with, one or more :class:`Table` objects (the first is
the main one), a ``summary`` of headline numbers and a few ``notes``.  Tables
convert to NumPy structured arrays (``to_numpy``), plain records (``records``),
text (``to_table``) and CSV.  Columns that hold host wall-clock times are
marked ``wallclock``; everything else is a deterministic function of the
parameters and the seed, and ``wallclock=False`` leaves the wall-clock columns out.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union, cast

import numpy as np

from .. import ForkMode
from .. import process as _process
from ..cost import CostModel
from ..errors import CowsimError, InvalidArgument
from ..units import Size, parse_size

__all__ = [
    "FORK_MODES",
    "THP_CHOICES",
    "concurrent_fork_modes",
    "renamed_keywords",
    "check_thp",
    "pyplot",
    "Column",
    "Table",
    "ExperimentResult",
    "MissingDependency",
    "log",
]

#: The fork strategies: the wrapper's own tuple (``cowsim.FORK_MODES``), so a strategy added
#: there ("odf", ...) joins every experiment without a change here.
FORK_MODES: Tuple[str, ...] = _process.FORK_MODES

log = logging.getLogger("cowsim.experiments")

#: ``thp`` choices of every experiment: no huge pages ("off"), or the memory in 2 MiB
#: transparent huge pages with a write to a shared one splitting its mapping and copying
#: 4 KiB ("split", Linux >= 5.8) or copying the whole 2 MiB ("copy-huge", older kernels).
THP_CHOICES: Tuple[str, ...] = ("off", "split", "copy-huge")

#: The experiments' page size (the cost model's prices are for 4 KiB pages).
PAGE_SIZE = 4096
MiB = 1 << 20


@functools.lru_cache(maxsize=None)
def _parent_runs_after(mode: str) -> bool:
    from ..machine import Machine

    with Machine(memory=64 * 4096, store_data=False) as m:
        parent = m.spawn()
        addr = parent.mmap(4096)
        parent.touch(addr, write=True)
        parent.fork(cast(ForkMode, mode))
        try:
            parent.touch(addr, write=True)
        except CowsimError:
            return False
    return True


def concurrent_fork_modes() -> Tuple[str, ...]:
    """The strategies of ``FORK_MODES`` after which the parent keeps running beside the
    child (not ``vfork``, whose parent waits), found by trying each once on a tiny machine.

    Workloads whose parent works on while its children live (snapshot, prefork, zygote)
    accept these.
    """
    return tuple(mode for mode in FORK_MODES if _parent_runs_after(mode))


_F = TypeVar("_F", bound=Callable[..., Any])


def renamed_keywords(**old_to_new: str) -> Callable[[_F], _F]:
    """Accepts the old spelling of renamed keyword arguments for one release, with a
    ``DeprecationWarning`` (e.g. ``@renamed_keywords(modes="fork_modes")``).

    The wrapped function keeps its signature (``inspect.signature`` follows ``__wrapped__``).
    """

    def decorate(func: _F) -> _F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{func.__name__}: got both {new}= and its old spelling {old}=")
                    warnings.warn(f"{func.__name__}: {old}= is deprecated; use {new}=", DeprecationWarning,
                                  stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.renamed_keywords = dict(old_to_new)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class MissingDependency(CowsimError, ImportError):
    """An optional dependency (matplotlib for plots) is not installed."""


# -- parameter checks -----------------------------------------------------------------
def check_int(op: str, name: str, value: Any, low: Optional[int] = None, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, not {type(value).__name__}")
    number = int(value)
    if low is not None and number < low:
        raise InvalidArgument(f"{op}: {name} must be >= {low}, got {number}")
    if high is not None and number > high:
        raise InvalidArgument(f"{op}: {name} must be <= {high}, got {number}")
    return number


def check_float(
    op: str, name: str, value: Any, low: Optional[float] = None, high: Optional[float] = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgument(f"{op}: {name} must be finite, got {number}")
    if low is not None and number < low:
        raise InvalidArgument(f"{op}: {name} must be >= {low}, got {number}")
    if high is not None and number > high:
        raise InvalidArgument(f"{op}: {name} must be <= {high}, got {number}")
    return number


def check_size(op: str, name: str, value: Size, page_size: int = PAGE_SIZE, low_pages: int = 1) -> int:
    """A size in bytes (int or "64MiB"), rounded up to whole pages; at least ``low_pages`` pages."""
    nbytes = parse_size(value, f"{op}: {name}")
    pages = -(-nbytes // page_size)
    if pages < low_pages:
        raise InvalidArgument(f"{op}: {name} must be at least {low_pages * page_size} bytes, got {value!r}")
    return pages * page_size


def check_choice(op: str, name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{op}: {name} must be a str, not {type(value).__name__}")
    if value not in choices:
        raise InvalidArgument(f"{op}: unknown {name} {value!r}; expected one of {', '.join(choices)}")
    return value


def check_thp(op: str, thp: Any) -> str:
    """``thp`` as one of ``THP_CHOICES``; a bool (fork-cost's old spelling) is accepted with a
    ``DeprecationWarning``: True is "split", False is "off"."""
    if isinstance(thp, bool):
        new = "split" if thp else "off"
        warnings.warn(f"{op}: thp={thp} is deprecated; use thp={new!r} (one of {', '.join(THP_CHOICES)})",
                      DeprecationWarning, stacklevel=4)  # check_thp < the experiment < its wrapper < caller
        return new
    return check_choice(op, "thp", thp, THP_CHOICES)


def check_seq(op: str, name: str, values: Any, item: Callable[[str, str, Any], Any]) -> Tuple[Any, ...]:
    """A non-empty sequence without duplicates, each item checked by ``item(op, name, v)``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{op}: {name} must be a sequence, not {type(values).__name__}")
    out = tuple(item(op, f"{name}[{i}]", v) for i, v in enumerate(values))
    if not out:
        raise InvalidArgument(f"{op}: {name} must not be empty")
    if len(set(out)) != len(out):
        raise InvalidArgument(f"{op}: {name} has duplicates: {list(out)}")
    return out


def check_seed(op: str, seed: Any) -> int:
    return check_int(op, "seed", seed, 0, 2**63 - 1)


def check_modes(op: str, name: str, modes: Any, choices: Sequence[str] = FORK_MODES) -> Tuple[str, ...]:
    return check_seq(op, name, modes, lambda o, n, v: check_choice(o, n, v, choices))


# -- tables -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One column: its record/array ``name``, NumPy ``dtype``, text ``header`` and format.

    ``fmt`` is a format spec (``",d"``, ``".2f"``); ``wallclock`` marks host timings;
    ``text=False`` leaves the column out of the text table (it stays in records and arrays).
    """

    name: str
    dtype: str
    header: str = ""
    fmt: str = ""
    wallclock: bool = False
    text: bool = True

    @property
    def title(self) -> str:
        return self.header or self.name

    def format(self, value: Any) -> str:
        if isinstance(value, float) and not math.isfinite(value):
            return "-"
        return format(value, self.fmt) if self.fmt else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class Table:
    """An immutable table of rows (tuples of plain Python values, one per column).

    ``show=False`` keeps a (long) table out of the result's text; it stays in
    records, arrays, CSV and JSON.
    """

    name: str
    columns: Tuple[Column, ...]
    rows: Tuple[Tuple[Any, ...], ...]
    title: str = ""
    show: bool = True

    @classmethod
    def build(
        cls, name: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]], title: str = "", show: bool = True
    ) -> "Table":
        cols = tuple(columns)
        out = []
        for row in rows:
            if len(row) != len(cols):
                raise AssertionError(f"table {name}: row of {len(row)} values for {len(cols)} columns")
            out.append(tuple(_plain(v) for v in row))
        return cls(name, cols, tuple(out), title, show)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def _keep(self, wallclock: bool) -> List[int]:
        return [i for i, c in enumerate(self.columns) if wallclock or not c.wallclock]

    def column(self, name: str) -> np.ndarray:
        """One column as a NumPy array."""
        return self.to_numpy()[name]

    def to_numpy(self, wallclock: bool = True) -> np.ndarray:
        """A structured array, one field per column."""
        keep = self._keep(wallclock)
        dtype = np.dtype([(self.columns[i].name, self.columns[i].dtype) for i in keep])
        return np.array([tuple(row[i] for i in keep) for row in self.rows], dtype=dtype)

    def records(self, wallclock: bool = True) -> List[Dict[str, Any]]:
        """A list of dicts (plain Python values), one per row."""
        keep = self._keep(wallclock)
        return [{self.columns[i].name: row[i] for i in keep} for row in self.rows]

    def to_table(self, wallclock: bool = True) -> str:
        """The table as aligned text (numbers right-aligned)."""
        keep = [i for i in self._keep(wallclock) if self.columns[i].text]
        cols = [self.columns[i] for i in keep]
        cells = [[c.format(row[i]) for c, i in zip(cols, keep)] for row in self.rows]
        widths = [max([len(c.title)] + [len(r[j]) for r in cells]) for j, c in enumerate(cols)]
        left = [c.dtype.startswith("U") for c in cols]

        def line(values: Sequence[str]) -> str:
            parts = [v.ljust(w) if lft else v.rjust(w) for v, w, lft in zip(values, widths, left)]
            return "  ".join(parts).rstrip()

        out = [self.title] if self.title else []
        out.append(line([c.title for c in cols]))
        out.extend(line(r) for r in cells)
        return "\n".join(out)

    def to_csv(self, wallclock: bool = True) -> str:
        """CSV with a header of column names."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        keep = self._keep(wallclock)
        writer.writerow([self.columns[i].name for i in keep])
        for row in self.rows:
            writer.writerow([_csv_value(row[i]) for i in keep])
        return buf.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return _plain(value)


def frozen_map(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(data))


# -- results ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ExperimentResult:
    """The result of one experiment run (frozen).

    Attributes:
        params: the validated parameters (sizes in bytes), by name.
        cost_model: the prices used for every modelled time.
        tables: the result tables; ``tables[0]`` is the main one.
        summary: headline numbers by name.
        notes: lines of text printed under the tables.
        wallclock_notes: lines about host wall-clock times, printed first (when they are shown).
    """

    experiment: ClassVar[str] = ""

    params: Mapping[str, Any]
    cost_model: CostModel
    tables: Tuple[Table, ...]
    summary: Mapping[str, Any] = field(default_factory=lambda: frozen_map({}))
    notes: Tuple[str, ...] = ()
    wallclock_notes: Tuple[str, ...] = ()

    def table(self, name: Optional[str] = None) -> Table:
        """A table by name (default: the main one).

        Raises:
            InvalidArgument: no table of that name.
        """
        if name is None:
            return self.tables[0]
        for t in self.tables:
            if t.name == name:
                return t
        raise InvalidArgument(f"{self.experiment}: no table {name!r}; tables: {[t.name for t in self.tables]}")

    def to_numpy(self, table: Optional[str] = None, wallclock: bool = True) -> np.ndarray:
        """A table (default: the main one) as a NumPy structured array."""
        return self.table(table).to_numpy(wallclock)

    def records(self, table: Optional[str] = None, wallclock: bool = True) -> List[Dict[str, Any]]:
        """A table (default: the main one) as a list of dicts."""
        return self.table(table).records(wallclock)

    def to_table(self, wallclock: bool = True) -> str:
        """Every shown table as text, then the notes."""
        parts = [t.to_table(wallclock) for t in self.tables if t.show]
        notes = (self.wallclock_notes if wallclock else ()) + self.notes
        if notes:
            parts.append("\n".join(notes))
        return "\n\n".join(parts) + "\n"

    def to_csv(self, table: Optional[str] = None, wallclock: bool = True) -> str:
        """A table (default: the main one) as CSV."""
        return self.table(table).to_csv(wallclock)

    def to_dict(self, wallclock: bool = True) -> Dict[str, Any]:
        """Everything as plain JSON-ready data."""
        summary = {
            k: v for k, v in self.summary.items() if wallclock or not k.endswith("_wall_s")
        }
        return {
            "experiment": self.experiment,
            "params": _json_value(self.params),
            "cost_model": self.cost_model.to_dict(),
            "summary": _json_value(summary),
            "tables": {t.name: [_json_value(r) for r in t.records(wallclock)] for t in self.tables},
        }

    def to_json(self, wallclock: bool = True, indent: Optional[int] = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(wallclock), indent=indent, allow_nan=False) + "\n"

    def plot(self, path: Union[str, Path]) -> Path:
        """Draws the experiment's figure into ``path`` (format from the suffix, e.g. ``.png``).

        Raises:
            MissingDependency: matplotlib is not installed (``pip install 'cowsim[plot]'``).
        """
        plt = pyplot()
        fig = self._figure(plt)
        try:
            return save_figure(fig, path)
        finally:
            plt.close(fig)

    def _figure(self, plt: Any) -> Any:  # pragma: no cover - every workload overrides it
        raise NotImplementedError


# -- progress ---------------------------------------------------------------------------
class NoBar:
    """A progress bar that shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "NoBar":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: Optional[bool], unit: str = "step") -> Any:
    """A tqdm bar on stderr when ``enabled`` and stderr is a terminal, else a no-op bar."""
    if not enabled or not _stderr_is_tty():
        return NoBar()
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # a progress bar is never worth failing for
        return NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


# -- plotting -----------------------------------------------------------------------------
def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend.

    Raises:
        MissingDependency: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise MissingDependency(
            "plotting needs matplotlib, which is not installed: pip install 'cowsim[plot]' (or matplotlib)"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Union[str, Path]) -> Path:
    out = Path(path)
    if not out.suffix:
        raise InvalidArgument(f"plot: {out} has no suffix; give e.g. FILE.png")
    try:
        fig.savefig(out, dpi=90, metadata={"Software": None} if out.suffix.lower() == ".png" else None)
    except ValueError as exc:  # unknown format
        raise InvalidArgument(f"plot: cannot write {out}: {exc}") from None
    except OSError as exc:
        raise InvalidArgument(f"plot: cannot write {out}: {exc.strerror or exc}") from None
    return out


def machine_memory(pages: int, page_size: int = PAGE_SIZE) -> int:
    """A machine size that holds ``pages`` data pages plus their tables (and some slack)."""
    tables = pages // 256 + 64
    return (pages + tables) * page_size


def mib(pages: int, page_size: int = PAGE_SIZE) -> float:
    return pages * page_size / MiB
