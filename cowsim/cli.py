"""The ``cowsim`` command line: ``cowsim demo``, ``cowsim version``.

Each subcommand is a pair of functions: ``_add_NAME(commands)`` declares its
parser and ``_cmd_NAME(args) -> int`` runs it.  To add one, write the pair and
list the ``_add_`` function in ``_COMMANDS``.

Exit status: 0 on success, 2 for a usage error or an error raised by the
simulator (``CowsimError``, printed as one line on stderr).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from .calibrate import add_calibrate_parser
from .errors import CowsimError
from .validate import add_validate_parser

__all__ = ["main", "build_parser"]

PROG = "cowsim"
EXIT_OK = 0
EXIT_ERROR = 2  # argparse's own status for usage errors

_Formatter = argparse.ArgumentDefaultsHelpFormatter


def _add_command(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    name: str,
    func: Callable[[argparse.Namespace], int],
    summary: str,
    description: Optional[str] = None,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=description or summary, formatter_class=_Formatter
    )
    parser.set_defaults(func=func)
    return parser


# -- demo ---------------------------------------------------------------------------
def _add_demo(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = _add_command(
        commands,
        "demo",
        _cmd_demo,
        "walk through fork() and copy-on-write step by step",
        "Process A writes two pages and forks B; B writes page 0 (copy), A writes page 0 "
        "(reuse), B exits. After each step: both page tables, the frames in use and the "
        "fault counters, all read from the simulator.",
    )
    parser.add_argument(
        "--page-size", type=int, choices=(4096, 16384, 65536), default=4096, help="page size in bytes"
    )
    parser.add_argument(
        "--metadata",
        action="store_true",
        help="metadata mode (store_data=False): frames keep no bytes, so no data column",
    )
    parser.add_argument(
        "--ascii",
        action="store_true",
        help="print yes/no and plain rules instead of check marks and box lines (chosen anyway when stdout cannot encode them)",
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(sys.stdout, page_size=args.page_size, store_data=not args.metadata, ascii=args.ascii or None)
    return EXIT_OK


# -- version ------------------------------------------------------------------------
def _add_version(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    _add_command(commands, "version", _cmd_version, "print cowsim's version")


def _cmd_version(args: argparse.Namespace) -> int:
    from . import __version__

    print(f"{PROG} {__version__}")
    return EXIT_OK


_COMMANDS = (_add_demo, _add_version, add_validate_parser, add_calibrate_parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="cowsim: a simulator of Linux virtual memory, fork() and copy-on-write.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options.",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line and returns the exit status (never calls ``sys.exit``).

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success; 2 for a usage error or a ``CowsimError``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        status: int = args.func(args)
    except CowsimError as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `cowsim demo | head`: the reader left, nothing to report
        _silence_stdout()
        return EXIT_OK
    return status


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at devnull so that flush cannot fail.
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass

