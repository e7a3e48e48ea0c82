"""Entry script for the kill tests: the real CLI plus a deliberately slow judge plugin.

The slow judge lets a test kill the process *while judging*; everything else is the code a
user runs. Usage: python tests/_kill_harness.py <harness args...>
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orbench_harness import hookimpl, plugins
from orbench_harness.types import JudgeItem, Verdict
from orbench_judges.strmatch import StrMatchJudge


class SlowJudge(StrMatchJudge):
    """strmatch, one item at a time with a pause (so a kill can land mid-judging)."""

    name = "slow-strmatch"

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        time.sleep(0.15 * len(items))
        return super().judge(items)


class SlowJudgePlugin:
    @hookimpl
    def orbench_register_judges(self, register):  # type: ignore[no-untyped-def]
        register("slow-strmatch", lambda args: SlowJudge())


if __name__ == "__main__":
    original = plugins.get_plugin_manager

    def patched(**kw):  # type: ignore[no-untyped-def]
        pm = original(**kw)
        pm.register(SlowJudgePlugin(), name="slow-judge")
        return pm

    plugins.get_plugin_manager = patched
    import orbench_harness.registry as registry

    registry.get_plugin_manager = patched  # type: ignore[attr-defined]
    from orbench_harness.cli import main

    sys.exit(main(sys.argv[1:]))


def _unused(args: Mapping[str, str]) -> None:
    """(keeps the module importable by pytest's collector without side effects)"""
