"""``harness report RUN_DIR... --format md|html|csv|json [--out FILE] [--ci]``.

RUN_DIR is a run directory or any directory below which run directories (those holding a
``run.json``) are found. The format is a reporter's name, so reporters added by plugins work
the same way as the built-in ones. Unfinished runs (no ``results.json``) and damaged ones (a
file that is not valid JSON, say a partial copy) are skipped with a warning that names the
file and the fix, rather than shown as empty rows or stopping the whole report.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from orbench_harness.console import info, warn
from orbench_harness.errors import HarnessError
from orbench_harness.protocols import Reporter
from orbench_harness.registry import Registry
from orbench_harness.runs import RESULTS_FILE, RunRecord, find_run_dirs, load_run
from orbench_harness.store import file_mode


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``report``."""
    p = subparsers.add_parser(
        "report",
        help="leaderboard of finished runs (markdown, HTML, CSV, JSON)",
        description="Render finished runs as the paper-style leaderboard. Runs judged by "
        "different judges or on different splits get separate tables.",
    )
    p.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="run directories, or directories searched recursively for run.json",
    )
    p.add_argument(
        "--format",
        "-f",
        default="md",
        help="reporter: md (markdown), html, csv, json, or one a plugin registers",
    )
    p.add_argument("--out", "-o", type=Path, help="write to this file instead of stdout")
    p.add_argument(
        "--ci",
        action="store_true",
        help="add 95%% bootstrap confidence intervals computed from verdicts.jsonl",
    )
    p.set_defaults(func=run)


def collect_runs(paths: list[Path]) -> list[RunRecord]:
    """Finished runs under ``paths``; unfinished and damaged ones are skipped with a warning."""
    dirs = find_run_dirs(paths)
    if not dirs:
        raise HarnessError(f"no run.json found under {', '.join(map(str, paths))}")
    records = []
    for d in dirs:
        if not (d / RESULTS_FILE).is_file():
            warn(f"{d}: no {RESULTS_FILE} (unfinished run); skipped")
            continue
        try:
            records.append(load_run(d))
        except HarnessError as e:  # re-running rewrites results.json from the run's records
            warn(f"{e}; skipped (re-run its `harness run` command with --out {d} to rewrite it)")
    if not records:
        raise HarnessError(f"none of the {len(dirs)} run(s) found has a readable {RESULTS_FILE}; "
                           "finish or re-run them first")
    return records


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 would make the report private (store.file_mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    """Render the report; returns the exit code."""
    records = collect_runs(list(args.run_dirs))
    reporter: Reporter = Registry().create("reporters", args.format, {"ci": "1"} if args.ci else {})
    text = reporter.render(records)
    if args.out is None:
        sys.stdout.write(text)
    else:
        try:
            write_text_atomic(args.out, text)
        except OSError as e:
            raise HarnessError(f"cannot write {args.out}: {e.strerror}") from None
        info(f"wrote {args.out} ({len(records)} run(s), format {args.format})")
    return 0
