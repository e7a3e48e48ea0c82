"""The embedded default model end to end (slow: converts and loads the 135M GGUF model)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_main_job_on_the_embedded_model_and_its_free_repeat(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "orbench_harness.cli", "run", "--model", "smollm2-135m", "--method", "none",
           "--benchmark", "demo", "--limit", "3", "--max-new-tokens", "24", "--out", str(out)]
    t0 = time.perf_counter()
    first = subprocess.run(cmd, check=True, capture_output=True, text=True)
    t_first = time.perf_counter() - t0
    assert "avg compliance" in first.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == "smollm2-135m" and res["timing"]["model_loaded"] is True
    meta = json.loads((out / "run.json").read_text())
    assert meta["model"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 9 and all(s["completion"].strip() for s in samples)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    t_second = time.perf_counter() - t0
    again = json.loads((out / "results.json").read_text())
    assert again["timing"]["model_loaded"] is False
    assert again["benchmarks"] == res["benchmarks"]
    assert t_second < t_first


def test_readme_main_job_actor_vs_none_on_the_organism(tmp_path: Path) -> None:
    """The README's main job, smaller (4 prompts per demo set, 24 tokens): ACTOR and none on
    the organism, offline, ending with the leaderboard of both rows under one judge."""
    out = tmp_path / "main"
    cmd = [sys.executable, "-m", "orbench_harness.cli", "run", "--model", "smollm2-135m-safety",
           "--method", "none,actor", "--benchmark", "demo", "--limit", "4", "--max-new-tokens", "24",
           "--out", str(out)]
    env = {k: v for k, v in __import__("os").environ.items() if k != "ORBENCH_DATA_DIR"}
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    board = done.stdout[done.stdout.index("| Model"):]
    assert "smollm2-135m-safety" in board and "| actor" in board and "| none" in board
    res = {m: json.loads((out / m / "results.json").read_text()) for m in ("none", "actor")}
    assert res["actor"]["judge"] == res["none"]["judge"] == "classifier"
    meta = json.loads((out / "actor" / "run.json").read_text())
    assert meta["method"]["fingerprint"] != json.loads((out / "none" / "run.json").read_text())["method"]["fingerprint"]
