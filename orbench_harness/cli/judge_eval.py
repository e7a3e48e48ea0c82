"""``harness judge-eval``: how well a judge agrees with human labels.

    harness judge-eval --judge strmatch --labels xstest_v2_completions_*.csv [--json]

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


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``judge-eval``."""
    p = sub.add_parser(
        "judge-eval",
        help="agreement of a judge with human refusal labels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--judge", default="strmatch")
    p.add_argument("--judge-arg", action="append", metavar="KEY=VALUE", help="judge option (repeatable)")
    p.add_argument("--judge-model", help="shorthand for --judge-arg model=...")
    p.add_argument("--labels", nargs="+", type=Path, required=True, metavar="FILE.csv")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true", help="print pooled metrics as JSON")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Judge every labelled response and report agreement."""
    from orbench_harness.console import progress, table
    from orbench_harness.errors import HarnessError
    from orbench_harness.judge_eval import agreement, read_labelled, run_judge
    from orbench_harness.registry import Registry
    from orbench_harness.spec import parse_kv

    judge_args = parse_kv(args.judge_arg, "--judge-arg")
    if args.judge_model:
        if "model" in judge_args:
            raise HarnessError("conflicting flags: --judge-model and --judge-arg model=...")
        judge_args["model"] = args.judge_model
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
        obj["files"] = {name: a.to_json() for name, a in per_file.items()}
        print(json.dumps(obj, indent=2))
        return 0
    rows = [
        [name, a.n, f"{a.three_class_accuracy:.3f}", f"{a.binary_accuracy:.3f}", f"{a.kappa:.3f}", a.unparsed]
        for name, a in [*per_file.items(), ("pooled", pooled)]
    ]
    table(
        f"judge {judge.name} ({judge.version}) vs human labels",
        ["file", "n", "3-class acc", "binary acc", "kappa (binary)", "unparsed"],
        rows,
    )
    cols = list(next(iter(pooled.confusion.values())))
    table(
        "confusion (rows: human, columns: judge), pooled",
        ["human \\ judge", *cols],
        [[g, *(row[c] for c in cols)] for g, row in pooled.confusion.items()],
    )
    return 0
