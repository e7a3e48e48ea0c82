"""Grids of runs (models x methods) executed by Ray, over one shared cache.

Each cell is an ordinary resumable run in its own directory; Ray only schedules them (local
by default, ``address=`` for a cluster), so a killed grid is resumed by running it again and
cells that finished are read back without loading anything. Two processes sharing the SQLite
cache is safe (WAL mode; see tests/test_store_cache.py).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbench_harness.errors import HarnessError
from orbench_harness.runner import run
from orbench_harness.spec import RunSpec


@dataclass(frozen=True, slots=True)
class Cell:
    """One run of the grid."""

    spec: RunSpec
    out: Path


def method_args_for(method: str, args: Mapping[str, str]) -> dict[str, str]:
    """Grid method options: ``actor:epochs=1`` applies to actor only; a plain key to all."""
    out: dict[str, str] = {}
    for key, value in args.items():
        target, sep, name = key.partition(":")
        if not sep:
            out[key] = value
        elif target == method:
            out[name] = value
    return out


def cells(
    base: RunSpec,
    models: Sequence[str],
    methods: Sequence[str],
    out: Path,
    name_of: Callable[[str], str] = lambda m: m,
) -> list[Cell]:
    """The grid's runs; one directory per model x method, named by ``name_of(model)``."""
    if not models or not methods:
        raise HarnessError("a grid needs at least one --models and one --methods entry")
    result = []
    for model in models:
        for method in methods:
            spec = dataclasses.replace(base, model=model, method=method,
                                       method_args=method_args_for(method, base.method_args))
            safe = name_of(model).replace("/", "_").replace(os.sep, "_")
            result.append(Cell(spec, out / f"{safe}-{method}"))
    return result


def _run_cell(spec: RunSpec, out: str) -> dict[str, Any]:
    """Executed in a Ray worker: one ordinary run."""
    return run(spec, Path(out))


def run_grid(grid: Sequence[Cell], *, address: str | None = None, workers: int = 2) -> list[dict[str, Any]]:
    """Run every cell through Ray; returns each cell's results (in grid order)."""
    try:
        import ray
    except ImportError:
        raise HarnessError("harness grid needs Ray: pip install 'orbench-harness[grid]'") from None
    env = {k: v for k, v in os.environ.items() if k.startswith(("ORBENCH_", "HF_", "TRANSFORMERS_"))}
    env.setdefault("ORBENCH_NO_PROGRESS", "1")
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                                  "runtime_env": {"env_vars": env}}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers, **kwargs)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_run_cell)
        refs = [remote.remote(c.spec, str(c.out)) for c in grid]
        return list(ray.get(refs))
    finally:
        if started_here:
            ray.shutdown()
