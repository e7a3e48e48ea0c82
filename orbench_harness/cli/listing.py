"""``harness list``: what the loaded plugins provide (built-in and third-party)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orbench_harness.console import table
from orbench_harness.data import DataSource
from orbench_harness.errors import HarnessError
from orbench_harness.models import describe
from orbench_harness.plugins import plugin_names
from orbench_harness.registry import Registry

KINDS = ("methods", "judges", "benchmarks", "suites", "models", "backends", "reporters", "plugins")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``list``."""
    p = sub.add_parser("list", help="list registered components", description=__doc__)
    p.add_argument("kind", choices=KINDS, help="what to list")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--data-dir", help="for benchmarks: count items in this data directory")
    p.set_defaults(func=main)


def collect(kind: str, data_dir: str | None = None) -> list[dict[str, Any]]:
    """Rows describing every registered component of ``kind``."""
    reg = Registry()
    if kind == "plugins":
        return [{"name": n} for n in plugin_names(reg.pm)]
    if kind == "models":
        return [describe(m) for m in reg.models()]
    if kind == "suites":
        return [{"name": s.name, "benchmarks": list(s.benchmarks), "summary": s.summary,
                 "limits": dict(s.limits), "plugin": s.plugin} for s in reg.suites().values()]
    rows = []
    for e in reg._catalog(kind):
        row: dict[str, Any] = {"name": e.name, "summary": e.summary, "aliases": list(e.aliases),
                               "plugin": e.plugin, **e.info}
        if kind == "benchmarks":
            row.update(bench_info(reg, e.name, data_dir))
        rows.append(row)
    return rows


def bench_info(reg: Any, name: str, data_dir: str | None) -> dict[str, Any]:
    """Kind, metric and size (when the data can be read) of one benchmark."""
    out: dict[str, Any] = {}
    try:
        bench = reg.create("benchmarks", name, DataSource(Path(data_dir) if data_dir else None))
        out["kind"], out["metric"] = bench.kind, bench.metric
        size = getattr(bench, "size", None)
        if callable(size):
            out["size"] = size()
        elif bench.kind != "capability":
            out["size"] = len(bench.samples("all"))
    except (HarnessError, OSError) as e:
        out["error"] = str(e)
    return out


def main(args: argparse.Namespace) -> int:
    """Print the listing as a table or JSON."""
    rows = collect(args.kind, args.data_dir)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    cols = ["name", "summary"] + (["kind", "metric", "size"] if args.kind == "benchmarks" else []) + ["plugin"]
    if args.kind == "models":
        cols = ["name", "source", "revision", "gguf_file"]
    table(args.kind, cols, [[r.get(c, "") for c in cols] for r in rows])
    return 0
