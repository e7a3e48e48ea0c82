"""Cost of repeating a finished run: wall time of the second identical run over the first.

    python bench/rerun.py [--benchmark demo] [--limit 16]

Both runs are `harness run` subprocesses on the embedded model with a fresh cache directory,
so the first includes model loading and generation and the second shows what the cache and
the run store save; a finished run is recognised before torch or the model is loaded, so the
second costs about what starting the CLI costs (printed beside it). Target (issues 9, 36): <= 0.05.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--benchmark", default="demo")
    ap.add_argument("--limit", type=int, default=16)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orbench-rerun-"))
    models = Path(os.environ.get("ORBENCH_CACHE_DIR", Path.home() / ".cache" / "orbench-harness")) / "models"
    (tmp / "cache").mkdir()
    if models.is_dir():  # reuse the converted model: the bench measures runs, not the one-off conversion
        (tmp / "cache" / "models").symlink_to(models)
    env = {**os.environ, "ORBENCH_CACHE_DIR": str(tmp / "cache"), "ORBENCH_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "orbench_harness.cli", "run", "--model", "smollm2-135m", "--method", "none",
           "--benchmark", a.benchmark, "--limit", str(a.limit), "--out", str(tmp / "run")]
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()  # the floor: starting the CLI at all
    subprocess.run([sys.executable, "-m", "orbench_harness.cli", "--help"], env=env, check=True, capture_output=True)
    start = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"first run {times[0]:.2f}s   repeated run {times[1]:.2f}s   peak RSS (largest child) {peak:.0f} MiB")
    print(f"ratio repeated/first {times[1] / times[0]:.4f} (target <= 0.05)")
    print(f"CLI start (harness --help) {start:.2f}s: the repeated run spent {times[1] - start:.2f}s beyond it")


if __name__ == "__main__":
    main()
