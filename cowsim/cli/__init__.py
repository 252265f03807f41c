"""The ``cowsim`` command line: every argparse line of the package lives in this wing.

- :mod:`.experiments` — ``fork-cost``, ``snapshot``, ``prefork``, ``zygote``, ``cowtest``;
- :mod:`.validate` — ``validate`` (the host kernel against cowsim);
- :mod:`.calibrate` — ``calibrate`` (a cost profile of this host);
- :mod:`.demo` — ``demo`` (:mod:`cowsim.experiments.demo`) and ``version``;
- :mod:`._common` — what they share: exit statuses, the log, argument types.

Each command is a pair ``_add_NAME(commands)`` (its parser) and ``_cmd_NAME(args) -> int``;
to add one, write the pair in the module of its group and list the ``_add_`` function in
that module's ``COMMANDS``.

Every command takes ``-q/--quiet`` (no progress or log lines on stderr; errors are still
reported); every line on stderr starts with ``cowsim:``.  Exit status:

====  ===================================================================================
0     success (``validate``: every compared value matches)
1     ``validate``: a mismatch between cowsim, the kernel or a prediction
2     a usage error, a bad option value or input file, or an error raised by the simulator
3     the host side is unavailable or failed, or gave no settled answer (kernel noise)
130   interrupted (Ctrl-C), without a traceback
====  ===================================================================================
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import calibrate, demo, experiments, validate
from ._common import EXIT_ERROR, EXIT_HOST, EXIT_INTERRUPTED, EXIT_MISMATCH, EXIT_OK, PROG, Formatter

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_MISMATCH", "EXIT_ERROR", "EXIT_HOST", "EXIT_INTERRUPTED"]

_COMMANDS = (
    *experiments.COMMANDS,
    validate.add_validate_parser,
    calibrate.add_calibrate_parser,
    *demo.COMMANDS,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand (building it runs no simulation)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="cowsim: a simulator of Linux virtual memory, fork() and copy-on-write.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options. Exit status: 0 ok, 1 a validation "
        "mismatch, 2 a usage or simulator error, 3 the host side unavailable, 130 interrupted.",
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=demo.version_line())
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line and returns the exit status (never calls ``sys.exit``).

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 ok, 1 a validation mismatch, 2 a usage or simulator
        error, 3 the host side unavailable, 130 interrupted (see the module docstring).
    """
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(None if argv is None else list(argv))
        except SystemExit as exc:  # --help, --version (0) and usage errors (2)
            return exc.code if isinstance(exc.code, int) else EXIT_ERROR
        try:
            status: int = args.func(args)
        except BrokenPipeError:  # e.g. `cowsim demo | head`: the reader left, nothing to report
            _silence_stdout()
            return EXIT_OK
        return status
    except KeyboardInterrupt:  # outside a command (the commands handle their own)
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at devnull so that flush cannot fail.
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
