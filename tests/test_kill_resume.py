"""A real ``harness run`` subprocess killed with SIGKILL mid-generation, then restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_sigkill_during_generation_then_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "orbench_harness.cli", "run", "--model", str(tiny_model_dir),
           "--benchmark", "demo", "--batch-size", "1", "--max-new-tokens", "48", "--out", str(out)]
    env = {**os.environ, "ORBENCH_NO_PROGRESS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _count(out / "samples.jsonl") < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = _count(out / "samples.jsonl")
    assert not (out / "results.json").exists()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    keys = [(r["benchmark"], r["id"]) for r in recs]
    results = json.loads((out / "results.json").read_text())
    total = sum(b["n"] for b in results["benchmarks"].values())
    assert len(keys) == len(set(keys)) == total > written
    verdicts = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    assert len(verdicts) == total
