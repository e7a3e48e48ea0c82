"""From a spec to components: names resolved, samples loaded, the model loaded when first needed.

``resolve`` turns every name of a ``RunSpec`` into a component and loads the samples, so each
user error (an unknown benchmark, a method the backend cannot run, an empty split) surfaces
before any work; ``LazyPolicy`` loads the model and prepares the method only when a generation
is really missing, which is what makes a resumed or cached run cheap. The runner (``runner``)
drives both; export, grid and the probes use them directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from orbench_harness.cache import cache_key
from orbench_harness.data import DataSource
from orbench_harness.errors import CapabilityError, HarnessError
from orbench_harness.paths import cache_dir
from orbench_harness.protocols import (
    Backend,
    Benchmark,
    CapabilityBenchmark,
    Judge,
    Method,
    MethodContext,
    MethodEnv,
    ModelHandle,
    Policy,
    Split,
)
from orbench_harness.registry import Registry
from orbench_harness.spec import RunSpec
from orbench_harness.types import ModelSpec, Sample


@dataclass(frozen=True, slots=True)
class Resolved:
    """A spec with every name resolved to a component (done before any work)."""

    spec: RunSpec
    model: ModelSpec
    method: Method
    judge: Judge
    backend: Backend
    benchmarks: dict[str, Benchmark]
    samples: dict[str, list[Sample]]


def resolve(spec: RunSpec, registry: Registry) -> Resolved:
    """Resolve names and load samples; every user error surfaces here, before any work."""
    backend: Backend = registry.create("backends", spec.backend, dict(spec.backend_args))
    model = resolve_model(backend, registry, spec.model)
    # both are part of the model's cache key: generations with another template or precision never mix
    model = replace(model, chat_template=spec.chat_template or model.chat_template, dtype=spec.dtype or model.dtype)
    model = concrete(backend, model)
    env = MethodEnv(model=model, seed=spec.seed, train_samples=train_sampler(registry, spec), data_dir=spec.data_dir)
    method: Method = registry.create("methods", spec.method, dict(spec.method_args), env)
    judge: Judge = registry.create("judges", spec.judge, dict(spec.judge_args))
    missing = set(method.requires) - set(backend.capabilities)
    if missing:
        able = [
            e.name for e in registry.backends()
            if {c.value for c in missing} <= set(e.info.get("capabilities", ()))
        ]
        need = ", ".join(sorted(c.value for c in missing))
        export = (f", or `harness export --method {method.name}` and run the exported directory with --method none"
                  if getattr(method, "exportable", False) else "")
        raise CapabilityError(
            f"method {method.name!r} needs {need}, which backend {backend.name!r} lacks; "
            f"use --backend {' or '.join(able) if able else '(none installed has it)'}{export}"
        )
    names = registry.expand_benchmarks(spec.benchmarks)
    source = DataSource(spec.data_dir)
    benches: dict[str, Benchmark] = {}
    samples: dict[str, list[Sample]] = {}
    for name in names:
        bench: Benchmark = registry.create("benchmarks", name, source)
        benches[name] = bench
        limit = min([c for c in (spec.limit, registry.suite_cap(spec.benchmarks, name)) if c is not None],
                    default=None)
        if isinstance(bench, CapabilityBenchmark) and bench.kind == "capability":
            samples[name] = []
            continue
        samples[name] = bench.samples(spec.split, limit=limit, seed=spec.seed)
        if not samples[name]:
            other: Split = "train" if spec.split == "test" else "test"
            hint = (f" (it is a {other}-only source: pass --split {other} to score its prompts)"
                    if bench.samples(other, limit=1, seed=spec.seed) else "")
            raise HarnessError(f"benchmark {name!r} has no samples in split {spec.split!r}{hint}")
    model = identify(backend, model)  # last: every user error above comes before a request to a server
    return Resolved(spec, model, method, judge, backend, benches, samples)


def resolve_model(backend: Backend, registry: Registry, name: str) -> ModelSpec:
    """The model a name means on this backend: a backend with ``resolve_model`` (``openai``,
    whose model names are the server's) resolves its own; the others use the aliases."""
    own: Callable[[str], ModelSpec] | None = getattr(backend, "resolve_model", None)
    return own(name) if own is not None else registry.resolve_model(name)


def identify(backend: Backend, model: ModelSpec) -> ModelSpec:
    """The spec with what a backend learns by asking (``identify``: the model a server says it
    serves and its fingerprint), so a changed served model gets another cache key; others keep it."""
    fn: Callable[[ModelSpec], ModelSpec] | None = getattr(backend, "identify", None)
    return fn(model) if fn is not None else model


def concrete(backend: Backend, model: ModelSpec) -> ModelSpec:
    """The model spec as the backend will load it (``dtype=auto`` made concrete), for cache
    keys and run.json; a backend without ``concrete`` (vllm: the checkpoint decides) keeps it."""
    fn: Callable[[ModelSpec], ModelSpec] | None = getattr(backend, "concrete", None)
    return fn(model) if fn is not None else model


def train_sampler(registry: Registry, spec: RunSpec) -> Callable[[str], list[Sample]]:
    """Train-split access for methods: the only split a method may read. ``name@all`` reads
    every row of a set this run does not score (the ACTOR paper trains on all of HEx-PHI,
    which its nine benchmarks do not include); asked for a scored set it is an error."""
    cache: dict[str, list[Sample]] = {}

    def train_samples(name: str) -> list[Sample]:
        if name not in cache:
            base, sep, split = name.partition("@")
            if sep and split != "all":
                raise HarnessError(f"training pool {name!r}: the only split suffix is @all")
            if sep and base in registry.expand_benchmarks(spec.benchmarks):
                raise HarnessError(f"training pool {name!r}: {base} is scored in this run, so a method "
                                   "may train on its train split only")
            bench: Benchmark = registry.create("benchmarks", base, DataSource(spec.data_dir))
            cache[name] = bench.samples("all" if sep else "train", seed=spec.seed)
        return cache[name]

    return train_samples


class LazyPolicy:
    """Loads the model, prepares the method and enters its context on first use."""

    def __init__(self, r: Resolved, stack: ExitStack, log: Callable[[str], None]) -> None:
        self.r = r
        self.stack = stack
        self.log = log
        self._policy: Policy | None = None
        self.handle: ModelHandle | None = None
        self.prepare_seconds = 0.0
        self.batch_size = r.spec.fixed_batch_size()  # generation's; measured at load for ``auto``

    def get(self) -> Policy:
        """The policy, loading everything the first time."""
        if self._policy is None:
            r = self.r
            t0 = time.perf_counter()
            self.log(f"loading {r.model.name} on backend {r.backend.name}")
            self.handle = r.backend.load(r.model)
            pick = getattr(self.handle, "auto_batch_size", None)
            if r.spec.batch_size == "auto" and pick is not None:  # measured before the method's hooks exist
                kinds = {b.kind for b in r.benchmarks.values() if b.kind != "capability"} or {"over_refusal"}
                self.batch_size = pick([s.as_prompt() for ss in r.samples.values() for s in ss],
                                       max(r.spec.max_new_tokens_for(k) for k in kinds))
                self.log(f"batch size {self.batch_size} (--batch-size auto)")
            t1 = time.perf_counter()
            ctx = MethodContext(
                seed=r.spec.seed,
                artifact_dir=artifact_dir(r.model, r.method),
                train_samples=train_sampler(Registry(), r.spec),
                log=self.log,
                options={"data_dir": r.spec.data_dir},
            )
            artifact = r.method.prepare(self.handle, ctx)
            self.prepare_seconds = time.perf_counter() - t1
            self._policy = self.stack.enter_context(r.method.apply(self.handle, artifact))
            self.log(f"model ready in {t1 - t0:.1f}s; method prepared in {self.prepare_seconds:.1f}s")
        return self._policy


def describe(backend: Backend) -> dict[str, str] | None:
    """The backend's hardware for run.json (``describe()``), or None for a backend without it."""
    fn: Callable[[], dict[str, str]] | None = getattr(backend, "describe", None)
    return fn() if fn is not None else None


def artifact_dir(model: ModelSpec, method: Method) -> Path:
    """Per (model, method fingerprint) directory for trained artifacts."""
    mkey = cache_key("model", model.key)[:16]
    path = cache_dir() / "artifacts" / mkey / f"{method.name}-{method.fingerprint()[:16]}"
    path.mkdir(parents=True, exist_ok=True)
    return path
