"""``harness judge-eval``: how well a judge agrees with human labels, or with a run's judge.

    harness judge-eval --judge strmatch --labels xstest_v2_completions_*.csv [--json]
    harness judge-eval --judge strmatch --run runs/main/actor [--json]

With ``--run``, the reference is the run's own judge on the run's own completions, one row
per benchmark: how much the run's numbers would move under another judge (unparsed reference
verdicts are left out and counted). That is agreement between judges, not with people.

Files are in XSTest's labelled format (prompt, completion, final_label). Prints three-class
accuracy, binary (refusal vs compliance) accuracy, Cohen's kappa on the binary labels and the
confusion matrix, per file and pooled; ``--json`` prints the pooled numbers as one object
(``n``, ``three_class_accuracy``, ``binary_accuracy``, ``kappa``, ``unparsed``,
``confusion``, and ``files`` with the same per file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orbench_harness.console import progress, table, warn
from orbench_harness.errors import HarnessError
from orbench_harness.judge_eval import agreement, read_labelled, read_run, run_judge
from orbench_harness.registry import Registry
from orbench_harness.spec import parse_kv


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``judge-eval``."""
    p = sub.add_parser(
        "judge-eval",
        help="agreement of a judge with human refusal labels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--judge", default="strmatch", help="judge plugin to evaluate")
    p.add_argument("--judge-arg", action="append", metavar="KEY=VALUE", help="judge option (repeatable)")
    p.add_argument("--judge-model", help="shorthand for --judge-arg model=...")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", nargs="+", type=Path, metavar="FILE.csv", help="human-labelled files")
    source.add_argument("--run", type=Path, metavar="RUN_DIR",
                        help="a finished run: its completions, its judge's verdicts as reference")
    p.add_argument("--batch-size", type=int, default=64, help="items per judge call")
    p.add_argument("--json", action="store_true", help="print pooled metrics as JSON")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Judge every labelled response and report agreement."""
    judge_args = parse_kv(args.judge_arg, "--judge-arg")
    if args.judge_model:
        if "model" in judge_args:
            raise HarnessError("conflicting flags: --judge-model and --judge-arg model=...")
        judge_args["model"] = args.judge_model
    reference = "human labels"
    if args.run is not None:
        ref_judge, by_bench, unparsed = read_run(args.run)
        files = {Path(name): items for name, items in by_bench.items()}
        reference = f"{args.run}'s judge {ref_judge}"
        if unparsed:
            warn(f"{unparsed} completion(s) with an unparsed {ref_judge} verdict left out (no reference)")
    else:
        files = {path: read_labelled(path) for path in args.labels}
    judge = Registry().create("judges", args.judge, judge_args)
    judge.preflight()
    per_file: dict[str, Any] = {}
    all_gold, all_pred = [], []
    with progress() as prog:
        task = prog.add_task(f"judging with {judge.name}", total=sum(len(v) for v in files.values()))
        for path, items in files.items():
            verdicts = run_judge(
                judge, items, batch_size=args.batch_size, progress=lambda k: prog.advance(task, k)
            )
            gold = [it.gold for it in items]
            pred = [v.label for v in verdicts]
            per_file[path.name] = agreement(gold, pred)
            all_gold += gold
            all_pred += pred
    pooled = agreement(all_gold, all_pred)
    if args.json:
        obj = pooled.to_json()
        obj["judge"] = {"name": judge.name, "version": judge.version}
        obj["reference"] = reference
        obj["files"] = {name: a.to_json() for name, a in per_file.items()}
        print(json.dumps(obj, indent=2))
        return 0
    rows = [
        [name, a.n, f"{a.three_class_accuracy:.3f}", f"{a.binary_accuracy:.3f}", f"{a.kappa:.3f}", a.unparsed]
        for name, a in [*per_file.items(), ("pooled", pooled)]
    ]
    table(
        f"judge {judge.name} ({judge.version}) vs {reference}",
        ["file" if args.run is None else "benchmark", "n", "3-class acc", "binary acc", "kappa (binary)", "unparsed"],
        rows,
    )
    cols = list(next(iter(pooled.confusion.values())))
    table(
        f"confusion (rows: {'human' if args.run is None else 'reference judge'}, columns: judge), pooled",
        ["reference \\ judge", *cols],
        [[g, *(row[c] for c in cols)] for g, row in pooled.confusion.items()],
    )
    return 0
