"""Parsing of byte sizes such as ``"64KiB"``, ``"1GiB"`` or ``4096``."""
from __future__ import annotations

import re
from typing import Union

import numpy as np

from .errors import InvalidArgument

Size = Union[int, str]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgtp]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(value: Size, what: str = "size") -> int:
    """Returns a size in bytes.

    Args:
        value: an int, or a string of digits with an optional binary unit:
            ``"4096"``, ``"64KiB"``, ``"512MiB"``, ``"4GiB"`` (``K``/``KB`` mean KiB too).
        what: the argument's name, for error messages.

    Raises:
        TypeError: value is neither int nor str.
        InvalidArgument: the string is not a size, or the size is negative.

    >>> parse_size("64KiB")
    65536
    >>> parse_size(4096)
    4096
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, str)):
        raise TypeError(f"{what} must be an int or a size string like '64KiB', not {type(value).__name__}")
    if not isinstance(value, str):
        number = int(value)
        if number < 0:
            raise InvalidArgument(f"{what} must not be negative, got {number}")
        return number
    match = _SIZE_RE.match(value)
    if not match:
        raise InvalidArgument(f"{what}: cannot parse {_short(value)} as a size (e.g. '4096', '64KiB', '1GiB')")
    digits = match.group(1)
    if len(digits) > _MAX_DIGITS:  # beyond any machine; int() of 4,300+ digits raises ValueError
        raise InvalidArgument(f"{what}: {_short(value)} is too large ({len(digits)} digits)")
    return int(digits) * _UNITS[match.group(2).lower()]


_MAX_DIGITS = 30  # 10**30 bytes: far past 2**64


def _short(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:37]) + "..."


def format_size(nbytes: int) -> str:
    """Formats bytes with the largest exact binary unit, e.g. ``'64KiB'``.

    >>> format_size(1 << 30)
    '1GiB'
    """
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes and nbytes % factor == 0:
            return f"{nbytes // factor}{unit}"
    return f"{nbytes}B"
