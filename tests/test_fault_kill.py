"""Fault injection, stops: a seeded schedule of SIGKILL, SIGTERM and SIGINT across the phases of
a run (training, generation, judging), each landing at a drawn point of its phase, then one
uninterrupted re-run. The directory must end with exactly the records and results of a run
that was never stopped: each prompt once, no record of a half-written line.

The schedule comes from ``ORBENCH_FAULT_SEED`` (a fixed default, so CI is repeatable); a
failure prints the seed and the schedule, and setting the variable replays it. Other seeds
widen the net on a developer's machine: ``ORBENCH_FAULT_SEED=7 pytest tests/test_fault_kill.py``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from _runfixtures import line_count
from test_reliability import _benchmarks, _cmd, _env

SEED = int(os.environ.get("ORBENCH_FAULT_SEED", "20261208"))
STOPS = 5
N_RECORDS = 48  # the demo benchmark's prompts


def _schedule(seed: int) -> list[tuple[str, int, signal.Signals]]:
    """(phase, point within it, signal) for each stop, drawn from ``seed``."""
    rng = random.Random(seed)
    phases = ["training", "generation", "judging", *rng.choices(["generation", "judging"], k=STOPS - 3)]
    rng.shuffle(phases)
    sigs = [signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT]
    return sorted(((p, rng.randint(1, N_RECORDS - 4), rng.choice(sigs)) for p in phases[:STOPS]),
                  key=lambda s: (["training", "generation", "judging"].index(s[0]), s[1]))


def test_a_seeded_schedule_of_stops_ends_with_the_uninterrupted_records(tiny_model_dir: Path,
                                                                        tmp_path: Path) -> None:
    ref_cache, cache = tmp_path / "ref-cache", tmp_path / "kill-cache"
    for c in (ref_cache, cache):
        c.mkdir()
        (c / "models").symlink_to(os.environ["ORBENCH_CACHE_DIR"] + "/models")
    subprocess.run(_cmd(tiny_model_dir, tmp_path / "ref"), env=_env(ref_cache), check=True, capture_output=True)

    out = tmp_path / "run"
    samples, verdicts = out / "samples.jsonl", out / "verdicts.jsonl"
    schedule = _schedule(SEED)
    replay = f"ORBENCH_FAULT_SEED={SEED}: {[(p, n, s.name) for p, n, s in schedule]}"

    def ready(phase: str, n: int) -> Callable[[], bool]:
        if phase == "training":
            return lambda: any((cache / "artifacts").glob("*/actor-*/checkpoint.pt"))
        path = samples if phase == "generation" else verdicts
        return lambda: line_count(path) >= n

    landed = []
    for phase, n, sig in schedule:
        proc = subprocess.Popen(_cmd(tiny_model_dir, out), env=_env(cache),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        point = ready(phase, n)
        deadline = time.time() + 300
        while proc.poll() is None and not point() and time.time() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(sig)
            landed.append((phase, n, sig.name))
        _, err = proc.communicate(timeout=300)
        text = err.decode()
        assert "Traceback" not in text, f"{replay}\n{text[-3000:]}"
        # stopped inside the command: says so in one line; a signal that lands while Python starts
        # or shuts down (outside the command) ends the process by that signal, with no output
        if sig is not signal.SIGKILL and proc.returncode not in (0, -sig):
            assert proc.returncode in (130, 143), f"{replay}: exit {proc.returncode}\n{text[-2000:]}"
            assert "re-run" in text or "resume" in text, f"{replay}\n{text[-2000:]}"
    assert len(landed) >= STOPS - 1, f"{replay}: only {landed} landed before the run finished"
    subprocess.run(_cmd(tiny_model_dir, out), env=_env(cache), check=True, capture_output=True)
    for path in (samples, verdicts):
        keys = [(r["benchmark"], r["id"]) for r in map(json.loads, path.read_text().splitlines())]
        assert len(keys) == len(set(keys)) == N_RECORDS, f"{replay}: {path.name}"
    assert _benchmarks(out) == _benchmarks(tmp_path / "ref"), replay
