"""The ``cowsim`` command line: the experiments (``fork-cost``, ``snapshot``,
``prefork``, ``zygote``, ``cowtest``), ``demo`` and ``version``.

Each subcommand is a pair of functions: ``_add_NAME(commands)`` declares its
parser and ``_cmd_NAME(args) -> int`` runs it.  To add one, write the pair and
list the ``_add_`` function in ``_COMMANDS``.

The experiments print a readable table on stdout (``--json``/``--csv`` for
machines), draw a figure with ``--plot FILE.png`` (needs matplotlib), and
report progress and log lines on stderr (a progress bar only when stderr is a
terminal; ``--quiet`` for none).

Exit status: 0 on success, 2 for a usage error or an error raised by the
simulator (``CowsimError``, printed as one line on stderr).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

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


# -- shared by the experiments --------------------------------------------------------
def _size(text: str) -> int:
    from .units import parse_size

    try:
        return parse_size(text.strip())
    except CowsimError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    value = text.strip()
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {text!r} (e.g. 0.1 or 10%)") from None
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"fraction {text!r} is outside [0, 1]")
    return number


def _list_of(item: Callable[[str], Any], name: str) -> Callable[[str], List[Any]]:
    def parse(text: str) -> List[Any]:
        parts = [part for part in text.split(",") if part.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"empty list of {name}")
        return [item(part) for part in parts]

    parse.__name__ = f"list of {name}"
    return parse


def _choices(allowed: Sequence[str], name: str) -> Callable[[str], List[str]]:
    def item(text: str) -> str:
        value = text.strip()
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {name} {value!r}; choose from {', '.join(allowed)}")
        return value

    return _list_of(item, name)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _add_experiment_options(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    parser.add_argument(
        "--cost-model",
        metavar="FILE",
        help="JSON cost profile (as `cowsim calibrate` writes, or a dict of prices) for the modelled times; "
        "default: the built-in calibrated prices",
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the full result as JSON instead of tables")
    out.add_argument("--csv", action="store_true", help="print the main table as CSV instead of tables")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the figure into FILE (needs matplotlib)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or log lines on stderr")


@contextlib.contextmanager
def _stderr_log(quiet: bool) -> Iterator[None]:
    logger = logging.getLogger("cowsim.experiments")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def _run_experiment(args: argparse.Namespace, run: Callable[..., Any], wallclock: bool = True, **kwargs: Any) -> int:
    """Runs one experiment with the shared options and writes its output."""
    from .experiments._common import pyplot

    if args.plot:
        pyplot()  # fail before the run when matplotlib is missing
    kwargs["cost_model"] = args.cost_model
    if "seed" in args:
        kwargs["seed"] = args.seed
    with _stderr_log(args.quiet):
        result = run(progress=not args.quiet, **kwargs)
        if args.json:
            sys.stdout.write(result.to_json(wallclock=wallclock))
        elif args.csv:
            sys.stdout.write(result.to_csv(wallclock=wallclock))
        else:
            sys.stdout.write(result.to_table(wallclock=wallclock))
        sys.stdout.flush()
        if args.plot:
            path = result.plot(args.plot)
            logging.getLogger("cowsim.experiments").info("figure written to %s", path)
    return EXIT_OK


# -- fork-cost ------------------------------------------------------------------------
def _add_fork_cost(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .experiments import FORK_MODES

    parser = _add_command(
        commands,
        "fork-cost",
        _cmd_fork_cost,
        "the main job: what fork() costs, by resident size, strategy and child writes",
        "A parent with every page of SIZE resident forks; the child writes a fraction of the pages "
        "(chosen by the seed) and exits. For each size, fork strategy and write fraction: the "
        "simulator's wall time of the fork, the modelled kernel fork latency (cost model), frames "
        "taken at fork, page-table frames, pages copied afterwards, peak frames, and the memory "
        "saved against an eager copy.",
    )
    parser.add_argument(
        "--sizes", type=_list_of(_size, "sizes"), default="64MiB,256MiB,1GiB,4GiB",
        help="resident sizes of the parent, comma separated",
    )
    parser.add_argument(
        "--modes", type=_choices(FORK_MODES, "fork mode"), default=",".join(FORK_MODES),
        help="fork strategies, comma separated",
    )
    parser.add_argument(
        "--write-fractions", type=_list_of(_fraction, "fractions"), default="0,1%,10%,50%,100%",
        help="fractions of the pages the child writes after the fork (0.1 or 10%%), comma separated",
    )
    parser.add_argument(
        "--thp", action="store_true",
        help="the parent's memory in 2 MiB transparent huge pages (fork shares one entry per 2 MiB)",
    )
    parser.add_argument(
        "--no-timing", action="store_true",
        help="leave out the host wall-clock column (the output then depends only on the arguments)",
    )
    _add_experiment_options(parser)


def _cmd_fork_cost(args: argparse.Namespace) -> int:
    from .experiments import fork_cost

    return _run_experiment(
        args, fork_cost, wallclock=not args.no_timing,
        sizes=args.sizes, modes=args.modes, write_fractions=args.write_fractions, thp=args.thp,
    )


# -- snapshot -------------------------------------------------------------------------
def _add_snapshot(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .experiments import concurrent_fork_modes

    parser = _add_command(
        commands,
        "snapshot",
        _cmd_snapshot,
        "a Redis-style BGSAVE: a forked child reads memory while the parent writes",
        "The parent holds a data set and forks; the child reads it sequentially in steps while "
        "the parent writes keys between steps (uniform, or Zipf-skewed). Prints, per step, both "
        "processes' Private_Dirty and Shared memory, the frames in use and the memory relative "
        "to the data set. --sweep runs the snapshot over write rates and skews instead.",
    )
    parser.add_argument("--dataset", type=_size, default="1GiB", help="size of the data set")
    parser.add_argument("--steps", type=int, default=32, help="chunks the child reads the data set in")
    parser.add_argument("--writes-per-step", type=int, default=8192, help="parent writes between two chunks")
    parser.add_argument("--skew", type=_number, default=0.0, help="key skew: 0 uniform, else the Zipf exponent")
    parser.add_argument("--mode", choices=concurrent_fork_modes(), default="cow", help="fork strategy")
    parser.add_argument(
        "--thp", choices=("off", "split", "copy-huge"), default="off",
        help="transparent huge pages for the data set: off, split (a write to a shared huge page "
        "copies 4 KiB, Linux >= 5.8) or copy-huge (it copies 2 MiB, older kernels)",
    )
    parser.add_argument("--sweep", action="store_true", help="sweep write rates and skews (one summary row each)")
    parser.add_argument(
        "--rates", type=_list_of(int, "write rates"), default="0,256,1024,4096,16384",
        help="with --sweep: writes per step to try, comma separated",
    )
    parser.add_argument(
        "--skews", type=_list_of(_number, "skews"), default="0,0.8,1.2",
        help="with --sweep: skews to try, comma separated",
    )
    _add_experiment_options(parser)


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from .experiments import snapshot, snapshot_sweep

    common: Dict[str, Any] = {"dataset": args.dataset, "steps": args.steps, "mode": args.mode, "thp": args.thp}
    if args.sweep:
        return _run_experiment(args, snapshot_sweep, writes_per_step=args.rates, skews=args.skews, **common)
    return _run_experiment(args, snapshot, writes_per_step=args.writes_per_step, skew=args.skew, **common)


# -- prefork --------------------------------------------------------------------------
def _add_prefork(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .experiments import PREFORK_MODES, concurrent_fork_modes

    parser = _add_command(
        commands,
        "prefork",
        _cmd_prefork,
        "a pre-forking server (gunicorn --preload) with CPython refcounts and GC",
        "A master builds a heap of objects and forks workers; each request touches objects, and "
        "CPython's refcounts turn each read into a write of the object's page. GC modes: 'gc' "
        "(a full collection every --gc-every requests writes every object's header), 'nogc' "
        "(gc.disable()), 'freeze' (gc.freeze() before the fork). Prints shared and private "
        "memory per worker (smaps) over time.",
    )
    parser.add_argument("--objects", type=int, default=1_000_000, help="objects in the master's heap")
    parser.add_argument("--object-size", type=int, default=64, help="bytes per object (packed into pages)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--requests", type=int, default=5000, help="requests each worker serves")
    parser.add_argument("--objects-per-request", type=int, default=20, help="objects each request touches")
    parser.add_argument("--gc-every", type=int, default=1000, help="requests between two full collections")
    parser.add_argument("--skew", type=_number, default=1.2, help="object popularity: 0 uniform, else the Zipf exponent")
    parser.add_argument(
        "--modes", type=_choices(PREFORK_MODES, "GC mode"), default=",".join(PREFORK_MODES),
        help="GC modes to compare, comma separated",
    )
    parser.add_argument("--samples", type=int, default=10, help="sampling intervals")
    parser.add_argument(
        "--fork-mode", choices=concurrent_fork_modes(), default="cow", help="fork strategy of the master"
    )
    _add_experiment_options(parser)


def _cmd_prefork(args: argparse.Namespace) -> int:
    from .experiments import prefork

    return _run_experiment(
        args, prefork, objects=args.objects, object_size=args.object_size, workers=args.workers,
        requests=args.requests, objects_per_request=args.objects_per_request, gc_every=args.gc_every,
        skew=args.skew, modes=args.modes, samples=args.samples, fork_mode=args.fork_mode,
    )


# -- zygote ---------------------------------------------------------------------------
def _add_zygote(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .experiments import concurrent_fork_modes

    parser = _add_command(
        commands,
        "zygote",
        _cmd_zygote,
        "Android's zygote: apps forked from a preloaded process, against apps that load alone",
        "A zygote preloads PRELOAD bytes and forks apps that each dirty a fraction of them; "
        "without a zygote each app loads its own copy. Prints the frames in use against the "
        "number of apps, both ways.",
    )
    parser.add_argument("--preload", type=_size, default="128MiB", help="bytes the zygote preloads")
    parser.add_argument("--apps", type=int, default=16, help="apps to start")
    parser.add_argument("--dirty-fraction", type=_fraction, default="10%", help="fraction each app writes")
    parser.add_argument(
        "--fork-mode", choices=concurrent_fork_modes(), default="cow", help="fork strategy of the zygote"
    )
    _add_experiment_options(parser)


def _cmd_zygote(args: argparse.Namespace) -> int:
    from .experiments import zygote

    return _run_experiment(
        args, zygote, preload=args.preload, apps=args.apps, dirty_fraction=args.dirty_fraction,
        fork_mode=args.fork_mode,
    )


# -- cowtest --------------------------------------------------------------------------
def _add_cowtest(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .experiments import FORK_MODES

    parser = _add_command(
        commands,
        "cowtest",
        _cmd_cowtest,
        "the teaching kernels' copy-on-write test (xv6 cowtest) under each fork strategy",
        "xv6's tests in data mode: 'simple' (fork a process holding two thirds of memory), "
        "'three' (three processes write one region; contents verified) and 'forkloop' "
        "(repeated fork/fork/exit). Passes under cow; shows at which step eager runs out of "
        "memory. Exit status 0 either way (the table says what failed).",
    )
    parser.add_argument("--memory", type=_size, default="32MiB", help="the machine's physical memory")
    parser.add_argument(
        "--modes", type=_choices(FORK_MODES, "fork mode"), default=",".join(FORK_MODES),
        help="fork strategies, comma separated",
    )
    parser.add_argument("--rounds", type=int, default=10, help="fork/fork/exit rounds of forkloop")
    _add_experiment_options(parser, seed=False)


def _cmd_cowtest(args: argparse.Namespace) -> int:
    from .experiments import cowtest

    return _run_experiment(args, cowtest, memory=args.memory, modes=args.modes, rounds=args.rounds)


_COMMANDS = (
    _add_fork_cost,
    _add_snapshot,
    _add_prefork,
    _add_zygote,
    _add_cowtest,
    add_validate_parser,
    add_calibrate_parser,
    _add_demo,
    _add_version,
)


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

