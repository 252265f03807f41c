"""Shared fixtures for the exact-count rule tests.

* ``machine`` -- a factory ``machine(**kwargs)`` building a ``cowsim.Machine``;
  the fixture is parametrized over data mode (``store_data=True``) and
  metadata mode (``store_data=False``), so every test using it runs twice.
* ``data_machine`` -- the same factory, data mode only (tests that read bytes).
* ``fork_mode`` -- parametrized over the two fork strategies, "cow" and "eager".
* ``snapshot`` -- a function capturing everything observable about a machine
  and its processes, to assert that a failed operation changed nothing.

Every machine handed out is wrapped in a thin proxy that calls ``m.check()``
(the core's full invariant check) after every operation on the machine or on
any of its processes -- whether the operation succeeded or raised -- so a
broken invariant is reported at the step that broke it.  The proxies forward
everything else unchanged; ``.raw`` gives the wrapped object (for identity
tests).  Tests that need the bare objects construct ``cowsim.Machine``
themselves.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

import cowsim

# tests/ holds no package (--import-mode=importlib): make the small helper
# module tests/rulehelpers.py importable from the test modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The seed of the differential test's fresh-seed part (tests/test_differential.py): new in
# every run unless COWSIM_HYPOTHESIS_SEED is set; exported so that the module uses it and
# printed in pytest's header so that any run can be replayed.
os.environ.setdefault("COWSIM_HYPOTHESIS_SEED", str(int.from_bytes(os.urandom(8), "little")))


def pytest_report_header(config):
    return f"cowsim: COWSIM_HYPOTHESIS_SEED={os.environ['COWSIM_HYPOTHESIS_SEED']} (test_differential_fresh)"


# Methods that only inspect state: no invariant check needed after them.
_READ_ONLY = frozenset(
    {"check", "close", "smaps", "translate", "page_table", "frames", "process",
     "__enter__", "__exit__"}
)


def _wrap(value, checked_machine):
    if isinstance(value, cowsim.Process):
        return CheckedProcess(value, checked_machine)
    if isinstance(value, cowsim.Machine):
        return checked_machine
    if isinstance(value, list) and value and isinstance(value[0], cowsim.Process):
        return [CheckedProcess(v, checked_machine) for v in value]
    return value


def _check(m):
    """The core's invariant check plus the stats identities of SEMANTICS.md."""
    m.check()
    s = m.stats
    assert s.frames_used + s.frames_free == s.frames_total == m.nframes - 1, s
    assert s.page_table_frames + s.data_frames == s.frames_used, s
    assert s.frames_allocated - s.frames_freed == s.frames_used, s
    assert s.frames_peak >= s.frames_used, s


class _Checked:
    """Forwarding proxy: calls the machine's check() after each mutating call."""

    __slots__ = ("raw", "_cm")

    def __init__(self, raw, cm):
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "_cm", cm)

    def __getattr__(self, name):
        attr = getattr(self.raw, name)
        cm = self._cm if self._cm is not None else self
        if callable(attr) and not isinstance(attr, type):
            if name in _READ_ONLY:
                return attr

            def call(*args, **kwargs):
                try:
                    result = attr(*args, **kwargs)
                finally:
                    # After any outcome (result or error) the invariants hold;
                    # a failing check during an error keeps the error as its
                    # __context__.
                    _check(cm.raw)
                return _wrap(result, cm)

            call.__name__ = name
            return call
        return _wrap(attr, cm)

    def __setattr__(self, name, value):
        setattr(self.raw, name, value)

    def __eq__(self, other):
        other_raw = other.raw if isinstance(other, _Checked) else other
        return self.raw == other_raw

    def __hash__(self):
        return hash(self.raw)

    def __repr__(self):
        return repr(self.raw)


class CheckedMachine(_Checked):
    __slots__ = ()

    def __init__(self, raw):
        super().__init__(raw, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.raw.close()
        return False


class CheckedProcess(_Checked):
    __slots__ = ()


def _make_factory(default_store_data, made):
    def make(memory="16MiB", **kwargs):
        kwargs.setdefault("store_data", default_store_data)
        raw = cowsim.Machine(memory=memory, **kwargs)
        m = CheckedMachine(raw)
        made.append(m)
        _check(raw)
        return m

    return make


@pytest.fixture(params=[True, False], ids=["data", "meta"])
def store_data(request):
    return request.param


def _machines(store_data):
    """Yields a machine factory; at teardown each machine is checked once more and closed."""
    made: list = []
    yield _make_factory(store_data, made)
    for m in made:
        try:
            if not getattr(m.raw, "closed", False):
                _check(m.raw)
        finally:
            m.raw.close()


@pytest.fixture
def machine(store_data):
    yield from _machines(store_data)


@pytest.fixture
def data_machine():
    yield from _machines(True)


@pytest.fixture(params=["cow", "eager"])
def fork_mode(request):
    return request.param


def _take_snapshot(m, *procs):
    """Everything observable about machine m and the given processes."""
    raw_m = m.raw if isinstance(m, _Checked) else m
    out = {
        "machine": dataclasses.asdict(raw_m.stats),
        "frames": raw_m.frames().tolist(),
        "pids": [p.pid for p in raw_m.processes],
    }
    for p in procs:
        raw_p = p.raw if isinstance(p, _Checked) else p
        out[f"proc{raw_p.pid}"] = {
            # accesses and tlb_* count what was attempted, not memory state
            "stats": {k: v for k, v in dataclasses.asdict(raw_p.stats).items()
                      if k != "accesses" and not k.startswith("tlb_")},
            "regions": [tuple(dataclasses.astuple(r)) if dataclasses.is_dataclass(r)
                        else tuple(r) for r in raw_p.regions],
            "page_table": raw_p.page_table().tolist(),
            "smaps": dict(raw_p.smaps()),
        }
    return out


@pytest.fixture
def snapshot():
    """snapshot(m, *procs) -> dict of everything observable (for equality)."""
    return _take_snapshot
