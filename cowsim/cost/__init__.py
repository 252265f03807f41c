"""The cost wing: what the simulator's counts cost in time.

- :mod:`~cowsim.cost.events` -- the events of a fork, an exit, a phase, read from the
  simulator's counters (reads only: pricing never changes a machine);
- :mod:`~cowsim.cost.model` -- :class:`CostModel`, the prices, and every price of an event;
- :mod:`~cowsim.cost.profile` -- calibration profiles (JSON) and what ``cost_model=`` accepts.

Imports only the simulator's door (``cowsim.Machine``, ``Process``, types, errors).
"""
from .events import ExitEvents, ForkEvents, exit_events, fork_events, stats_delta
from .model import NS_PER_MS, CostModel
from .profile import PROFILE_FORMAT, CostModelSpec, resolve_cost_model

__all__ = [
    "CostModel",
    "CostModelSpec",
    "ExitEvents",
    "ForkEvents",
    "NS_PER_MS",
    "PROFILE_FORMAT",
    "exit_events",
    "fork_events",
    "resolve_cost_model",
    "stats_delta",
]
