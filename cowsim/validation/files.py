"""Scenario files: JSON or TOML text into validated :class:`~cowsim.validation.scenario.Scenario` objects.

A file holds one scenario, a list of them, or a table with a ``scenarios`` list;
the fields are described in :mod:`cowsim.validation.scenario`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Union

from ..errors import InvalidArgument
from .scenario import Scenario

__all__ = ["parse_scenarios", "loads", "load_scenarios"]


def parse_scenarios(data: Any, source: str = "") -> List[Scenario]:
    """Scenarios from loaded JSON/TOML data: one scenario, a list of them, or a
    table with a ``scenarios`` list.  Names must be unique.

    Raises:
        InvalidArgument: the data is not a scenario file, or a scenario is invalid.
    """
    if isinstance(data, dict) and "scenarios" in data and "steps" not in data:
        if set(data) != {"scenarios"}:
            extra = ", ".join(sorted(set(data) - {"scenarios"}))
            raise InvalidArgument(f"{source or 'scenario file'}: unknown top-level field(s) {extra}")
        items = data["scenarios"]
    elif isinstance(data, list):
        items = data
    else:
        items = [data]
    if not isinstance(items, list) or not items:
        raise InvalidArgument(f"{source or 'scenario file'}: 'scenarios' must be a non-empty list")
    out = [Scenario.from_dict(item, source) for item in items]
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InvalidArgument(f"{source or 'scenario file'}: duplicate scenario name(s) {', '.join(dup)}")
    return out


def _toml_loads(text: str, source: str) -> Any:
    try:
        import tomllib as toml  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            import tomli as toml  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            raise InvalidArgument(
                f"{source or 'scenario'}: reading TOML needs Python 3.11+ (tomllib) or the 'tomli' "
                "package (pip install tomli); JSON works everywhere"
            ) from None
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise InvalidArgument(f"{source or 'scenario'}: not valid TOML: {exc}") from None


def loads(text: str, fmt: str = "json", source: str = "") -> List[Scenario]:
    """Scenarios from JSON or TOML text (``fmt`` "json" or "toml")."""
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"{source or 'scenario'}: not valid JSON: {exc}") from None
    elif fmt == "toml":
        data = _toml_loads(text, source)
    else:
        raise InvalidArgument(f"unknown scenario format {fmt!r}; expected 'json' or 'toml'")
    return parse_scenarios(data, source)


def load_scenarios(path: Union[str, Path]) -> List[Scenario]:
    """Scenarios from a ``.json`` or ``.toml`` file.

    Raises:
        InvalidArgument: unreadable file, unknown extension, or an invalid scenario.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise InvalidArgument(f"{p}: scenario files must end in .json or .toml")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"{p}: cannot read: {exc.strerror or exc}") from None
    return loads(text, suffix[1:], str(p))
