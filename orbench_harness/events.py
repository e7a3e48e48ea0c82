"""Lifecycle event payloads: one frozen dataclass per event.

Hook implementations receive a single event object, so fields can be added later without
breaking any plugin that implements the hook (the pattern inspect_ai uses for its hooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbench_harness.types import Label


@dataclass(frozen=True, slots=True)
class RunStart:
    """A run is about to start work (after names were resolved and validated)."""

    run_dir: Path
    model: str
    method: str
    benchmarks: tuple[str, ...]
    judge: str


@dataclass(frozen=True, slots=True)
class SampleJudged:
    """One sample received a verdict (from the judge or the cache)."""

    run_dir: Path
    benchmark: str
    sample_id: str
    label: Label | None
    cached: bool


@dataclass(frozen=True, slots=True)
class RunEnd:
    """A run finished and results.json was written."""

    run_dir: Path
    results: dict[str, Any]
    seconds: float
