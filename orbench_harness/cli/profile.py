"""``harness profile``: a model's refusal profile -- the ``none`` method on a suite.

    harness profile --model smollm2-135m-safety --data-dir DATA
    harness profile --model runs/align-safety/adapter --suite quick --limit 100

The same as ``harness run --method none --suite quick``: one stored, resumable run whose table
shows compliance on the over-refusal sets, refusal on the harmful sets and the capability
metrics, with the judge named in the title and in results.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from orbench_harness.cli.run import print_summary
from orbench_harness.errors import HarnessError
from orbench_harness.paths import data_dir_from_env
from orbench_harness.runner import run
from orbench_harness.spec import DEFAULT_JUDGE, RunSpec, parse_kv


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``profile``."""
    p = sub.add_parser("profile", help="a model's refusal profile (method none on a suite)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-safety", help="alias, local dir, adapter dir, hub id")
    p.add_argument("--suite", action="append", metavar="NAME", help="suite or benchmark (default quick)")
    p.add_argument("--judge", default=DEFAULT_JUDGE, help=f"judge plugin (default {DEFAULT_JUDGE})")
    p.add_argument("--judge-arg", action="append", metavar="KEY=VALUE", help="judge option (repeatable)")
    p.add_argument("--backend", default="hf", help="backend that loads and runs the model")
    p.add_argument("--backend-arg", action="append", metavar="KEY=VALUE", help="backend option (repeatable)")
    p.add_argument("--split", default="test", choices=("test", "train", "all"), help="benchmark split to score")
    p.add_argument("--limit", type=int, help="at most N samples per benchmark (caps the suite's own limits)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling")
    p.add_argument("--batch-size", type=int, default=8, help="generation batch size")
    p.add_argument("--max-new-tokens", type=int, help="override the per-kind default")
    p.add_argument("--data-dir", type=Path, help="local data directory (env ORBENCH_DATA_DIR)")
    p.add_argument("--out", type=Path, help="run directory (default runs/profile-<model>-<time>)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run method none on the suite and print the profile table."""
    data_dir = args.data_dir or data_dir_from_env()
    if data_dir is not None and not data_dir.is_dir():
        raise HarnessError(f"--data-dir {data_dir} is not a directory")
    spec = RunSpec(
        model=args.model, method="none", benchmarks=tuple(args.suite or ["quick"]), judge=args.judge,
        backend=args.backend, judge_args=parse_kv(args.judge_arg, "--judge-arg"),
        backend_args=parse_kv(args.backend_arg, "--backend-arg"), split=args.split, limit=args.limit,
        seed=args.seed, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        data_dir=data_dir.resolve() if data_dir else None,
    )
    name = args.model.rstrip("/").replace("/", "_")
    out = args.out or Path("runs") / f"profile-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run(spec, out)
    print_summary(results, out)
    return 0
