"""``cowsim calibrate``: time the host kernel with the probe and write a cost profile.

Exit status: 0 done; 2 the output file cannot be written (checked before measuring);
3 the host side is unavailable or the probe failed.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import CowsimError
from ._common import EXIT_HOST, EXIT_OK, CommandError, add_command, check_output_path, log

__all__ = ["add_calibrate_parser"]


def add_calibrate_parser(commands: Any) -> argparse.ArgumentParser:
    """Registers ``calibrate`` on an argparse subparsers object; the parser's ``func``
    default runs it and returns the exit status (see the module docstring)."""
    p = add_command(
        commands,
        "calibrate",
        _cmd_calibrate,
        "measure this host's kernel and write a cost-model profile",
        "Times faults, fork, munmap and page copies on the host kernel with the C probe and "
        "fits cowsim's cost model.  The profile (JSON) goes to stdout, and to --output.",
    )
    p.add_argument("--output", "-o", metavar="FILE", help="also write the profile to FILE")
    p.add_argument("--quick", action="store_true", help="small sizes, fewer repetitions (about 1 s, noisier)")
    return p


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from ..host import calibrate

    check_output_path(args.output, "--output")
    try:
        cal = calibrate(quick=args.quick, progress=log.info)
    except CowsimError as exc:  # HostUnavailable, HostProbeError, a malformed probe output
        raise CommandError(str(exc), EXIT_HOST) from None
    if args.output:
        try:
            cal.save(args.output)
        except OSError as exc:
            raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        log.info("calibrate: profile written to %s", args.output)
    print(json.dumps(cal.to_profile(), indent=2))
    return EXIT_OK
