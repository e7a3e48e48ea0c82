"""``harness sweep``: a grid of method options, one resumable run per point, one table.

    harness sweep --method actor --param alpha=0.0003,0.0006,0.001 --param layer=10,15 \\
                  --suite quick --data-dir D --out runs/actor-sweep

Every point shares the cache, so points that differ only in evaluation settings reuse each
other's generations, and a killed sweep resumes point by point. The paper's ablations (alpha
curve, layer choice, data budgets, single-benchmark training) are each one such command.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path
from typing import Any

from orbench_harness.cli.run import add_run_arguments, fmt_rate, spec_from_args
from orbench_harness.console import info, print_json, table
from orbench_harness.errors import HarnessError
from orbench_harness.registry import Registry
from orbench_harness.resolution import resolve
from orbench_harness.runner import run
from orbench_harness.spec import RunSpec


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``sweep``."""
    p = sub.add_parser("sweep", help="run a grid of method options", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--param", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a method option and the values to try (repeatable; the grid is their product)")
    p.add_argument("--out", type=Path, required=True, help="directory holding one run directory per point")
    p.set_defaults(func=main)


def parse_grid(params: list[str]) -> list[dict[str, str]]:
    """``["alpha=1,2", "layer=3"]`` -> the list of point dicts (their cartesian product)."""
    axes: dict[str, list[str]] = {}
    for raw in params:
        key, sep, values = raw.partition("=")
        key = key.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not vals:
            raise HarnessError(f"malformed --param {raw!r}: expected key=v1,v2,...")
        if key in axes:
            raise HarnessError(f"--param {key!r} given twice")
        axes[key] = vals
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axes[k] for k in keys))]


def point_dir(out: Path, method: str, point: dict[str, str]) -> Path:
    """A readable, filesystem-safe directory name per point."""
    label = "-".join(f"{k}={v}" for k, v in point.items())
    safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in label)
    return out / f"{method}-{safe}"


def main(args: argparse.Namespace) -> int:
    """Run every point and print a table of their summary scores."""
    base = spec_from_args(args)
    grid = parse_grid(args.param)
    clash = set(grid[0]) & set(base.method_args)
    if clash:
        raise HarnessError(f"conflicting flags: {sorted(clash)[0]!r} given by --param and --method-arg")
    specs: list[RunSpec] = [dataclasses.replace(base, method_args={**base.method_args, **point})
                            for point in grid]
    registry = Registry()
    for spec in specs:  # a bad value in the last point must not surface after hours of the first
        resolve(spec, registry)
    rows: list[list[Any]] = []
    points: list[dict[str, Any]] = []
    for i, (point, spec) in enumerate(zip(grid, specs, strict=True), start=1):
        out = point_dir(args.out, spec.method, point)
        info(f"[{i}/{len(grid)}] {spec.method} {point} -> {out}")
        res = run(spec, out)
        s = res["summary"]
        points.append({"point": point, "run": str(out), "summary": s})
        rows.append([*point.values(), fmt_rate(s["avg_compliance_rate"]), fmt_rate(s["safety_score"]),
                     fmt_rate(s["trade_off_score"]), str(out)])
    if args.json:
        print_json(points)
        return 0
    table(f"sweep: {base.method} on {base.model}", [*grid[0].keys(), "avg C.R", "S.S", "TS", "run"], rows)
    return 0
