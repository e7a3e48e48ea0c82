"""``harness describe KIND NAME``: a component's summary and every option it takes.

    harness describe method actor
    harness describe method actor --model llama-2-7b-chat   # with that model's defaults
    harness describe judge strmatch --json

A method's options are read from the frozen config dataclass its factory hands to
``parse_config`` (``orbench_harness/methodargs.py``): type and default from the fields, the
meaning from each field's attribute docstring, the paper's setting from its closing ``Paper:``
sentence. Nothing else holds the text, so the help cannot drift from what ``--method-arg``
accepts, and a plugin method made with ``harness new method`` is described the same way.
Judges and backends are described the same way when their factory uses ``parse_config``;
otherwise their factory's docstring says what they take.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

from orbench_harness.cli.helpfmt import LITERAL
from orbench_harness.cli.listing import bench_info
from orbench_harness.console import out, print_json, table
from orbench_harness.errors import HarnessError
from orbench_harness.methodargs import ConfigFound, config_of, describe_options
from orbench_harness.protocols import MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.types import ModelSpec

KINDS = {"method": "methods", "judge": "judges", "benchmark": "benchmarks", "backend": "backends"}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``describe``."""
    p = sub.add_parser("describe", help="a method's, judge's, benchmark's or backend's options",
                       description=__doc__)
    p.add_argument("kind", choices=sorted(KINDS), help="what kind of component")
    p.add_argument("name", help="its name (harness list methods, judges, benchmarks or backends shows them)")
    p.add_argument("--model", help="methods: also show this model's per-model defaults")
    p.add_argument("--data-dir", type=Path, help="benchmarks: count items in this data directory")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=main)


def describe(kind: str, name: str, *, model: str | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """The description ``harness describe`` prints, as JSON-ready data."""
    reg = Registry()
    entry = reg._catalog(KINDS[kind]).get(name)
    found: ConfigFound | None = None
    extra: dict[str, Any] = {}
    if kind == "method":
        env = MethodEnv(model=ModelSpec(name=model or "", source=model or ""), seed=0,
                        train_samples=lambda _name: [], data_dir=data_dir)
        found = config_of(entry.factory, env)
    elif kind in ("judge", "backend"):
        try:
            found = config_of(entry.factory)
        except HarnessError:  # a factory that needs arguments (an endpoint, a key) to exist
            found = None
    else:
        extra = bench_info(reg, entry.name, str(data_dir) if data_dir else None)
    options = [o.to_json() for o in describe_options(found)] if found is not None else []
    doc = inspect.getdoc(entry.factory) if found is None and kind != "benchmark" else None
    return {**entry.info, **extra, "component": kind, "name": entry.name, "summary": entry.summary,
            "aliases": list(entry.aliases), "plugin": entry.plugin,
            "config": found.cls.__name__ if found is not None else None, "model": model,
            "options": options, "factory_doc": doc}


def main(args: argparse.Namespace) -> int:
    """Print the description as text or JSON."""
    d = describe(args.kind, args.name, model=args.model, data_dir=args.data_dir)
    if args.json:
        print_json(d)
        return 0
    out.print(f"{d['component']} {d['name']}: {d['summary']}", markup=False, highlight=False, soft_wrap=True)
    shown = ("aliases", "plugin", "requires", "capabilities", "kind", "metric", "size", "error")
    for key in shown:
        if d.get(key) not in (None, [], (), ""):
            value = ", ".join(map(str, d[key])) if isinstance(d[key], list | tuple) else d[key]
            out.print(f"  {key}: {value}", markup=False, highlight=False, soft_wrap=True)
    if d["options"]:
        per_model = [o for o in d["options"] if o["model_default"] is not None]
        cols = ["option", "type", "default", *([f"default for {args.model}"] if per_model else []), "paper", "meaning"]
        rows = [[o["name"], o["type"], _show(o["default"]), *([_show(o["model_default"])] if per_model else []),
                 (o["paper"] or "").replace(LITERAL, ""), o["meaning"].replace(LITERAL, "")] for o in d["options"]]
        table(f"{args.kind} {d['name']} options ({d['config']}; set with --{args.kind}-arg KEY=VALUE)", cols, rows)
    elif d["factory_doc"]:
        out.print(f"options (no typed config; from its factory):\n{d['factory_doc'].replace(LITERAL, '')}",
                  markup=False, highlight=False, soft_wrap=True)
    elif args.kind == "method":
        out.print("options: none", markup=False, highlight=False)
    return 0


def _show(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, str) else str(value)
