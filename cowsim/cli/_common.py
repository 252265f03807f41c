"""What every command shares: exit statuses, the one log prefix, argument types,
output-path checks, deprecated flags and defaults read from the functions' signatures."""
from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence

from ..errors import CowsimError

PROG = "cowsim"

#: Exit statuses of every command (docs/API.md, "Command line").
EXIT_OK = 0  # done; validate: everything compared matches
EXIT_MISMATCH = 1  # validate: cowsim, the kernel or a prediction disagree
EXIT_ERROR = 2  # a usage error (argparse's own status) or an error raised by the simulator
EXIT_HOST = 3  # the host side is unavailable, failed, or gave no settled answer (kernel noise)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as a shell reports it

#: Every line a command writes on stderr goes through this logger ("cowsim: ..."); the
#: experiments log on its child ``cowsim.experiments``.
log = logging.getLogger("cowsim")



class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except None (the help text says what it means)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:
            return action.help or ""
        return super()._get_help_string(action) or ""


class CommandError(CowsimError):
    """A command failed: the message goes to stderr as one line, ``status`` is the exit status."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


def add_command(
    commands: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    summary: str,
    description: Optional[str] = None,
) -> argparse.ArgumentParser:
    """A subcommand's parser, with ``-q/--quiet`` (every command has it)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description or summary, formatter_class=Formatter
    )
    parser.set_defaults(func=command(func))
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress or log lines on stderr (errors are still reported)")
    return parser


def command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Runs a command the same way for every command: log lines on stderr as ``cowsim: ...``
    (none with ``-q``, but the deprecation notes of old spellings), one line
    ``cowsim: error: ...`` and the command's status for a failure, 130 for Ctrl-C."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        quiet = bool(getattr(args, "quiet", False))
        with stderr_log(quiet):
            for note in getattr(args, "deprecations", []):
                log.warning("warning: %s", note)
            try:
                return func(args)
            except CommandError as exc:
                return error(str(exc), exc.status)
            except CowsimError as exc:
                return error(str(exc) or type(exc).__name__, EXIT_ERROR)
            except KeyboardInterrupt:
                print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
                return EXIT_INTERRUPTED

    return run


def error(message: str, status: int) -> int:
    """Prints ``cowsim: error: MESSAGE`` as one line on stderr and returns ``status``."""
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return status


@contextlib.contextmanager
def stderr_log(quiet: bool) -> Iterator[None]:
    """Sends the ``cowsim`` loggers' lines to the current stderr, prefixed ``cowsim: ``
    (INFO and up; with ``quiet`` only ERROR and up)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.ERROR if quiet else logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = old_propagate


# -- defaults from the signatures -------------------------------------------------------
def default_of(func: Callable[..., Any], name: str) -> Any:
    """The default of ``func``'s parameter ``name`` (``inspect.signature`` follows wrappers).

    >>> from cowsim.experiments import fork_cost
    >>> default_of(fork_cost, "sizes")
    ('64MiB', '256MiB', '1GiB', '4GiB')
    """
    parameter = inspect.signature(func).parameters[name]
    if parameter.default is inspect.Parameter.empty:
        raise TypeError(f"{func.__name__}() has no default for {name}")
    return parameter.default


def show_list(values: Sequence[Any]) -> str:
    """A list default as the command line spells it: ``0,0.5,1``."""
    return ",".join(format(v, "g") if isinstance(v, float) else str(v) for v in values)


# -- argument types ----------------------------------------------------------------------
def size(text: str) -> int:
    from ..units import parse_size

    try:
        return parse_size(text.strip())
    except CowsimError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fraction(text: str) -> float:
    value = text.strip()
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {text!r} (e.g. 0.1 or 10%)") from None
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"fraction {text!r} is outside [0, 1]")
    return number


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def list_of(item: Callable[[str], Any], name: str) -> Callable[[str], List[Any]]:
    def parse(text: str) -> List[Any]:
        parts = [part for part in text.split(",") if part.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"empty list of {name}")
        return [item(part) for part in parts]

    parse.__name__ = f"list of {name}"
    return parse


def choices_list(allowed: Sequence[str], name: str) -> Callable[[str], List[str]]:
    def item(text: str) -> str:
        value = text.strip()
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {name} {value!r}; choose from {', '.join(allowed)}")
        return value

    return list_of(item, name)


class LazyChoices(Sequence[str]):
    """Choices computed on first use (when a value is checked or help is shown), so that
    building the parser runs nothing (e.g. ``concurrent_fork_modes`` tries each strategy)."""

    def __init__(self, compute: Callable[[], Sequence[str]]) -> None:
        self._compute = compute
        self._values: Optional[Sequence[str]] = None

    def _get(self) -> Sequence[str]:
        if self._values is None:
            self._values = tuple(self._compute())
        return self._values

    def __getitem__(self, index: Any) -> Any:
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __contains__(self, value: object) -> bool:
        return value in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    @property
    def computed(self) -> bool:
        return self._values is not None


# -- deprecated spellings ------------------------------------------------------------------
class Deprecated(argparse.Action):
    """An old option spelling, accepted for one release: stores into the new option's
    ``dest`` and leaves a note that ``main`` prints on stderr (unless ``-q``)."""

    def __init__(self, option_strings: List[str], dest: str, use: str = "", convert: Any = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("help", argparse.SUPPRESS)
        kwargs["default"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.use = use
        self.convert = convert

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        if self.convert is not None:
            values = self.convert(values)
        setattr(namespace, self.dest, values)
        deprecated(namespace, f"{option_string} is deprecated; use {self.use}")


def deprecated(namespace: argparse.Namespace, note: str) -> None:
    notes = list(getattr(namespace, "deprecations", []))
    if note not in notes:
        notes.append(note)
    namespace.deprecations = notes


# -- output paths ------------------------------------------------------------------------------
def check_output_path(path: Optional[str], option: str) -> None:
    """Fails fast (before a long run) when ``path`` cannot be written: its directory is
    missing or not writable, or it names a directory.

    Raises:
        CommandError: exit status 2, naming the option and the path.
    """
    if path is None:
        return
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise CommandError(f"{option} {path}: is a directory")
    if not parent.is_dir():
        raise CommandError(f"{option} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CommandError(f"{option} {path}: permission denied")
