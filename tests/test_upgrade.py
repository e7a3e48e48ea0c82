"""Runs and cache entries made by release 0.1.0 stay valid after the package restructuring.

``tests/data/run-0.1.0`` was written by 0.1.0 (before the plugin packages moved under
``orbench_*`` names): three finished runs of the embedded model on the demo set (``none``,
``self-cd`` and ``scans``, 2 prompts per set, 4 new tokens, judge ``strmatch``), with the cache
and SCANS artifact they left. Machine paths in the run files were replaced by neutral ones; no
key depends on them. If a module move changed a method fingerprint, a judge version, a run
identity or a generation key, these runs would generate again and load the model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orbench_harness.cli import main

pytestmark = pytest.mark.slow

BEFORE = Path(__file__).resolve().parent / "data" / "run-0.1.0"
METHODS = ("none", "self-cd", "scans")
ARGS = ["run", "--model", "smollm2-135m", "--method", ",".join(METHODS), "--benchmark", "demo",
        "--limit", "2", "--max-new-tokens", "4", "--judge", "strmatch"]


def _with_old_cache(cache: Path) -> None:
    """The 0.1.0 cache (generations, verdicts, the SCANS artifact) in this test's cache dir."""
    shutil.copy(BEFORE / "cache" / "cache.sqlite", cache / "cache.sqlite")
    shutil.copytree(BEFORE / "cache" / "artifacts", cache / "artifacts")


def _results(run: Path) -> dict[str, object]:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


def test_a_finished_run_of_0_1_0_is_recognised_without_regeneration(tmp_path: Path, isolated_cache: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(BEFORE / "finished", runs)
    before = {m: (runs / m / "samples.jsonl").read_bytes() for m in METHODS}
    assert main([*ARGS, "--out", str(runs)]) == 0
    for m in METHODS:
        assert (runs / m / "samples.jsonl").read_bytes() == before[m], m
        res = _results(runs / m)
        assert res["timing"]["model_loaded"] is False, m  # type: ignore[index]
        old = json.loads((BEFORE / "finished" / m / "results.json").read_text(encoding="utf-8"))
        assert res["benchmarks"] == old["benchmarks"], m


def test_every_generation_of_0_1_0_comes_from_the_cache(tmp_path: Path, isolated_cache: Path) -> None:
    _with_old_cache(isolated_cache)
    out = tmp_path / "fresh"
    assert main([*ARGS, "--out", str(out)]) == 0
    for m in METHODS:
        assert _results(out / m)["timing"]["model_loaded"] is False, m  # type: ignore[index]
        new = [json.loads(line) for line in (out / m / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
        old = [json.loads(line) for line in (BEFORE / "finished" / m / "samples.jsonl").read_text().splitlines()]
        assert sorted((r["benchmark"], r["id"], r["completion"]) for r in new) == \
            sorted((r["benchmark"], r["id"], r["completion"]) for r in old), m
