"""The layer rules in pyproject.toml hold, and each would catch the import it forbids.

``lint-imports`` (import-linter) checks three contracts: the plugin packages stand side by side
on the core (none imports another, the core imports none), a private ``_`` module is imported
only from inside its own package, and no two sibling modules or packages import each other in
a cycle. A contract that cannot fail protects nothing, so each one is also run on a copy of the
packages with one forbidden import planted, and must break there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "orbench_harness": ROOT / "orbench_harness",
    "orbench_methods": ROOT / "methods" / "orbench_methods",
    "orbench_judges": ROOT / "judges" / "orbench_judges",
    "orbench_benchmarks": ROOT / "benchmarks" / "orbench_benchmarks",
    "orbench_reports": ROOT / "reports" / "orbench_reports",
}
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_contracts_hold_on_the_repository() -> None:
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 kept, 0 broken" in res.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five packages (Python files only) and the contracts, in a scratch directory."""
    root = tmp_path_factory.mktemp("layers")
    for name, src in PACKAGES.items():
        shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "template", "*.safetensors"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


PLANTS = {
    # the core reaching up into a plugin
    "core imports a plugin": ("orbench_harness/planted.py", "import orbench_methods.none\n", "side by side"),
    # one plugin package leaning on another
    "plugin imports plugin": ("orbench_methods/planted.py", "import orbench_judges.strmatch\n", "side by side"),
    # a private module of the core used from a plugin
    "private module": ("orbench_methods/planted.py", "from orbench_harness.backends import _hub\n", "private"),
    # two core modules importing each other (types is imported by runner)
    "cycle": ("orbench_harness/types.py", "\nimport orbench_harness.runner\n", "cycles"),
}


@pytest.mark.parametrize("case", sorted(PLANTS))
def test_each_contract_breaks_on_a_planted_import(copy: Path, case: str, tmp_path: Path) -> None:
    rel, line, contract = PLANTS[case]
    work = tmp_path / "tree"
    shutil.copytree(copy, work)
    target = work / rel
    target.write_text((target.read_text() if target.exists() else "") + line)
    env = dict(os.environ, PYTHONPATH=str(work))  # ahead of the installed (editable) packages
    res = lint(work, env)
    assert res.returncode == 1, res.stdout + res.stderr
    broken = [ln for ln in res.stdout.splitlines() if ln.endswith(" BROKEN")]
    assert len(broken) == 1 and contract in broken[0], res.stdout
