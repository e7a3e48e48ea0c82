"""A typed facade over ``pm.hook``: catalogues of components and model resolution.

Code outside this module never touches ``pm.hook`` directly, so the hook calls stay typed
(the shape tox's plugin manager uses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from orbench_harness.catalog import Catalog, Entry
from orbench_harness.errors import HarnessError, UnknownNameError
from orbench_harness.plugins import get_plugin_manager
from orbench_harness.protocols import Backend, Benchmark, Judge, Method, Reporter
from orbench_harness.types import ModelSpec

KINDS = ("methods", "judges", "benchmarks", "backends", "reporters")


@dataclass(frozen=True, slots=True)
class Suite:
    """A named list of benchmarks (``--suite quick``)."""

    name: str
    benchmarks: tuple[str, ...]
    summary: str
    plugin: str
    limits: Mapping[str, int] = field(default_factory=dict)

    def limit_for(self, benchmark: str) -> int | None:
        """The suite's item cap for one benchmark, if any."""
        return self.limits.get(benchmark, self.limits.get("*"))


class Registry:
    """Everything the loaded plugins provide."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm if pm is not None else get_plugin_manager()
        self._catalogs: dict[str, Catalog[Any]] = {}
        self._suites: dict[str, Suite] | None = None

    def _catalog(self, kind: str) -> Catalog[Any]:
        if kind not in self._catalogs:
            cat: Catalog[Any] = Catalog(kind.rstrip("s"))
            hook = getattr(self.pm.hook, f"orbench_register_{kind}")
            for impl in hook.get_hookimpls():
                impl.function(register=cat.callback_for(impl.plugin_name))
            self._catalogs[kind] = cat
        return self._catalogs[kind]

    def methods(self) -> Catalog[Method]:
        """Registered methods."""
        return self._catalog("methods")

    def judges(self) -> Catalog[Judge]:
        """Registered judges."""
        return self._catalog("judges")

    def benchmarks(self) -> Catalog[Benchmark]:
        """Registered benchmarks."""
        return self._catalog("benchmarks")

    def backends(self) -> Catalog[Backend]:
        """Registered backends."""
        return self._catalog("backends")

    def reporters(self) -> Catalog[Reporter]:
        """Registered reporters."""
        return self._catalog("reporters")

    def suites(self) -> dict[str, Suite]:
        """Registered suites by name."""
        if self._suites is None:
            suites: dict[str, Suite] = {}
            for impl in self.pm.hook.orbench_register_suites.get_hookimpls():

                def reg(
                    name: str,
                    benchmarks: Sequence[str],
                    *,
                    summary: str = "",
                    limits: Mapping[str, int] | None = None,
                    _p: str = impl.plugin_name,
                ) -> None:
                    if name in suites:
                        raise HarnessError(f"suite {name!r} registered twice ({_p})")
                    suites[name] = Suite(name, tuple(benchmarks), summary, _p, dict(limits or {}))

                impl.function(register=reg)
            self._suites = suites
        return self._suites

    def suite_cap(self, names: Sequence[str], benchmark: str) -> int | None:
        """The smallest item cap the suites among ``names`` (as given to ``--benchmark`` or
        ``--suite``, comma lists included: ``quick,safety``) put on ``benchmark``."""
        suites = self.suites()
        caps = [s.limit_for(benchmark) for raw in names for n in raw.split(",") if (s := suites.get(n.strip()))]
        return min((c for c in caps if c is not None), default=None)

    def expand_benchmarks(self, names: Sequence[str]) -> list[str]:
        """Benchmark names with suite names expanded, order kept, duplicates dropped."""
        out: list[str] = []
        bench = self.benchmarks()
        suites = self.suites()
        for raw in names:
            for name in (n.strip() for n in raw.split(",")):
                if not name:
                    continue
                if name in suites:
                    out.extend(suites[name].benchmarks)
                elif name in bench:
                    out.append(bench.get(name).name)
                elif self.pm.hook.orbench_resolve_benchmark(name=name) is not None:
                    out.append(name)  # a name a plugin resolves (a prompt file), kept as typed
                else:
                    raise UnknownNameError("benchmark", name, [*bench.names(with_aliases=True), *suites])
        return list(dict.fromkeys(out))

    def resolve_model(self, name: str) -> ModelSpec:
        """A ModelSpec for an alias, a local directory, a .gguf file or a hub id."""
        spec: ModelSpec | None = self.pm.hook.orbench_resolve_model(name=name)
        if spec is None:
            known = [m.name for m in self.models()]
            raise UnknownNameError("model", name, known)
        return spec

    def models(self) -> list[ModelSpec]:
        """Models known by alias."""
        out: list[ModelSpec] = []
        for specs in self.pm.hook.orbench_list_models():
            out.extend(specs)
        return out

    def create(self, kind: str, name: str, *args: Any) -> Any:
        """Instantiate a component by calling its factory (for a benchmark no plugin
        registered, the factory ``orbench_resolve_benchmark`` gives for its name)."""
        catalog = self._catalog(kind)
        if kind == "benchmarks" and name not in catalog:
            resolved: Callable[..., Any] | None = self.pm.hook.orbench_resolve_benchmark(name=name)
            if resolved is not None:
                return resolved(*args)
        entry: Entry[Any] = catalog.get(name)
        factory: Callable[..., Any] = entry.factory
        return factory(*args)
