"""Every extension point of the harness, as pluggy hook specifications.

Catalogue hooks take a ``register`` callback (the shape simonw/llm uses): a plugin calls
``register(name, factory, summary=..., aliases=...)`` once per component. Factories are
called only when a component is used, so registering a plugin imports nothing heavy.

``orbench_resolve_model`` and ``orbench_resolve_benchmark`` are the dispatch hooks ("who
knows this name?", for a model or a benchmark no plugin registered, such as a path) and stop
at the first non-None answer.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from orbench_harness.catalog import Register, SuiteRegister
    from orbench_harness.data import DataSource
    from orbench_harness.events import RunEnd, RunStart, SampleJudged
    from orbench_harness.protocols import Benchmark
    from orbench_harness.types import ModelSpec

PROJECT = "orbench_harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def orbench_register_methods(register: Register) -> None:
    """Register methods. Factory: ``(args: Mapping[str, str], env: MethodEnv) -> Method``."""


@hookspec
def orbench_register_judges(register: Register) -> None:
    """Register judges. Factory: ``(args: Mapping[str, str]) -> Judge``."""


@hookspec
def orbench_register_benchmarks(register: Register) -> None:
    """Register benchmarks. Factory: ``(data: DataSource) -> Benchmark``."""


@hookspec
def orbench_register_suites(register: SuiteRegister) -> None:
    """Register named benchmark suites: ``register(name, benchmarks, summary=...)``."""


@hookspec
def orbench_register_backends(register: Register) -> None:
    """Register model backends. Factory: ``(args: Mapping[str, str]) -> Backend``."""


@hookspec
def orbench_register_reporters(register: Register) -> None:
    """Register report renderers. Factory: ``(args: Mapping[str, str]) -> Reporter``."""


@hookspec(firstresult=True)
def orbench_resolve_model(name: str) -> ModelSpec | None:
    """Map a model alias to a ModelSpec; stops at the first non-None result."""


@hookspec(firstresult=True)
def orbench_resolve_benchmark(name: str) -> Callable[[DataSource], Benchmark] | None:
    """A factory for a benchmark name that no plugin registered (a prompt file's path, say),
    or None; stops at the first non-None result. Called for every such ``--benchmark`` name,
    so an answer must be cheap and must not depend on state kept between calls."""


@hookspec
def orbench_list_models() -> list[ModelSpec]:  # type: ignore[empty-body]
    """Models a plugin knows by alias (for ``harness list models``)."""


@hookspec
def orbench_register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add CLI subcommands; called explicitly by ``main()``, never at import time."""


@hookspec
def orbench_on_run_start(event: RunStart) -> None:
    """A run starts."""


@hookspec
def orbench_on_sample_judged(event: SampleJudged) -> None:
    """A sample received its verdict."""


@hookspec
def orbench_on_run_end(event: RunEnd) -> None:
    """A run finished."""
