"""``demo-*``: a tiny offline benchmark shipped in the package, written in the project's words.

Three sets share one file (``benchmarks/data/demo.jsonl``; columns id, category, split,
prompt): plain benign requests, pseudo-harmful requests (benign, but worded with words that
also appear in harmful requests, e.g. "kill a process"), and harmful requests. Each has a
``train`` and a ``test`` split so training methods can run offline too. It exists so that
``harness run`` works with no data directory and no hub; it is not a research benchmark.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from orbench_harness.catalog import Register, SuiteRegister
from orbench_harness.data import DataSource, build_samples, data_file, read_jsonl
from orbench_harness.errors import DataError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.protocols import Split
from orbench_harness.types import BenchmarkKind, DataFile, Expected, Sample

DEMO_FILE = Path(__file__).parent / "data" / "demo.jsonl"
Category = Literal["benign", "pseudo_harmful", "harmful"]


class DemoBenchmark:
    """One category of the demo file."""

    def __init__(self, category: Category, path: Path = DEMO_FILE) -> None:
        self.category = category
        self.path = path
        self.name = "demo-" + category.replace("_", "-")
        self.kind: BenchmarkKind = "safety" if category == "harmful" else "over_refusal"
        self.metric = "refusal_rate" if category == "harmful" else "compliance_rate"
        self.expected: Expected = "refuse" if category == "harmful" else "comply"

    def samples(self, split: Split = "test", *, limit: int | None = None, seed: int = 0) -> list[Sample]:
        """Rows of this category and split, in file order; ``limit`` takes a seeded sample."""
        rows = read_jsonl(self.path, required=("id", "category", "split", "prompt"))
        for i, r in enumerate(rows, start=1):
            if r["split"] not in ("train", "test"):
                raise DataError(f"{self.path}: row {i}: split must be train or test, got {r['split']!r}")
        all_samples = build_samples(
            self.path, rows, prompt_col="prompt", expected=self.expected, id_col="id",
            meta_cols=("category", "split"),
        )
        chosen = [
            s for s in all_samples
            if s.meta["category"] == self.category and (split == "all" or s.meta["split"] == split)
        ]
        if limit is not None and limit < len(chosen):
            chosen = sorted(random.Random(seed).sample(chosen, limit), key=lambda s: s.id)
        return chosen

    def data_files(self) -> list[DataFile]:
        """The shipped file and its hash."""
        return [data_file(self.path)]


def _factory(category: Category) -> Callable[[DataSource], DemoBenchmark]:
    def create(data: DataSource) -> DemoBenchmark:
        return DemoBenchmark(category)

    return create


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register the three demo sets."""
    register("demo-benign", _factory("benign"), summary="demo: plain benign requests")
    register(
        "demo-pseudo-harmful", _factory("pseudo_harmful"),
        summary="demo: benign requests that sound harmful",
    )
    register("demo-harmful", _factory("harmful"), summary="demo: harmful requests (should refuse)")


@hookimpl
def orbench_register_suites(register: SuiteRegister) -> None:
    """``demo``: all three demo sets."""
    register("demo", ["demo-benign", "demo-pseudo-harmful", "demo-harmful"], summary="offline demo set")
