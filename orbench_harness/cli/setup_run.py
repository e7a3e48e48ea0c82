"""``harness run --setup NAME`` and ``--dry-run``: a named setup's options merged under the
user's, the configuration each method resolves to printed without loading a model, and the
run stopped before any weights load while a setup input is missing (``orbench_harness.setups``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from orbench_harness.grid import method_args_for
from orbench_harness.protocols import MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.resolution import train_sampler
from orbench_harness.setups import SETUPS, ResolvedSetup, resolve_setup
from orbench_harness.spec import RunSpec, parse_kv

MISSING_EXIT = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--setup``, ``--setup-input`` and ``--dry-run`` (``run`` only)."""
    p.add_argument("--setup", choices=sorted(SETUPS),
                   help="configure every method as a paper ran it on its models (actor-paper: the ACTOR "
                   "paper; docs/paper-setup.md); --method-arg values still win")
    p.add_argument("--setup-input", action="append", metavar="KEY=PATH",
                   help="what a setup cannot ship (reference answers, a system-prompt file, an adapter); "
                   "a setup names each one it lacks")
    p.add_argument("--dry-run", action="store_true",
                   help="print each method's resolved options and stop, without loading the model")


def prepare(args: argparse.Namespace, spec: RunSpec, methods: Sequence[str]) -> tuple[RunSpec, int | None]:
    """The spec with the setup's options merged in, and an exit code when the run must stop
    here (a dry run, or setup inputs missing); ``None`` lets the run go on."""
    setup_name = getattr(args, "setup", None)
    dry = bool(getattr(args, "dry_run", False))
    if not setup_name and not dry:
        return spec, None
    registry = Registry()
    model = registry.resolve_model(spec.model)
    per_method = {m: method_args_for(m, spec.method_args) if len(methods) > 1 else dict(spec.method_args)
                  for m in methods}
    resolved: ResolvedSetup | None = None
    if setup_name:
        resolved = resolve_setup(setup_name, model.name, methods, parse_kv(args.setup_input, "--setup-input"))
        merged = {m: resolved.args_for(m, per_method[m]) for m in methods}
        flat = (merged[methods[0]] if len(methods) == 1
                else {f"{m}:{k}": v for m in methods for k, v in merged[m].items()})
        spec = replace(spec, method_args=flat, setup=resolved.record())
    if dry:
        print_plan(spec, methods, per_method, resolved, registry)
        return spec, 0
    if resolved is not None and resolved.missing:
        for line in resolved.missing:
            sys.stderr.write(f"{resolved.name}: {line}\n")
        sys.stderr.write(f"{resolved.name}: stopped before loading {spec.model}; pass the inputs above\n")
        return spec, MISSING_EXIT
    return spec, None


def print_plan(spec: RunSpec, methods: Sequence[str], user: Mapping[str, Mapping[str, str]],
               resolved: ResolvedSetup | None, registry: Registry) -> None:
    """Every method's options as the run would resolve them, each marked with where it came
    from: ``setup``, ``user`` (``--method-arg``) or ``default`` (the harness's)."""
    model = registry.resolve_model(spec.model)
    env = MethodEnv(model=model, seed=spec.seed, train_samples=train_sampler(registry, spec), data_dir=spec.data_dir)
    head = f"dry run: {spec.model} ({model.source})" + (f", setup {resolved.name}" if resolved else "")
    _say(head + f", benchmarks {', '.join(registry.expand_benchmarks(spec.benchmarks))}")
    for m in methods:
        setup_args = dict(resolved.method_args.get(m, {})) if resolved else {}
        unfilled = dict(resolved.unfilled.get(m, {})) if resolved else {}
        args = {**setup_args, **user[m]}
        _say(f"\n[{m}]")
        try:
            method = registry.create("methods", m, args, env)
        except Exception as e:  # a method that cannot resolve without the missing inputs
            for key, value in sorted(args.items()):
                _say(f"  {key} = {value}  ({'user' if key in user[m] else 'setup'})")
            for option, need in sorted(unfilled.items()):
                _say(f"  {option} = <missing: --setup-input {need}>")
            _say(f"  (resolves once the missing inputs are given: {e})")
        else:
            for line in describe(method, setup_args, user[m], unfilled):
                _say("  " + line)
        for note in (resolved.differs.get(m, ()) if resolved else ()):
            _say(f"  differs from the paper: {note}")
    if resolved and resolved.missing:
        _say("")
        for line in resolved.missing:
            _say(f"{resolved.name}: {line}")


def _say(line: str) -> None:
    """Plain lines on stdout: the plan is read by people and by grep, not rendered."""
    sys.stdout.write(line + "\n")


def describe(method: Any, setup_args: Mapping[str, str], user: Mapping[str, str],
             unfilled: Mapping[str, str]) -> list[str]:
    """A method's resolved options (from its config dataclass), its training data and fingerprint."""
    cfg = getattr(method, "cfg", None)
    lines: list[str] = []
    if cfg is not None and dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        for f in dataclasses.fields(cfg):
            if f.name in unfilled:
                lines.append(f"{f.name} = <missing: --setup-input {unfilled[f.name]}>")
                continue
            value = getattr(cfg, f.name)
            where = "user" if f.name in user else "setup" if f.name in setup_args else "default"
            lines.append(f"{f.name} = {_short(value)}  ({where})")
    else:
        lines.append("(no options)")
    data = getattr(method, "data", None)
    signs = getattr(data, "signs", None)
    if signs is not None:
        lines.append(f"training queries: {sum(s > 0 for s in signs)} harmful, {sum(s < 0 for s in signs)} "
                     f"benign or pseudo-harmful; sources {', '.join(getattr(data, 'sources', ()))}")
    lines.append("fingerprint: (once the missing inputs are given)" if unfilled
                 else f"fingerprint: {method.fingerprint()[:16]}")
    return lines


def _short(value: Any, width: int = 100) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."
