"""``harness``: argparse root with one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)``, which registers its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code. Plugins add
subcommands through ``orbench_register_commands``, called here explicitly (never at import).
User errors (``HarnessError``) print one line and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import signal
import sqlite3
import sys
import threading
import warnings
from collections.abc import Callable, Sequence

from orbench_harness import __version__
from orbench_harness.cache import is_disk_error
from orbench_harness.cli.helpfmt import use_everywhere, walk
from orbench_harness.console import NORMAL, QUIET, VERBOSE, error, set_verbosity
from orbench_harness.errors import HarnessError
from orbench_harness.plugins import get_plugin_manager

COMMANDS: tuple[str, ...] = (
    "orbench_harness.cli.run",
    "orbench_harness.cli.listing",
    "orbench_harness.cli.describe",
    "orbench_harness.cli.sweep",
    "orbench_harness.cli.grid",
    "orbench_harness.cli.export",
    "orbench_harness.cli.report",
    "orbench_harness.cli.compare",
    "orbench_harness.cli.align",
    "orbench_harness.cli.soup",
    "orbench_harness.cli.profile",
    "orbench_harness.cli.judge_eval",
    "orbench_harness.cli.serve",
    "orbench_harness.cli.new",
    "orbench_harness.cli.status",
    "orbench_harness.cli.doctor",
    "orbench_harness.cli.data",
)


# Deprecation notices one library raises about another's internals, printed on every load of a
# LoRA model (peft reading transformers 5's renamed `is_gradient_checkpointing`): nothing a
# user can act on, and noise in every log. ``--debug`` shows them.
THIRD_PARTY_NOISE: tuple[tuple[str, type[Warning]], ...] = (
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning),
)


def quiet_third_party_warnings() -> None:
    """Ignore the ``THIRD_PARTY_NOISE`` warnings for the rest of the process."""
    for message, category in THIRD_PARTY_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)


def build_parser(*, with_plugins: bool = True) -> argparse.ArgumentParser:
    """The full parser, built-in subcommands plus those plugins add."""
    parser = argparse.ArgumentParser(
        prog="harness", description="Evaluate over-refusal methods on shared benchmarks and judges."
    )
    parser.add_argument("--version", action="version", version=f"harness (orbench-harness) {__version__}")
    add_global_flags(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="run `harness COMMAND --help` for its options")
    sub.required = True
    for modname in COMMANDS:
        importlib.import_module(modname).add_parser(sub)
    if with_plugins:
        get_plugin_manager().hook.orbench_register_commands(subparsers=sub)
    for _, command in walk(parser)[1:]:  # every subcommand, nested ones (data fetch) included
        add_global_flags(command, default=argparse.SUPPRESS)
    use_everywhere(parser)
    return parser


# (flag, dest, help): the flags every subcommand accepts too, so `harness run ... --debug`
# works as well as `harness --debug run ...`. Their dests are their own (`serve --verbose`
# keeps its meaning, and a subcommand flag of the same name is left alone).
GLOBAL_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--debug", "debug", "show tracebacks for user errors, and third-party warnings"),
    ("--quiet", "global_quiet", "print only errors, warnings and results: no info or progress lines"),
    ("--verbose", "global_verbose", "also print debug lines (the cache path, the hub check, ...)"),
)


def add_global_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    """Add ``GLOBAL_FLAGS`` to ``parser``; a subcommand's copies default to ``SUPPRESS`` so
    that they never overwrite what the same flag before the subcommand set."""
    taken = {s for a in parser._actions for s in a.option_strings}
    for flag, dest, text in GLOBAL_FLAGS:
        if flag not in taken:
            parser.add_argument(flag, dest=dest, action="store_true", default=default, help=text)


def apply_verbosity(args: argparse.Namespace) -> None:
    """Set the console's level from ``--quiet`` / ``--verbose`` (both at once is an error)."""
    quiet, verbose = getattr(args, "global_quiet", False), getattr(args, "global_verbose", False)
    if quiet and verbose:
        raise HarnessError("--quiet and --verbose contradict each other; pass one")
    set_verbosity(QUIET if quiet else VERBOSE if verbose else NORMAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harness`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    if not debug:
        quiet_third_party_warnings()
    previous = _stop_on_sigterm()
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        apply_verbosity(args)
        code: int = args.func(args)
        return code
    except HarnessError as e:
        if debug:
            raise
        error(str(e))
        return e.exit_code
    except KeyboardInterrupt as e:
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        error(f"{how}; everything finished so far is saved, re-run the same command to resume")
        return 128 + signal.SIGTERM if isinstance(e, Terminated) else 130
    except (OSError, sqlite3.OperationalError) as e:
        full = disk_full(e)
        if full is None or debug:
            raise
        error(full)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, as a cluster scheduler sends before it kills a job, handled like Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def _stop_on_sigterm() -> signal.Handlers | Callable[..., object] | int | None:
    """Make SIGTERM unwind like Ctrl-C (cleanup runs, the resume message is printed, exit 143);
    returns the handler to restore. Records are already on disk after every batch, so this
    changes the exit, not what survives. Only the main thread may set a handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    return signal.SIG_DFL if previous is None else previous  # None: set outside Python


def disk_full(e: BaseException) -> str | None:
    """The one-line message for a full disk (or quota), or None for any other error.

    A long run that fills its disk should say so and how to go on, not end in a traceback:
    what was written before is kept (a line cut off mid-write is recomputed on resume), and
    the cache holds every finished answer, so freeing space and re-running loses nothing.
    """
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on the device" + (f" writing {e.filename}" if e.filename else "")
    elif isinstance(e, sqlite3.OperationalError) and is_disk_error(e):
        what = f"the cache could not be written ({e}; a full disk gives this)"
    else:
        return None
    return (f"{what}; free some space (or pass another --out / ORBENCH_CACHE_DIR) and re-run the "
            "same command to resume: finished work is saved")
