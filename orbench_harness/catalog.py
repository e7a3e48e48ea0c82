"""The register callback that catalogue hooks receive, and the typed catalogue it fills.

pluggy is the only registry: a catalogue is rebuilt from the hooks each time it is asked for,
so there is no second, global string table that can drift from the plugins actually loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from orbench_harness.errors import HarnessError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """One registered component: its factory is called only when the component is used."""

    name: str
    factory: Callable[..., T]
    summary: str
    aliases: tuple[str, ...]
    plugin: str
    info: dict[str, Any]


class Register(Protocol):
    """The callback a catalogue hook calls once per component."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        summary: str = "",
        aliases: Sequence[str] = (),
        **info: Any,
    ) -> None:
        """Register ``factory`` under ``name`` (and ``aliases``)."""
        ...


class SuiteRegister(Protocol):
    """The callback ``orbench_register_suites`` calls once per suite."""

    def __call__(
        self,
        name: str,
        benchmarks: Sequence[str],
        *,
        summary: str = "",
        limits: Mapping[str, int] | None = None,
    ) -> None:
        """Register a named list of benchmarks; ``limits`` caps items per benchmark
        (key ``"*"`` for all) so a suite such as ``quick`` can be a fixed small sample."""
        ...


class Catalog(Generic[T]):
    """Components of one kind, looked up by name or alias with did-you-mean errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._current_plugin = "?"

    def callback_for(self, plugin: str) -> Register:
        """A ``register`` callback that records which plugin registered each entry."""

        def register(
            name: str,
            factory: Callable[..., Any],
            *,
            summary: str = "",
            aliases: Sequence[str] = (),
            **info: Any,
        ) -> None:
            self.add(Entry(name, factory, summary, tuple(aliases), plugin, dict(info)))

        return register

    def add(self, entry: Entry[T]) -> None:
        """Add an entry; a name or alias used twice is a plugin conflict, reported loudly."""
        for n in (entry.name, *entry.aliases):
            if n in self._entries or n in self._aliases:
                owner = self._entries.get(n) or self._entries[self._aliases[n]]
                raise HarnessError(
                    f"{self.kind} name {n!r} registered by both {owner.plugin} and {entry.plugin}"
                )
        self._entries[entry.name] = entry
        for a in entry.aliases:
            self._aliases[a] = entry.name

    def get(self, name: str) -> Entry[T]:
        """The entry for a name or alias, or an UnknownNameError with suggestions."""
        canonical = self._aliases.get(name, name)
        try:
            return self._entries[canonical]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names(with_aliases=True)) from None

    def names(self, *, with_aliases: bool = False) -> list[str]:
        """Registered names, sorted."""
        out = list(self._entries)
        if with_aliases:
            out += list(self._aliases)
        return sorted(out)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)
