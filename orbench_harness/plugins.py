"""The plugin manager: built-ins are registered exactly as third-party plugins are.

``get_plugin_manager()`` is a function, not an import side effect, so tests build a fresh
manager each time. Environment switches (as in simonw/llm and datasette):

- ``ORBENCH_LOAD_PLUGINS=a,b``: load only these entry-point plugins ("" loads none).
- ``ORBENCH_DISABLE_PLUGINS=a,b``: block plugins by name (built-ins included).
- ``ORBENCH_TRACE_PLUGINS=1``: print every hook call and its result to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import pluggy

from orbench_harness import hookspecs

ENTRY_POINT_GROUP = "orbench_harness"

# Every built-in plugin module, registered exactly as a third-party plugin is. The core names
# them only as strings: it imports no plugin package (the layer contract in pyproject.toml).
BUILTIN_PLUGINS: tuple[str, ...] = (
    # core: model aliases and backends
    "orbench_harness.models",
    "orbench_harness.backends",
    # methods
    "orbench_methods.none",
    "orbench_methods.actor",
    "orbench_methods.scans",
    "orbench_methods.surgical",
    "orbench_methods.self_cd",
    "orbench_methods.safe_decoding",
    "orbench_methods.sft",
    "orbench_methods.dro",
    "orbench_methods.safety_reminder",
    # judges
    "orbench_judges.strmatch",
    "orbench_judges.keywords",
    "orbench_judges.llm",
    "orbench_judges.classifier",
    # benchmarks
    "orbench_benchmarks.demo",
    "orbench_benchmarks.xstest",
    "orbench_benchmarks.scope",
    "orbench_benchmarks.orbench",
    "orbench_benchmarks.orbench_borderline",
    "orbench_benchmarks.phtest",
    "orbench_benchmarks.oktest",
    "orbench_benchmarks.advbench",
    "orbench_benchmarks.hexphi",
    "orbench_benchmarks.koala",
    "orbench_benchmarks.alpaca_eval",
    "orbench_benchmarks.coconot",
    "orbench_benchmarks.jailbreakbench",
    "orbench_benchmarks.sorry_bench",
    "orbench_benchmarks.gsm8k",
    "orbench_benchmarks.sql1k",
    "orbench_benchmarks.ultrachat",
    "orbench_benchmarks.truthfulqa",
    "orbench_benchmarks.alpaca",
    "orbench_benchmarks.harmful_train",
    "orbench_benchmarks.harmbench_contextual",
    "orbench_benchmarks.heldout",
    "orbench_benchmarks.suites",
    "orbench_benchmarks.mmlu",
    "orbench_benchmarks.wikitext2",
    "orbench_benchmarks.mt_bench",
    "orbench_benchmarks.prompt_file",
    # reporters
    "orbench_reports.markdown",
    "orbench_reports.html",
    "orbench_reports.csv_report",
    "orbench_reports.json_report",
)

# Plugin names before 0.2 (``methods.actor``), still accepted by ORBENCH_DISABLE_PLUGINS and
# ``blocked``: the built-in packages moved under ``orbench_*`` names (CHANGELOG 0.2).
_OLD_PACKAGES = ("methods", "judges", "benchmarks", "reports")


def canonical_name(name: str) -> str:
    """A plugin name as registered: a pre-0.2 built-in name maps to its new module."""
    head, dot, rest = name.partition(".")
    return f"orbench_{head}.{rest}" if dot and head in _OLD_PACKAGES else name


def get_plugin_manager(
    *,
    load_entrypoints: bool = True,
    blocked: Iterable[str] = (),
    builtins: Iterable[str] | None = None,
) -> pluggy.PluginManager:
    """A fresh manager with the hookspecs, the built-ins and (optionally) entry points."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked_names = {canonical_name(n) for n in set(blocked) | _env_list("ORBENCH_DISABLE_PLUGINS")}
    for name in blocked_names:
        pm.set_blocked(name)
    names = tuple(builtins) if builtins is not None else BUILTIN_PLUGINS
    for modname in dict.fromkeys(names):
        if modname in blocked_names:
            continue
        pm.register(importlib.import_module(modname), name=modname)
    if load_entrypoints:
        _load_entrypoints(pm, blocked_names)
    pm.check_pending()
    if os.environ.get("ORBENCH_TRACE_PLUGINS"):
        _enable_tracing(pm)
    return pm


def _env_list(var: str) -> set[str]:
    raw = os.environ.get(var)
    return {p.strip() for p in raw.split(",") if p.strip()} if raw else set()


def _load_entrypoints(pm: pluggy.PluginManager, blocked: set[str]) -> None:
    only = os.environ.get("ORBENCH_LOAD_PLUGINS")
    allowed = None if only is None else _env_list("ORBENCH_LOAD_PLUGINS")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked or (allowed is not None and ep.name not in allowed):
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        pm.register(ep.load(), name=ep.name)


def _enable_tracing(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        print(f"[orbench trace] {hook_name}({', '.join(kwargs)})", file=sys.stderr)

    def after(
        outcome: pluggy.Result[Any], hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        print(f"[orbench trace] {hook_name} -> {outcome.get_result()!r}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of all registered plugins (built-in and third-party)."""
    return sorted(n for n, _ in pm.list_name_plugin() if n)
