"""pytest configuration for the benchmarks (``python -m pytest bench``).

The benchmark files are named ``bench_*.py``, which pytest's default
``python_files`` does not match; collect them here, so ``tests/`` keeps the
default and the benchmarks stay out of the test run (``testpaths``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional[pytest.Module]:
    # a file named on the command line is collected by pytest itself: not twice
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
