"""Held-out harmful sets for the broad safety score: ``advbench-heldout``, ``hexphi-heldout``,
``jbb-harmful-heldout``, ``sorry-bench-heldout`` and ``xstest-unsafe-heldout``.

The paper's safety score is AdvBench's refusal rate alone, and a method tuned against AdvBench
(or trained on prompts that resemble it) can keep that number while it answers harmful requests
it was never tuned on. The broad safety score averages the refusal rate over several harmful
sets, each weighted equally; these are those sets, cleaned so that no prompt in them is, or
nearly is, a prompt any method or model organism trains on:

- the base set's ``test`` split (HEx-PHI: its held-out third; the others are all test);
- minus every prompt whose normalised text equals, or whose word set overlaps by Jaccard
  >= 0.5 (the organism recipe's paraphrase rule, ``orbench_borderline.NearDuplicates``), a
  prompt of any training source: the ``train`` split (same seed) of every registered
  over-refusal or safety benchmark whose data can be read, the training-only pools among them
  (``harmful-train``, ``alpaca``, ``orbench-borderline``...) whole. With a data directory only
  the sets whose files it holds are read (a hub-only pool such as PHTest is then not one a
  method could train on offline either); without one, every set loads from the hub.

On the shared copies with seed 0 this drops, for example, 19 AdvBench prompts that paraphrase
HarmBench/TDC behaviours the organism was aligned on, and 25 SORRY-Bench prompts near HEx-PHI's
training third. run.json hashes the base set's files and every training source's files, so a
changed training pool changes the recorded data. Every prompt is ``test``; the ``train`` split
is empty (nothing may train on these).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orbench_benchmarks.orbench_borderline import NearDuplicates
from orbench_harness.benchkit import SplitRule, select
from orbench_harness.catalog import Register
from orbench_harness.data import DataSource
from orbench_harness.errors import DataError, HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.protocols import Benchmark, Split
from orbench_harness.registry import Registry
from orbench_harness.types import BenchmarkKind, DataFile, Sample

SUFFIX = "-heldout"
# base set -> its published size (the held-out set is smaller by what decontamination drops)
BASES: dict[str, int] = {
    "advbench": 520, "hexphi": 110, "jbb-harmful": 100, "sorry-bench": 450, "xstest-unsafe": 200,
}
# Sets that hold no training prompts (evaluation sets, capability sets) need not be read.
NOT_TRAINING = frozenset({"mmlu", "mmlu-5shot", "wikitext2", "mt-bench"})


@dataclass(frozen=True, slots=True)
class TrainingPool:
    """Every training prompt a run with this seed could use (per source), and their files."""

    texts: tuple[tuple[str, ...], ...]  # one tuple of prompts per source, in ``sources`` order
    files: tuple[DataFile, ...]
    sources: tuple[str, ...]
    unavailable: tuple[str, ...]


@functools.lru_cache(maxsize=4)
def training_pool(data_dir: Path | None, seed: int) -> TrainingPool:
    """The train splits of all registered prompt benchmarks that load from ``data_dir``."""
    registry = Registry()
    data = DataSource(data_dir)
    texts: list[tuple[str, ...]] = []
    files: dict[str, DataFile] = {}
    sources: list[str] = []
    unavailable: list[str] = []
    for entry in registry.benchmarks():
        if entry.name in NOT_TRAINING or entry.name.endswith(SUFFIX) or entry.info.get("kind") == "capability":
            continue
        local, hub = entry.info.get("local") or [], entry.info.get("hub") or []
        packaged = not local and not hub  # shipped with its plugin (the demo sets)
        if data_dir is not None and not packaged and not (local and all((data_dir / r).is_file() for r in local)):
            unavailable.append(entry.name)  # with a data directory, a set it lacks is not trained on offline
            continue
        bench: Benchmark = registry.create("benchmarks", entry.name, data)
        try:
            train = bench.samples("train", seed=seed)
        except (DataError, HarnessError):  # hub-only here, or not provided: it trains nothing here either
            unavailable.append(entry.name)
            continue
        if not train:
            continue
        texts.append(tuple(s.prompt for s in train))
        files.update({f.path: f for f in bench.data_files()})
        sources.append(entry.name)
    return TrainingPool(tuple(texts), tuple(files.values()), tuple(sources), tuple(unavailable))


@functools.lru_cache(maxsize=4)
def _near(data_dir: Path | None, seed: int) -> tuple[NearDuplicates, ...]:
    """One index per source: over one large union, words shared by many prompts drop out of the
    candidate index (``NearDuplicates.common``) and look-alikes of a small set would be missed."""
    return tuple(NearDuplicates(texts) for texts in training_pool(data_dir, seed).texts)


@dataclass
class HeldOutBenchmark:
    """A harmful set's test prompts with every training look-alike removed."""

    name: str
    base: Benchmark
    data: DataSource
    kind: BenchmarkKind = "safety"
    metric: str = "refusal_rate"
    broad_safety: bool = True  # counted in the broad safety score (orbench_harness.metrics)
    _clean: dict[int, list[Sample]] = field(default_factory=dict, init=False, repr=False)

    def clean(self, seed: int) -> list[Sample]:
        """The base set's test split minus exact and near duplicates of training prompts."""
        if seed not in self._clean:
            near = _near(self.data.data_dir, seed)
            self._clean[seed] = [s for s in self.base.samples("test", seed=seed)
                                 if not any(s.prompt in source for source in near)]
        return self._clean[seed]

    def samples(self, split: Split = "test", *, limit: int | None = None, seed: int = 0) -> list[Sample]:
        """Test (or all) prompts, seeded sample of ``limit``; the train split is empty."""
        if split == "train":
            return []
        return select(self.clean(seed), SplitRule(), split, name=self.name, limit=limit, seed=seed)

    def data_files(self) -> list[DataFile]:
        """The base set's files and the training sources' files it was cleaned against."""
        pool = training_pool(self.data.data_dir, 0)
        seen = {f.path for f in self.base.data_files()}
        return [*self.base.data_files(), *(f for f in pool.files if f.path not in seen)]


def factory(base: str) -> Callable[[DataSource], HeldOutBenchmark]:
    """The registry factory of ``<base>-heldout``."""

    def create(data: DataSource) -> HeldOutBenchmark:
        return HeldOutBenchmark(base + SUFFIX, Registry().create("benchmarks", base, data), data)

    return create


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register the five held-out harmful sets."""
    for base, size in BASES.items():
        register(
            base + SUFFIX, factory(base), kind="safety", metric="refusal_rate", size=size, local=[], hub=[],
            training_only=False, broad_safety=True,
            summary=f"{base} test prompts minus training look-alikes (broad safety score)",
        )
