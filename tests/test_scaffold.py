"""``harness new method``: the generated package installs, its own tests pass, and the
harness runs it end to end (listed, trained once, cached, re-run from the cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orbench_harness.cli import main
from orbench_harness.errors import HarnessError
from orbench_harness.scaffold import method_package


def _harness(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbench_harness.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_generated_method_installs_passes_its_tests_and_runs(tiny_model_dir: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "orbench-steer-v2"
    assert main(["new", "method", "steer-v2", "--out", str(pkg)]) == 0
    assert (pkg / "orbench_steer_v2" / "method.py").read_text().count("class SteerV2Config") == 1
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(pkg)], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(pkg),
                            str(pkg / "tests")], cwd=pkg, env=env, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout[-3000:] + tests.stderr[-2000:]

    listed = {r["name"]: r for r in json.loads(_harness(["list", "methods", "--json"], env).stdout)}
    assert listed["steer-v2"]["plugin"] == "steer-v2"

    out = tmp_path / "run"
    args = ["run", "--model", str(tiny_model_dir), "--method", "none,steer-v2", "--method-arg",
            "steer-v2:layer=1", "--method-arg", "steer-v2:alpha=4", "--benchmark", "demo-benign",
            "--limit", "4", "--judge", "strmatch", "--max-new-tokens", "8", "--out", str(out)]
    first = _harness(args, env)
    assert first.returncode == 0, first.stderr[-3000:]
    steered = json.loads((out / "steer-v2" / "results.json").read_text())
    plain = json.loads((out / "none" / "results.json").read_text())
    assert steered["benchmarks"]["demo-benign"]["n"] == plain["benchmarks"]["demo-benign"]["n"] == 4
    directions = list(Path(os.environ["ORBENCH_CACHE_DIR"]).rglob("direction.pt"))
    assert len(directions) == 1  # prepared once, into the cache's artifact directory
    texts = {json.loads(line)["completion"] for line in (out / "steer-v2" / "samples.jsonl").open()}
    assert texts != {json.loads(line)["completion"] for line in (out / "none" / "samples.jsonl").open()}

    made = directions[0].stat().st_mtime_ns
    again = _harness([*args[:-1], str(tmp_path / "run2")], env)  # same settings, new --out
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("4 generations from cache") == 2  # none's and steer-v2's
    assert directions[0].stat().st_mtime_ns == made
    other = [*args[:8], "steer-v2:alpha=8", *args[9:-1], str(tmp_path / "run3")]
    changed = _harness(other, env)  # an option is part of the fingerprint: steer-v2 generates anew
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert changed.stderr.count("generations from cache") == 1  # none's only
    assert len(list(Path(os.environ["ORBENCH_CACHE_DIR"]).rglob("direction.pt"))) == 2


@pytest.mark.parametrize("name", ["Steer", "steer_v2", "2steer", "steer--v2", "-steer", ""])
def test_names_a_user_could_not_type_after_method_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="lower-case letters, digits and single hyphens"):
        method_package(name, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_nothing_of_the_users_is_overwritten(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(HarnessError, match="not an empty directory"):
        method_package("steer", mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert {p.name for p in method_package("steer", empty)} >= {"method.py", "pyproject.toml", "test_steer.py"}


def test_the_generated_package_is_clean_under_the_projects_own_rules(tmp_path: Path) -> None:
    """Strict mypy and the project's ruff rules on the package as generated (where
    ``orbench_harness`` is third-party), so a change to the template cannot leave it untyped."""
    pytest.importorskip("mypy")
    root = Path(__file__).resolve().parents[1]
    pkg = tmp_path / "orbench-steer-v2"
    method_package("steer-v2", pkg)
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--line-length", "120",
                           "--target-version", "py310", "--select", "E,F,W,I,B,UP,ANN,SIM,RUF",
                           "--ignore", "ANN401", "."], cwd=pkg, capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout[-3000:]
    env = {**os.environ, "MYPYPATH": str(root)}  # the harness's own sources, as an installed copy
    typed = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--config-file=", "--follow-imports=silent",
                            "--cache-dir", str(tmp_path / "mypy"), "orbench_steer_v2", "tests"],
                           cwd=pkg, env=env, capture_output=True, text=True, timeout=600)
    assert typed.returncode == 0, typed.stdout[-3000:]
