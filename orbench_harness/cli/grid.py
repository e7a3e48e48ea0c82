"""``harness grid``: many runs (models x methods) over one cache, executed by Ray.

    harness grid --models smollm2-135m-safety --methods none,actor --suite quick --out runs/grid

``--method-arg actor:epochs=1`` gives an option to one method; a plain ``key=value`` to all.

Ray runs locally with ``--workers`` processes unless ``--address`` names a cluster. Each cell
is a normal, resumable run directory; the leaderboard over them is printed at the end
(``harness report runs/grid`` renders it again).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orbench_harness.cli.run import add_run_arguments, fmt_rate, spec_from_args
from orbench_harness.console import print_json, table
from orbench_harness.grid import cells, run_grid
from orbench_harness.registry import Registry
from orbench_harness.resolution import resolve


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``grid``."""
    p = sub.add_parser("grid", help="run models x methods through Ray", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--models", required=True, help="comma-separated models")
    p.add_argument("--methods", required=True, help="comma-separated methods")
    p.add_argument("--out", type=Path, required=True, help="directory holding one run directory per cell")
    p.add_argument("--address", help="Ray cluster address (default: a local Ray instance)")
    p.add_argument("--workers", type=int, default=2, help="local Ray worker processes")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the grid and print one row per cell."""
    base = spec_from_args(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    reg = Registry()
    grid = cells(base, models, methods, args.out, name_of=lambda m: reg.resolve_model(m).name)
    for cell in grid:  # every user error (names, options, data) surfaces here, before Ray starts
        resolve(cell.spec, reg)
    results = run_grid(grid, address=args.address, workers=args.workers)
    if args.json:
        print_json([{"model": res["model"], "method": res["method"], "run": str(cell.out), "summary": res["summary"]}
                    for cell, res in zip(grid, results, strict=True)])
        return 0
    rows = []
    for cell, res in zip(grid, results, strict=True):
        s = res["summary"]
        rows.append([res["model"], res["method"], fmt_rate(s["avg_compliance_rate"]), fmt_rate(s["safety_score"]),
                     fmt_rate(s["trade_off_score"]), str(cell.out)])
    rows.sort(key=lambda r: (r[0], -(float(r[4]) if r[4] != "-" else -1.0)))
    table("grid", ["model", "method", "avg C.R", "S.S", "TS", "run"], rows)
    return 0
