"""Runs the docstring examples of every module of the package (found, not listed)."""
import doctest
import importlib
import pkgutil

import pytest

import cowsim

MODULES = sorted(
    ["cowsim"]
    + [m.name for m in pkgutil.walk_packages(cowsim.__path__, "cowsim.") if m.name != "cowsim._core"]
)


def test_every_wing_is_found() -> None:
    assert {"cowsim.cost.model", "cowsim.process", "cowsim.experiments._fork_cost"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failed == 0
