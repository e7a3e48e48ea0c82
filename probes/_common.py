"""Helpers for the probe scripts: the default data directory, and a worker run in its own process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"


def run_isolated(script: str, *args: str) -> dict[str, Any]:
    """Run ``python script args`` and parse its last stdout line as JSON (plus peak RSS)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "ORBENCH_NO_PROGRESS": "1", "PYTHONPATH": path}
    res = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"{script} {' '.join(args)} failed")
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
