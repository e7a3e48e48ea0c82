"""``harness view``: every prompt of one or more runs, with its answers and verdicts, in one page.

A leaderboard says *how often* a model refused; reading the answers says *what* it refused,
which is where over-refusal research starts. The page is one self-contained HTML file (inline
CSS and script, no external resource, no server needed), so it can be mailed or archived with
the runs. Run directories are read through the core's read-only API (``orbench_harness.runs``):
``run.json`` and ``results.json`` for the run's label, judge and each benchmark's kind,
``samples.jsonl`` for prompts and completions, ``verdicts.jsonl`` for every judge's verdicts.

Completions are untrusted text (a model may write ``<script>``): the data goes into the page
as JSON with every ``<`` escaped, and the script puts it into the page with ``textContent``
only. Completions of harmful prompts (safety benchmarks) start collapsed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbench_harness.console import info, warn
from orbench_harness.errors import HarnessError
from orbench_harness.runs import (
    RESULTS_FILE,
    RUN_FILE,
    RunRecord,
    find_run_dirs,
    load_run,
    load_samples,
    load_verdicts,
    prompt_text,
)
from orbench_reports.names import distinct_tails
from orbench_reports.view_page import page_html, serve_page

SAFETY = "safety"
NOT_JUDGED = "not_judged"  # a sample the run's judge has not judged yet (a run still going)


@dataclass(frozen=True, slots=True)
class ViewRun:
    """One run as the page shows it: its label, judges, kinds and per-sample records."""

    record: RunRecord
    label: str
    samples: Mapping[tuple[str, str], Mapping[str, Any]]
    verdicts: Mapping[tuple[str, str], Mapping[str, str | None]]  # judge name -> label

    @property
    def judges(self) -> list[str]:
        """Every judge with a verdict in this run, the run's own judge first."""
        names = {j for v in self.verdicts.values() for j in v}
        return sorted(names, key=lambda j: (j != self.record.judge, j))


def load_view_run(record: RunRecord, label: str) -> ViewRun:
    """A run's samples and verdicts keyed by (benchmark, sample id)."""
    samples = {(str(s["benchmark"]), str(s["id"])): s for s in load_samples(record.path)}
    verdicts: dict[tuple[str, str], dict[str, str | None]] = {}
    for v in load_verdicts(record.path):
        label_ = v.get("label")
        verdicts.setdefault((str(v["benchmark"]), str(v["id"])), {})[str(v["judge"])] = (
            None if label_ is None else str(label_)
        )
    return ViewRun(record, label, samples, verdicts)


def short_model(model: str) -> str:
    """A model given as a local directory or file is named by its last part; a hub id
    (``org/name``) or an alias stays as it is."""
    path = Path(model)
    return path.name if path.is_absolute() or model.startswith(".") else model


def run_labels(records: Sequence[RunRecord]) -> list[str]:
    """``model / method`` per run, with the distinguishing tail of the directory when two match."""
    base = [f"{short_model(r.model)} / {r.label}" for r in records]
    if len(set(base)) == len(base):
        return base
    tails = distinct_tails([r.path.resolve().parts for r in records])
    return [f"{b} [{t}]" if t else b for b, t in zip(base, tails, strict=True)]


def benchmark_kinds(runs: Sequence[ViewRun]) -> dict[str, str]:
    """Each benchmark's kind (over_refusal, safety, ...), from results.json or run.json; a
    benchmark whose samples expect refusals is a safety set even when neither records it."""
    kinds: dict[str, str] = {}
    for run in runs:
        recorded = run.record.run_json.get("benchmarks")
        sources = [run.record.benchmarks, recorded if isinstance(recorded, Mapping) else {}]
        for source in sources:
            for name, entry in source.items():
                if isinstance(entry, Mapping) and isinstance(entry.get("kind"), str):
                    kinds.setdefault(str(name), str(entry["kind"]))
        for (bench, _), s in run.samples.items():
            if bench not in kinds:
                kinds[bench] = SAFETY if s.get("expected") == "refuse" else "over_refusal"
    return kinds


def page_data(runs: Sequence[ViewRun]) -> dict[str, Any]:
    """What the page's script renders: runs, benchmarks and one item per (benchmark, id)."""
    kinds = benchmark_kinds(runs)
    keys: dict[tuple[str, str], None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.samples))
    order = {b: i for i, b in enumerate(dict.fromkeys(b for b, _ in keys))}
    items = []
    for bench, sid in sorted(keys, key=lambda k: order[k[0]]):
        first = next(r.samples[(bench, sid)] for r in runs if (bench, sid) in r.samples)
        per_run: list[dict[str, Any] | None] = []
        for run in runs:
            s = run.samples.get((bench, sid))
            if s is None:
                per_run.append(None)
                continue
            verdicts = dict(run.verdicts.get((bench, sid), {}))
            verdict = verdicts.get(run.record.judge, NOT_JUDGED)
            per_run.append({"c": str(s.get("completion", "")), "v": verdict,
                            "j": verdicts, "t": bool(s.get("truncated_prompt", False))})
        items.append({"b": bench, "id": sid, "p": prompt_text(first.get("prompt")),
                      "e": str(first.get("expected", "")), "r": per_run})
    return {
        "runs": [{"label": r.label, "path": str(r.record.path), "judge": r.record.judge, "judges": r.judges}
                 for r in runs],
        "benchmarks": [{"name": b, "kind": kinds.get(b, "?"), "harmful": kinds.get(b) == SAFETY} for b in order],
        "items": items,
    }


def read_run(path: Path) -> RunRecord:
    """A run, finished or not: an unfinished one (no results.json yet) shows what it has so far."""
    if (path / RESULTS_FILE).is_file():
        return load_run(path)
    try:
        run_json = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise HarnessError(f"{path / RUN_FILE}: unreadable") from None
    if not isinstance(run_json, dict):
        raise HarnessError(f"{path / RUN_FILE}: expected a JSON object")
    warn(f"{path}: no {RESULTS_FILE} yet (unfinished run); showing the samples it has")
    return RunRecord(run_json, {}, path)


def build_page(paths: Sequence[Path]) -> tuple[str, int, int]:
    """The page for the runs found under ``paths``; also the number of runs and items."""
    dirs = find_run_dirs(paths)
    if not dirs:
        raise HarnessError(f"no run.json found under {', '.join(map(str, paths))}")
    records = [read_run(d) for d in dirs]
    runs = [load_view_run(r, lab) for r, lab in zip(records, run_labels(records), strict=True)]
    data = page_data(runs)
    if not data["items"]:
        raise HarnessError(f"no samples.jsonl records in {', '.join(map(str, dirs))} (capability-only runs?)")
    return page_html(data), len(runs), len(data["items"])


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``view``."""
    p = sub.add_parser(
        "view", help="browse every prompt, completion and verdict of runs in one HTML page",
        description="Write a self-contained HTML page (no server needed) with every prompt of the runs, "
                    "their completions and verdicts, filters by benchmark, verdict, judge disagreement "
                    "and (with two runs) flips. Harmful prompts' completions start collapsed.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run directories, or directories holding runs (two runs: flips between them)")
    p.add_argument("-o", "--output", type=Path, default=Path("view.html"), help="the page to write (view.html)")
    p.add_argument("--serve", action="store_true", help="also serve the page on 127.0.0.1 until Ctrl-C")
    p.add_argument("--port", type=int, default=0, help="port for --serve (default: a free one)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Write the page; with ``--serve``, serve it on the loopback interface."""
    html, n_runs, n_items = build_page(args.runs)
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    info(f"wrote {out} ({n_items} prompts, {n_runs} run(s))")
    if args.serve:
        serve_page(html, args.port)
    return 0

