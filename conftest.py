"""Test the installed cowsim, never the bare source tree.

``python -m pytest`` (the README's test command) puts the current directory,
the repository root, first on ``sys.path``, where ``cowsim/`` would shadow the
installed package; after a regular ``pip install .`` that source tree has no
compiled ``cowsim._core``.  pytest loads this file before any test or
``tests/conftest.py`` imports cowsim, so dropping the root here makes every
``import cowsim`` find the installed package.  An editable install still maps
``cowsim`` to this tree through its own import hook.
"""
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT]
