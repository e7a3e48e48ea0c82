"""The shape every built-in reporter shares, written once.

Each reporter renders the same leaderboard data (``tables.build_report``) into its own format,
takes one option (``ci``: bootstrap intervals) and registers itself from its own module, so
``ORBENCH_DISABLE_PLUGINS=orbench_reports.html`` still blocks exactly one reporter. A reporter
module therefore defines only what differs: its name, summary, aliases and ``render_report``,
and binds its hook with ``orbench_register_reporters = registration(TheReporter)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, TypeVar

from orbench_harness.catalog import Register
from orbench_harness.errors import HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.runs import RunRecord
from orbench_reports.tables import Report, build_report

R = TypeVar("R", bound="LeaderboardReporter")


class LeaderboardReporter:
    """Renders runs through the leaderboard report; subclasses write ``render_report``."""

    name: str
    summary: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, ci: bool = False) -> None:
        self.ci = ci

    def render(self, runs: Sequence[RunRecord]) -> str:
        """The report's text for ``runs``."""
        return self.render_report(build_report(runs, ci=self.ci))

    def render_report(self, report: Report) -> str:
        """The format's text of a built report."""
        raise NotImplementedError

    @classmethod
    def create(cls: type[R], args: Mapping[str, str]) -> R:
        """Factory for the registry: ``ci=1`` (``--ci``) adds intervals, any other argument is an error."""
        return cls(ci=ci_option(cls.name, args))


def ci_option(reporter: str, args: Mapping[str, str]) -> bool:
    """A reporter factory's arguments: only ``ci`` (``--ci``), true for 1/true/yes."""
    unknown = sorted(set(args) - {"ci"})
    if unknown:
        raise HarnessError(f"reporter {reporter!r} takes only 'ci' (got {', '.join(unknown)})")
    return str(args.get("ci", "")).lower() in ("1", "true", "yes")


def registration(reporter: type[LeaderboardReporter]) -> Callable[[Register], None]:
    """The module's ``orbench_register_reporters`` hook for ``reporter``."""

    @hookimpl
    def orbench_register_reporters(register: Register) -> None:
        register(reporter.name, reporter.create, summary=reporter.summary, aliases=reporter.aliases)

    orbench_register_reporters.__doc__ = f"Register ``{reporter.name}``."
    return orbench_register_reporters
