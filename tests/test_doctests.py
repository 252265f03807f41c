"""Runs the docstring examples of the public modules."""
import doctest
import importlib

import pytest

MODULES = ["cowsim", "cowsim.units", "cowsim.machine", "cowsim.process", "cowsim._types", "cowsim.reference"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failed == 0
