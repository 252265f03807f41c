"""The validation wing: the same scenario on the host kernel and in cowsim, compared.

- :mod:`.scenario` — the scenario model (JSON/TOML loading, checks, address layout);
- :mod:`.suite` — the built-in suite, its predictions computed for a page size and window;
- :mod:`.run` — cowsim's side (:func:`simulate`), the kernel side through
  :mod:`cowsim.host.probe`, re-runs, :func:`run_scenario` and :func:`run_suite`;
- :mod:`.compare` — :class:`Row`, :class:`ValidationResult`, how kernel runs settle;
- :mod:`.report` — the text table.

The command line is ``cowsim validate`` (:mod:`cowsim.cli.validate`).
"""
from .compare import FAULT_METRICS, Row, ValidationResult, settle_kernel_runs
from .run import KERNEL_RERUNS, host_suite, kernel_run, run_scenario, run_suite, simulate, thp_skip_reason
from .scenario import Scenario, load_scenarios
from .suite import SUITE_NAMES, builtin_suite

__all__ = [
    "Scenario",
    "load_scenarios",
    "SUITE_NAMES",
    "builtin_suite",
    "host_suite",
    "simulate",
    "run_scenario",
    "run_suite",
    "kernel_run",
    "thp_skip_reason",
    "settle_kernel_runs",
    "Row",
    "ValidationResult",
    "FAULT_METRICS",
    "KERNEL_RERUNS",
]
