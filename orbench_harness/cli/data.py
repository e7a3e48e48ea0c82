"""``harness data``: fill a data directory from the hub (``fetch``) and check it (``verify``).

``fetch`` writes what ``--data-dir`` reads (docs/data.md) plus ``manifest.json``; ``verify``
compares the directory with that manifest, so a directory copied to an offline machine, or
kept for months, can be shown to hold exactly the bytes that were fetched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orbench_harness.console import info, warn
from orbench_harness.datadir import MANIFEST, fetch, verify
from orbench_harness.errors import HarnessError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``data`` with its ``fetch`` and ``verify`` subcommands."""
    p = sub.add_parser("data", help="fetch benchmark data from the hub into a data directory, or verify one",
                       description=__doc__)
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", help="fetch or verify a data directory")
    actions.required = True
    f = actions.add_parser("fetch", help="download a suite's (or benchmarks') hub tables into DIR, with a manifest")
    f.add_argument("--suite", action="append", default=[], metavar="NAME", help="a suite (paper, quick, ...)")
    f.add_argument("--benchmark", action="append", default=[], metavar="NAME", help="a benchmark (or a,b)")
    f.add_argument("--to", required=True, type=Path, metavar="DIR", help="the data directory to fill")
    f.set_defaults(func=fetch_main)
    v = actions.add_parser("verify", help="check DIR against its manifest: missing, changed or extra files")
    v.add_argument("dir", type=Path, metavar="DIR", help="the data directory to check against its manifest.json")
    v.set_defaults(func=verify_main)


def fetch_main(args: argparse.Namespace) -> int:
    """Fetch; exit 1 when a hub table could not be fetched, naming each."""
    names = [*args.suite, *args.benchmark]
    if not names:
        raise HarnessError("name what to fetch: --suite NAME or --benchmark NAME")
    report = fetch(names, args.to)
    for f in report.fetched:
        licence = f.entry.get("licence") or "licence not stated"
        info(f"fetched {f.relpath} ({f.entry['rows']} rows, {licence})")
    for bench, why in report.manual.items():
        warn(f"{bench}: {why}")
    for label, why in report.failed.items():
        print(f"failed: {label}: {why}", file=sys.stderr)
    info(f"{len(report.fetched)} table(s) in {args.to}, recorded in {args.to / MANIFEST}; "
         f"--data-dir {args.to} reads them")
    return 1 if report.failed else 0


def verify_main(args: argparse.Namespace) -> int:
    """Print one line per problem; exit 1 if there is any."""
    problems = verify(args.dir)
    for line in problems:
        print(line)
    if problems:
        print(f"{args.dir}: {len(problems)} problem(s) against {MANIFEST}", file=sys.stderr)
        return 1
    info(f"{args.dir}: every file matches {MANIFEST}")
    return 0
