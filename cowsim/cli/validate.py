"""``cowsim validate``: scenarios on the host kernel and in cowsim, compared.

Exit status: 0 every compared value matches; 1 a mismatch (cowsim, the kernel or a
prediction disagree); 2 a bad scenario or option; 3 the host side is unavailable
(use ``--sim-only``), failed, or gave no settled answer (kernel noise: the kernel's
own runs did not agree on some value, and nothing else is wrong).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, List

from ._common import EXIT_HOST, EXIT_MISMATCH, EXIT_OK, CommandError, add_command, default_of, log

__all__ = ["add_validate_parser"]


def add_validate_parser(commands: Any) -> argparse.ArgumentParser:
    """Registers ``validate`` on an argparse subparsers object; the parser's ``func``
    default runs it and returns the exit status (see the module docstring)."""
    from ..validation import SUITE_NAMES, run_scenario

    p = add_command(
        commands,
        "validate",
        _cmd_validate,
        "run scenarios on the host kernel and in cowsim and compare them",
        "Runs scenarios (default: the built-in suite) in real processes on the host "
        "Linux kernel and in cowsim, and prints per step and metric both values. Exit status: "
        "0 all match, 1 a mismatch, 2 a bad scenario or option, 3 the host side is unavailable, "
        "failed or gave no settled answer (kernel noise).",
    )
    p.add_argument("--scenario", metavar="FILE", action="append", default=[],
                   help="a .json or .toml scenario file (repeatable); none: the built-in suite")
    p.add_argument("--only", metavar="NAME", action="append", default=[],
                   help=f"run only this built-in scenario (repeatable): {', '.join(SUITE_NAMES)}")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.add_argument("--sim-only", action="store_true",
                   help="do not run the kernel side: check cowsim against the scenarios' predictions")
    p.add_argument("--sim-fault-around", metavar="BYTES", type=int, default=default_of(run_scenario, "fault_around"),
                   help="cowsim's fault-around window in bytes (default: the kernel's); 0 shows a deliberate mismatch")
    p.add_argument("--fault-tolerance", metavar="N", type=int, default=default_of(run_scenario, "fault_tolerance"),
                   help="allowed difference of fault counts (0: exact)")
    p.add_argument("--kernel-reruns", metavar="N", type=int, default=default_of(run_scenario, "kernel_reruns"),
                   help="fresh kernel runs of a scenario whose first run disagrees; a value counts when two runs "
                        "give it (0: the first run decides)")
    p.add_argument("--all-regions", action="store_true", help="also print lines of unmapped, all-zero regions")
    return p


def _cmd_validate(args: argparse.Namespace) -> int:
    from ..host import probe
    from ..validation import Scenario, host_suite, load_scenarios, run_suite

    scenarios: List[Scenario] = []
    for path in args.scenario:
        scenarios.extend(load_scenarios(path))
    if args.only or not args.scenario:
        scenarios.extend(host_suite(args.only or None))
    if args.fault_tolerance < 0:
        raise CommandError("--fault-tolerance must not be negative")
    if args.kernel_reruns < 0:
        raise CommandError("--kernel-reruns must not be negative")
    if not args.sim_only:
        reason = probe.unavailable_reason()
        if reason:
            raise CommandError(f"the kernel side is unavailable: {reason} (use --sim-only)", EXIT_HOST)
    try:
        res = run_suite(
            scenarios,
            progress=log.info,
            kernel=not args.sim_only,
            fault_around=args.sim_fault_around,
            fault_tolerance=args.fault_tolerance,
            kernel_reruns=args.kernel_reruns,
        )
    except (probe.HostUnavailable, probe.HostProbeError) as exc:
        raise CommandError(str(exc), EXIT_HOST) from None
    print(res.to_json() if args.json else res.to_table(args.all_regions))
    sys.stdout.flush()
    if res.all_match:
        return EXIT_OK
    return EXIT_HOST if res.noise and not res.mismatches else EXIT_MISMATCH
