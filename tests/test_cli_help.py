"""Help texts and global flags: every option explains itself, defaults are shown, no RST
markup leaks into ``--help``, and ``--debug`` / ``--quiet`` / ``--verbose`` work on either side
of the subcommand."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from orbench_harness.cli import GLOBAL_FLAGS, build_parser
from orbench_harness.cli.helpfmt import walk

PARSERS = walk(build_parser())


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbench_harness.cli", *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[" ".join(p) for p, _ in PARSERS])
def test_every_option_and_argument_has_help(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    missing = [a.option_strings[0] if a.option_strings else a.dest for a in parser._actions
               if not isinstance(a, argparse._HelpAction | argparse._VersionAction) and not a.help]
    assert not missing, f"{' '.join(path)}: options without help: {missing}"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[" ".join(p) for p, _ in PARSERS])
def test_no_help_text_shows_literal_double_backticks(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    assert "``" not in parser.format_help(), " ".join(path)


def test_run_help_shows_the_defaults_a_bare_run_uses() -> None:
    run = dict((p[-1], parser) for p, parser in PARSERS if len(p) == 2)["run"]
    formatter = run._get_formatter()
    for action in run._actions:
        if (action.option_strings and isinstance(action.default, str | int) and not isinstance(action.default, bool)
                and action.default != argparse.SUPPRESS):
            shown = formatter._expand_help(action)
            assert "default" in shown and str(action.default) in shown, (action.dest, shown)
    assert "default: the demo suite" in " ".join(run.format_help().split())


def test_every_subcommand_accepts_the_global_flags() -> None:
    for path, parser in PARSERS[1:]:
        taken = {s for a in parser._actions for s in a.option_strings}
        assert {flag for flag, _, _ in GLOBAL_FLAGS} <= taken, " ".join(path)


def test_debug_after_the_subcommand_shows_the_traceback() -> None:
    plain = _harness("run", "--method", "no-such-method", "--judge", "strmatch")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "no-such-method" in plain.stderr
    for args in (("run", "--method", "no-such-method", "--judge", "strmatch", "--debug"),
                 ("--debug", "run", "--method", "no-such-method", "--judge", "strmatch")):
        loud = _harness(*args)
        assert loud.returncode != 0 and "Traceback" in loud.stderr, args


def test_quiet_and_verbose_after_the_subcommand() -> None:
    assert _harness("list", "methods", "--quiet").returncode == 0
    assert _harness("list", "methods", "--verbose").returncode == 0
    both = _harness("list", "methods", "--quiet", "--verbose")
    assert both.returncode == 2 and "--quiet" in both.stderr
    # a flag before the subcommand is not overwritten by the subcommand's own default
    assert build_parser().parse_args(["--quiet", "list", "methods"]).global_quiet is True
    assert build_parser().parse_args(["list", "methods"]).global_quiet is False
