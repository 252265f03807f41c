"""``cowsim demo`` (fork() and copy-on-write step by step) and ``cowsim version``."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..experiments import demo as _demo
from ..experiments.demo import run_demo as _DEMO  # its signature gives the defaults
from ._common import EXIT_OK, PROG, add_command, default_of

__all__ = ["COMMANDS"]


def _add_demo(commands: Any) -> None:
    parser = add_command(
        commands,
        "demo",
        _cmd_demo,
        "walk through fork() and copy-on-write step by step",
        "Process A writes two pages and forks B; B writes page 0 (copy), A writes page 0 "
        "(reuse), B exits. After each step: both page tables, the frames in use and the "
        "fault counters, all read from the simulator.",
    )
    parser.add_argument(
        "--page-size", type=int, choices=(4096, 16384, 65536), default=default_of(_DEMO, "page_size"), help="page size in bytes"
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
    _demo.run_demo(sys.stdout, page_size=args.page_size, store_data=not args.metadata, ascii=args.ascii or None)
    return EXIT_OK


def _add_version(commands: Any) -> None:
    add_command(commands, "version", _cmd_version, "print cowsim's version (also: cowsim --version)")


def version_line() -> str:
    from .. import __version__

    return f"{PROG} {__version__}"


def _cmd_version(args: argparse.Namespace) -> int:
    print(version_line())
    return EXIT_OK


COMMANDS = (_add_demo, _add_version)
