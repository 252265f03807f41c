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
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
