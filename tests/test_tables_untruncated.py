"""Tables printed to a pipe or file are never cut: every name appears in full, and every
table command has ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from orbench_harness.cli import build_parser
from orbench_harness.cli.helpfmt import walk
from orbench_harness.console import table
from orbench_harness.registry import Registry

TABLE_COMMANDS = ("list", "status", "doctor", "compare", "describe", "run", "sweep", "grid", "judge-eval")


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}  # what a batch job or a pipe reports
    return subprocess.run([sys.executable, "-m", "orbench_harness.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_list_models_to_a_pipe_names_every_model_in_full() -> None:
    names = [m.name for m in Registry().models()]
    organisms = [n for n in names if n.startswith("smollm2-135m-")]
    assert len(organisms) >= 2
    r = _harness("list", "models")
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    for name in names:
        assert name in r.stdout, name


def test_list_benchmarks_to_a_pipe_keeps_names_and_summaries_whole() -> None:
    r = _harness("list", "benchmarks")
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    for e in Registry().benchmarks():
        assert e.name in r.stdout
        assert e.summary in r.stdout, e.summary


def test_list_json_is_the_same_data() -> None:
    rows = json.loads(_harness("list", "models", "--json").stdout)
    assert [r["name"] for r in rows] == [m.name for m in Registry().models()]


@pytest.mark.parametrize("command", TABLE_COMMANDS)
def test_every_table_command_has_json(command: str) -> None:
    parsers = {p[-1]: parser for p, parser in walk(build_parser()) if len(p) == 2}
    assert "--json" in {s for a in parsers[command]._actions for s in a.option_strings}


def test_cells_are_data_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    cell = "renders '[INST] q [/INST] ' and [bold]this[/bold]"
    table("[title]", ["[col]"], [[cell]])
    printed = capsys.readouterr().out
    assert cell in printed and "[title]" in printed and "[col]" in printed
