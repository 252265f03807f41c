"""The experiment commands: ``fork-cost``, ``snapshot``, ``prefork``, ``zygote``, ``cowtest``.

Each prints a readable table on stdout (``--json``/``--csv`` for machines), draws its
figure with ``--plot FILE.png`` (needs matplotlib; the path and matplotlib are checked
before the run), and reports progress and log lines on stderr (a progress bar only when
stderr is a terminal; ``-q`` for none).  Defaults are read from the experiment
functions' signatures, so the command line and the API cannot drift apart.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, Optional

from ._common import (EXIT_OK, Deprecated, LazyChoices, add_command, check_output_path, choices_list, default_of,
                      deprecated, fraction, list_of, log, number, show_list, size)

__all__ = ["COMMANDS"]


def _fork_modes() -> Any:
    from ..experiments import FORK_MODES

    return FORK_MODES


def _concurrent_modes() -> LazyChoices:
    from ..experiments import concurrent_fork_modes

    return LazyChoices(concurrent_fork_modes)


def _add_outputs(parser: argparse.ArgumentParser, seed: bool = True) -> None:
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


def _fork_mode_option(parser: argparse.ArgumentParser, run: Callable[..., Any], help: str) -> LazyChoices:
    modes = _concurrent_modes()
    parser.add_argument("--fork-mode", choices=modes, metavar="MODE", default=default_of(run, "fork_mode"),
                        help=f"{help}: one whose parent runs on beside the child (%(choices)s)")
    return modes


def _run(args: argparse.Namespace, run: Callable[..., Any], wallclock: bool = True, **kwargs: Any) -> int:
    """Runs one experiment with the shared options and writes its output."""
    from ..experiments import pyplot

    if args.plot:
        check_output_path(args.plot, "--plot")
        pyplot()  # fail before the run when matplotlib is missing
    kwargs["cost_model"] = args.cost_model
    if "seed" in args:
        kwargs["seed"] = args.seed
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
        log.info("figure written to %s", path)
    return EXIT_OK


# -- fork-cost ------------------------------------------------------------------------------
_BARE = object()  # `--thp` without a value: the old boolean flag


class _Thp(argparse.Action):
    """``--thp off|split|copy-huge``; a bare ``--thp`` (the old flag) is "split", with a note."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        if values is _BARE:
            deprecated(namespace, f"{option_string} without a value is deprecated; use {option_string} split")
            values = "split"
        setattr(namespace, self.dest, values)


def _add_fork_cost(commands: Any) -> None:
    from ..experiments import THP_CHOICES, fork_cost

    parser = add_command(
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
    sizes = list_of(size, "sizes")
    parser.add_argument("--sizes", type=sizes, default=list(default_of(fork_cost, "sizes")),
                        help="resident sizes of the parent, comma separated")
    run = fork_cost
    modes = choices_list(_fork_modes(), "fork mode")
    parser.add_argument("--fork-modes", type=modes, default=default_of(run, "fork_modes"),
                        help=f"fork strategies, comma separated (default: all: {show_list(_fork_modes())})")
    parser.add_argument("--modes", dest="fork_modes", type=modes, action=Deprecated, use="--fork-modes")
    parser.add_argument("--write-fractions", type=list_of(fraction, "fractions"),
                        default=list(default_of(fork_cost, "write_fractions")),
                        help="fractions of the pages the child writes after the fork (0.1 or 10%%), comma separated")
    parser.add_argument(
        "--thp", choices=THP_CHOICES, nargs="?", const=_BARE, action=_Thp, default=default_of(fork_cost, "thp"),
        help="the parent's memory in 2 MiB transparent huge pages (fork shares one entry per 2 MiB); a "
        "child's write to a shared one splits it and copies 4 KiB (split) or copies 2 MiB (copy-huge)",
    )
    parser.add_argument(
        "--no-timing", action="store_true",
        help="leave out the host wall-clock column (the output then depends only on the arguments)",
    )
    _add_outputs(parser)


def _cmd_fork_cost(args: argparse.Namespace) -> int:
    from ..experiments import fork_cost

    return _run(
        args, fork_cost, wallclock=not args.no_timing,
        sizes=args.sizes, fork_modes=args.fork_modes, write_fractions=args.write_fractions, thp=args.thp,
    )


# -- snapshot --------------------------------------------------------------------------------
def _add_snapshot(commands: Any) -> None:
    from ..experiments import THP_CHOICES, snapshot, snapshot_sweep

    parser = add_command(
        commands,
        "snapshot",
        _cmd_snapshot,
        "a Redis-style BGSAVE: a forked child reads memory while the parent writes",
        "The parent holds a data set and forks; the child reads it sequentially in steps while "
        "the parent writes keys between steps (uniform, or Zipf-skewed). Prints, per step, both "
        "processes' Private_Dirty and Shared memory, the frames in use and the memory relative "
        "to the data set. --sweep runs the snapshot over write rates and skews instead.",
    )
    parser.add_argument("--dataset", type=size, default=default_of(snapshot, "dataset"), help="size of the data set")
    parser.add_argument("--steps", type=int, default=default_of(snapshot, "steps"),
                        help="chunks the child reads the data set in")
    parser.add_argument("--writes-per-step", type=int, default=default_of(snapshot, "writes_per_step"),
                        help="parent writes between two chunks")
    parser.add_argument("--skew", type=number, default=default_of(snapshot, "skew"),
                        help="key skew: 0 uniform, else the Zipf exponent")
    modes = _fork_mode_option(parser, snapshot, "fork strategy")
    parser.add_argument("--mode", dest="fork_mode", choices=modes, metavar="MODE", action=Deprecated,
                        use="--fork-mode")
    parser.add_argument(
        "--thp", choices=THP_CHOICES, default=default_of(snapshot, "thp"),
        help="transparent huge pages for the data set: off, split (a write to a shared huge page "
        "copies 4 KiB, Linux >= 5.8) or copy-huge (it copies 2 MiB, older kernels)",
    )
    parser.add_argument("--sweep", action="store_true", help="sweep write rates and skews (one summary row each)")
    parser.add_argument(
        "--rates", type=list_of(int, "write rates"), default=list(default_of(snapshot_sweep, "writes_per_step")),
        help="with --sweep: writes per step to try, comma separated",
    )
    parser.add_argument(
        "--skews", type=list_of(number, "skews"), default=list(default_of(snapshot_sweep, "skews")),
        help="with --sweep: skews to try, comma separated",
    )
    _add_outputs(parser)


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from ..experiments import snapshot, snapshot_sweep

    common: Dict[str, Any] = {"dataset": args.dataset, "steps": args.steps, "fork_mode": args.fork_mode,
                              "thp": args.thp}
    if args.sweep:
        return _run(args, snapshot_sweep, writes_per_step=args.rates, skews=args.skews, **common)
    return _run(args, snapshot, writes_per_step=args.writes_per_step, skew=args.skew, **common)


# -- prefork ----------------------------------------------------------------------------------
def _add_prefork(commands: Any) -> None:
    from ..experiments import PREFORK_MODES, prefork

    parser = add_command(
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

    def default(name: str) -> Any:
        return default_of(prefork, name)

    parser.add_argument("--objects", type=int, default=default("objects"), help="objects in the master's heap")
    parser.add_argument("--object-size", type=int, default=default("object_size"),
                        help="bytes per object (packed into pages)")
    parser.add_argument("--workers", type=int, default=default("workers"), help="worker processes")
    parser.add_argument("--requests", type=int, default=default("requests"), help="requests each worker serves")
    parser.add_argument("--objects-per-request", type=int, default=default("objects_per_request"),
                        help="objects each request touches")
    parser.add_argument("--gc-every", type=int, default=default("gc_every"),
                        help="requests between two full collections")
    parser.add_argument("--skew", type=number, default=default("skew"),
                        help="object popularity: 0 uniform, else the Zipf exponent")
    gc_modes = choices_list(PREFORK_MODES, "GC mode")
    parser.add_argument("--gc-modes", type=gc_modes, default=list(default("gc_modes")),
                        help="GC modes to compare, comma separated")
    parser.add_argument("--modes", dest="gc_modes", type=gc_modes, action=Deprecated, use="--gc-modes")
    parser.add_argument("--samples", type=int, default=default("samples"), help="sampling intervals")
    _fork_mode_option(parser, prefork, "fork strategy of the master")
    _add_outputs(parser)


def _cmd_prefork(args: argparse.Namespace) -> int:
    from ..experiments import prefork

    return _run(
        args, prefork, objects=args.objects, object_size=args.object_size, workers=args.workers,
        requests=args.requests, objects_per_request=args.objects_per_request, gc_every=args.gc_every,
        skew=args.skew, gc_modes=args.gc_modes, samples=args.samples, fork_mode=args.fork_mode,
    )


# -- zygote -----------------------------------------------------------------------------------
def _add_zygote(commands: Any) -> None:
    from ..experiments import zygote

    parser = add_command(
        commands,
        "zygote",
        _cmd_zygote,
        "Android's zygote: apps forked from a preloaded process, against apps that load alone",
        "A zygote preloads PRELOAD bytes and forks apps that each dirty a fraction of them; "
        "without a zygote each app loads its own copy. Prints the frames in use against the "
        "number of apps, both ways.",
    )
    parser.add_argument("--preload", type=size, default=default_of(zygote, "preload"),
                        help="bytes the zygote preloads")
    parser.add_argument("--apps", type=int, default=default_of(zygote, "apps"), help="apps to start")
    parser.add_argument("--dirty-fraction", type=fraction, default=default_of(zygote, "dirty_fraction"),
                        help="fraction each app writes")
    _fork_mode_option(parser, zygote, "fork strategy of the zygote")
    _add_outputs(parser)


def _cmd_zygote(args: argparse.Namespace) -> int:
    from ..experiments import zygote

    return _run(
        args, zygote, preload=args.preload, apps=args.apps, dirty_fraction=args.dirty_fraction,
        fork_mode=args.fork_mode,
    )


# -- cowtest ----------------------------------------------------------------------------------
def _add_cowtest(commands: Any) -> None:
    from ..experiments import cowtest

    parser = add_command(
        commands,
        "cowtest",
        _cmd_cowtest,
        "the teaching kernels' copy-on-write test (xv6 cowtest) under each fork strategy",
        "xv6's tests in data mode: 'simple' (fork a process holding two thirds of memory), "
        "'three' (three processes write one region; contents verified) and 'forkloop' "
        "(repeated fork/fork/exit). Passes under cow; shows at which step eager runs out of "
        "memory. Exit status 0 either way (the table says what failed).",
    )
    parser.add_argument("--memory", type=size, default=default_of(cowtest, "memory"),
                        help="the machine's physical memory")
    run = cowtest
    modes = choices_list(_fork_modes(), "fork mode")
    parser.add_argument("--fork-modes", type=modes, default=default_of(run, "fork_modes"),
                        help=f"fork strategies, comma separated (default: all: {show_list(_fork_modes())})")
    parser.add_argument("--modes", dest="fork_modes", type=modes, action=Deprecated, use="--fork-modes")
    parser.add_argument("--rounds", type=int, default=default_of(cowtest, "rounds"),
                        help="fork/fork/exit rounds of forkloop")
    _add_outputs(parser, seed=False)


def _cmd_cowtest(args: argparse.Namespace) -> int:
    from ..experiments import cowtest

    return _run(args, cowtest, memory=args.memory, fork_modes=args.fork_modes, rounds=args.rounds)


#: The ``add`` functions of this module's commands, in the order ``cowsim --help`` lists them.
COMMANDS = (_add_fork_cost, _add_snapshot, _add_prefork, _add_zygote, _add_cowtest)
