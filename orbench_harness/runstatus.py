"""Where each run under a directory stands (``harness status``): running, finished, stopped.

A six-hour run on a cluster is watched from outside. Its directory says everything needed:
``run.json`` is written at the start with every benchmark's sample count, ``samples.jsonl``
and ``verdicts.jsonl`` grow by a batch at a time, ``results.json`` appears at the end, and a
live run holds the directory's lock (``store.lock_holder``). A run that is neither finished nor
holding its lock has stopped (killed, crashed, Ctrl-C); its ``run.json`` keeps the command
that resumes it. Where the lock table cannot be read (not Linux), a run that is not finished
is ``unfinished``: running or stopped, this cannot tell which.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orbench_harness.errors import HarnessError
from orbench_harness.runs import RESULTS_FILE, RUN_FILE, SAMPLES_FILE, VERDICTS_FILE, load_samples, load_verdicts
from orbench_harness.store import lock_holder

State = Literal["running", "finished", "stopped", "unfinished", "damaged"]
PROC_LOCKS = Path("/proc/locks")


@dataclass(frozen=True, slots=True)
class RunStatus:
    """One run directory's state and progress (``total`` counts the prompts of every
    generation benchmark; capability benchmarks score log-probabilities and are not counted)."""

    path: Path
    state: State
    model: str
    method: str
    generated: int
    judged: int
    total: int
    pid: int | None
    idle_seconds: float | None
    command: str | None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {"path": str(self.path), "state": self.state, "model": self.model, "method": self.method,
                "generated": self.generated, "judged": self.judged, "total": self.total, "pid": self.pid,
                "idle_seconds": self.idle_seconds, "command": self.command, "problem": self.problem}


def _name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name", "?"))
    return "?" if value is None else str(value)


def status_of(run_dir: Path, *, now: float | None = None) -> RunStatus:
    """The state of one run directory; a damaged file is a ``damaged`` state, never an error."""
    now = time.time() if now is None else now
    pid = lock_holder(run_dir, PROC_LOCKS)
    files = [run_dir / f for f in (RUN_FILE, SAMPLES_FILE, VERDICTS_FILE, RESULTS_FILE)]
    mtimes = [f.stat().st_mtime for f in files if f.exists()]
    idle = max(0.0, now - max(mtimes)) if mtimes else None
    try:
        meta = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return RunStatus(run_dir, "damaged", "?", "?", 0, 0, 0, pid, idle, None, f"{RUN_FILE}: {e}")
    raw = meta.get("benchmarks")
    benches: dict[str, Any] = raw if isinstance(raw, dict) else {}
    total = sum(int(b.get("n", 0)) for b in benches.values() if isinstance(b, dict) and b.get("kind") != "capability")
    model, method = _name(meta.get("model")), _name(meta.get("method"))
    command = resume_command(meta["command"], run_dir, method) if isinstance(meta.get("command"), str) else None
    try:
        generated, judged = len(load_samples(run_dir)), len(load_verdicts(run_dir))
    except HarnessError as e:
        return RunStatus(run_dir, "damaged", model, method, 0, 0, total, pid, idle, command, str(e))
    state: State = ("running" if pid is not None else "finished" if (run_dir / RESULTS_FILE).is_file()
                    else "stopped" if PROC_LOCKS.is_file() else "unfinished")
    return RunStatus(run_dir, state, model, method, generated, judged, total, pid, idle, command)


def resume_command(command: str, run_dir: Path, method: str) -> str:
    """The run's recorded command, made to resume *this* directory.

    A command given without ``--out`` wrote into a new timestamped folder; repeated as it was, it
    would start another one and leave this run stopped for good. So ``--out`` is added: the
    run's own directory, or for a run of several methods (``--method a,b``: one folder each
    below a root) the root, which resumes every method and costs nothing for finished ones.
    """
    try:
        words = shlex.split(command)
    except ValueError:  # a command recorded without quoting (before 0.2): leave it as it is
        return command
    if any(w == "--out" or w.startswith("--out=") for w in words):
        return command
    methods = next((w.split("=", 1)[1] for w in words if w.startswith("--method=")), None)
    if methods is None and "--method" in words[:-1]:
        methods = words[words.index("--method") + 1]
    several = methods is not None and len([m for m in methods.split(",") if m.strip()]) > 1
    root = run_dir.parent if several and run_dir.name == method else run_dir
    return shlex.join([*words, "--out", str(root)])


def describe_idle(seconds: float | None) -> str:
    """``12 s``, ``5 min``, ``3.2 h`` since the last write."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
