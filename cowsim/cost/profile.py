"""Cost-model profiles: the JSON files ``cowsim calibrate`` writes, and what ``cost_model=`` accepts.

>>> resolve_cost_model({"fault_ns": 1.0}).fault_ns
1.0
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Union

from ..errors import InvalidArgument
from .model import CostModel

__all__ = ["PROFILE_FORMAT", "CostModelSpec", "load", "save", "resolve_cost_model"]

#: The ``format`` tag of a calibration profile file.
PROFILE_FORMAT = "cowsim-cost-profile/1"

#: What ``cost_model=`` accepts: a model, a dict of parameters, a profile file path, or None.
CostModelSpec = Union[CostModel, Mapping[str, Any], str, Path, None]


def load(source: Union[str, Path, Mapping[str, Any]]) -> CostModel:
    """A model from a profile file (JSON, as ``cowsim calibrate`` writes), a profile dict
    (with a ``cost_model`` table), or a dict of parameters (missing ones default).

    Raises:
        InvalidArgument: unreadable file, not JSON, an unknown format, or bad parameters.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidArgument(f"CostModel: cannot read {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"CostModel: {path} is not JSON: {exc}") from None
    else:
        data = source
    if isinstance(data, Mapping) and "cost_model" in data:
        fmt = data.get("format", PROFILE_FORMAT)
        if fmt != PROFILE_FORMAT:
            raise InvalidArgument(f"CostModel: unsupported profile format {fmt!r} (expected {PROFILE_FORMAT!r})")
        data = data["cost_model"]
    return CostModel.from_dict(data)


def save(model: CostModel, path: Union[str, Path]) -> None:
    """Writes ``model`` as a profile file that :func:`load` reads."""
    Path(path).write_text(
        json.dumps({"format": PROFILE_FORMAT, "cost_model": model.to_dict()}, indent=2) + "\n", encoding="utf-8"
    )


def resolve_cost_model(cost_model: CostModelSpec, what: str = "cost_model") -> CostModel:
    """Returns a :class:`CostModel` from what a user passed.

    Args:
        cost_model: None (the calibrated defaults), a ``CostModel``, a dict of
            parameters (missing ones default), or the path of a JSON profile.
        what: the parameter's name, for error messages.

    Raises:
        InvalidArgument: an unreadable file, or unknown/bad parameters.
        TypeError: anything else.
    """
    if cost_model is None:
        return CostModel()
    if isinstance(cost_model, CostModel):
        return cost_model
    if isinstance(cost_model, (str, Path, Mapping)):
        try:
            return load(cost_model)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{what}: {exc}") from None
    raise TypeError(
        f"{what} must be a CostModel, a dict of prices or a JSON file path, not {type(cost_model).__name__}"
    )
