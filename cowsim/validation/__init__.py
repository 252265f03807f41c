"""The validation wing: the same scenario on the host kernel and in cowsim, compared.

- :mod:`.scenario` — the scenario model (checks, address layout);
- :mod:`.files` — scenario files: JSON/TOML text into scenarios;
- :mod:`.suite` — the built-in suite, its predictions computed for a page size and window;
- :mod:`.host_side` — a scenario on the host kernel, through :mod:`cowsim.host.probe`;
- :mod:`.run` — cowsim's side (:func:`simulate`), the kernel side and its re-runs,
  :func:`run_scenario` and :func:`run_suite`;
- :mod:`.compare` — :class:`Row`, :class:`ValidationResult`, how kernel runs settle;
- :mod:`.report` — the text table.

The command line is ``cowsim validate`` (:mod:`cowsim.cli.validate`).
"""
from .host_side import HostRun
from .compare import FAULT_METRICS, Row, ValidationResult, settle_kernel_runs
from .run import KERNEL_RERUNS, host_suite, kernel_run, run_scenario, run_suite, simulate, thp_skip_reason
from .files import load_scenarios, loads, parse_scenarios
from .scenario import Scenario
from .suite import SUITE_NAMES, builtin_suite

__all__ = [
    "Scenario",
    "load_scenarios",
    "loads",
    "parse_scenarios",
    "SUITE_NAMES",
    "builtin_suite",
    "host_suite",
    "simulate",
    "run_scenario",
    "run_suite",
    "kernel_run",
    "HostRun",
    "thp_skip_reason",
    "settle_kernel_runs",
    "Row",
    "ValidationResult",
    "FAULT_METRICS",
    "KERNEL_RERUNS",
]
