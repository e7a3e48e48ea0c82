"""``harness status RUN_DIR...``: which runs are running, finished or stopped, and how far.

    harness status runs/            # every run directory below runs/
    harness status runs/ --json

Per run: its state (``running``, with the pid holding the directory; ``finished``;
``stopped``, killed or crashed before the end; ``unfinished`` where the lock table cannot be
read, so running and stopped look alike; ``damaged``, a run file that cannot be read),
model and method, generations and verdicts done out of the run's prompts, and ``idle``, the
time since it last wrote anything. A stopped run resumes where it stopped when its own command (printed
below the table) is run again. Nothing is locked or written: it is safe beside live runs.
On a filesystem without locks (some NFS set-ups, where the run warns that it cannot lock its
directory) a live run shows as stopped; a small ``idle`` time gives it away.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orbench_harness.console import out, table
from orbench_harness.errors import HarnessError
from orbench_harness.runs import find_run_dirs
from orbench_harness.runstatus import describe_idle, status_of


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``status``."""
    p = sub.add_parser("status", help="running / finished / stopped runs and their progress",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run directories, or directories searched recursively for run.json")
    p.add_argument("--json", action="store_true", help="print one JSON object per run, as a list")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print the table (or JSON); exit 0 whatever the runs' states."""
    dirs = find_run_dirs(args.run_dirs)
    if not dirs:
        raise HarnessError(f"no run.json found under {', '.join(map(str, args.run_dirs))}")
    statuses = [status_of(d) for d in dirs]
    if args.json:
        sys.stdout.write(json.dumps([s.to_json() for s in statuses], indent=2) + "\n")
        return 0

    def shown(path: Path) -> str:  # relative to the working directory where it is below it
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    table("runs", ["run", "state", "pid", "model", "method", "generated", "judged", "idle"],
          [[shown(s.path), s.state, s.pid or "-", s.model, s.method, f"{s.generated}/{s.total}",
            f"{s.judged}/{s.total}", describe_idle(s.idle_seconds)] for s in statuses])
    for s in statuses:
        if s.state in ("stopped", "unfinished") and s.command:
            out.print(f"resume {s.path}: {s.command}", markup=False, highlight=False, soft_wrap=True)
        if s.problem:
            out.print(f"{s.path}: {s.problem}", markup=False, highlight=False, soft_wrap=True)
    return 0
