"""``harness doctor [RUN_DIR ...] [--cache] [--fix] [--json]``: find (and repair) damage.

    harness doctor runs/              # every run directory below runs/
    harness doctor --cache            # the cache file and the model-conversion temporaries
    harness doctor runs/ --cache --fix

Per run: run.json readable and its identity the one its spec gives; every samples.jsonl and
verdicts.jsonl line that does not parse, lacks a field or repeats an id (as file:line);
verdicts without a sample; results.json readable; a stale lock left by a killed run. With
``--cache``: SQLite's integrity check of the cache, its row count, and the temporaries an
interrupted model conversion left. ``--fix`` rewrites a log without its damaged and duplicate
lines (keeping the first good record of each id) and removes stale temporaries; it never
deletes a good record and never writes into a running run. Exit 0 when everything is healthy
(or was fixed), 1 when problems remain.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orbench_harness.console import info, out, warn
from orbench_harness.doctor import Report, check_cache, check_run, fix_run
from orbench_harness.errors import HarnessError
from orbench_harness.paths import cache_dir
from orbench_harness.runs import find_run_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``doctor``."""
    p = sub.add_parser("doctor", help="check run directories and the cache for damage; --fix repairs what is safe",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR",
                   help="run directories, or directories searched recursively for run.json")
    p.add_argument("--cache", action="store_true", help="check the cache (ORBENCH_CACHE_DIR) too")
    p.add_argument("--fix", action="store_true", help="repair what is safe (damaged and duplicate lines, "
                   "stale temporaries)")
    p.add_argument("--json", action="store_true", help="print the reports as a JSON list")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Check (and with ``--fix`` repair); exit 0 when healthy, 1 when problems remain."""
    if not args.run_dirs and not args.cache:
        raise HarnessError("doctor: name run directories to check, or pass --cache")
    dirs = find_run_dirs(args.run_dirs) if args.run_dirs else []
    if args.run_dirs and not dirs:
        raise HarnessError(f"no run.json found under {', '.join(map(str, args.run_dirs))}")
    reports = [fix_run(d) if args.fix else check_run(d) for d in dirs]
    if args.cache:
        reports.append(check_cache(cache_dir(), fix=args.fix))
    healthy = all(r.healthy for r in reports)
    if args.json:
        sys.stdout.write(json.dumps([r.to_json() for r in reports], indent=2) + "\n")
    else:
        for r in reports:
            _show(r)
        if not healthy and not args.fix and any(f.fixable for r in reports for f in r.findings):
            info("harness doctor --fix repairs the problems marked (fixable)")
    return 0 if healthy else 1


def _show(report: Report) -> None:
    """One line for the place, then one per finding and per repair."""
    out.print(f"{report.path}: {'ok' if report.healthy else 'problems'}", markup=False, highlight=False,
              soft_wrap=True)
    for line in report.fixed:
        out.print(f"  fixed: {line}", markup=False, highlight=False, soft_wrap=True)
    for f in report.findings:
        text = f"{f.where}: {f.message}" + (" (fixable)" if f.fixable else "")
        if f.problem:
            warn(text)
        else:
            out.print(f"  {text}", markup=False, highlight=False, soft_wrap=True)
