"""Component protocols: what a method, judge, benchmark, backend or reporter must provide.

They are ``typing.Protocol`` classes, so a plugin never imports a base class from us to be a
valid component; mypy checks the shape, and ``runtime_checkable`` lets the registry reject a
factory that returns the wrong thing with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from orbench_harness.types import (
    BenchmarkKind,
    Capability,
    Completion,
    DataFile,
    GenParams,
    JudgeItem,
    ModelSpec,
    Prompt,
    Sample,
    Verdict,
)

if TYPE_CHECKING:
    from orbench_harness.runs import RunRecord

Split = Literal["train", "test", "all"]
OnBatch = Callable[[list[int], list[Completion]], None]


@runtime_checkable
class Policy(Protocol):
    """A model as benchmarks see it: possibly with a method's intervention active."""

    def generate(
        self,
        prompts: Sequence[Prompt],
        params: GenParams,
        *,
        batch_size: int = 8,
        on_batch: OnBatch | None = None,
    ) -> list[Completion]:
        """Continue every prompt; call ``on_batch(indices, completions)`` as batches finish.

        Implementations may reorder work (length-sorted batches) but ``indices`` always refer
        to positions in ``prompts`` and the returned list is in input order.
        """
        ...


@runtime_checkable
class ScoringPolicy(Policy, Protocol):
    """A policy that also exposes token log-probabilities (MMLU, perplexity)."""

    @property
    def max_length(self) -> int:
        """The model's context length in tokens."""
        ...

    def render(self, prompt: Prompt) -> str:
        """The prompt as the chat template renders it, ready for generation."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens added."""
        ...

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        """For each sequence, log p(token_i | tokens_<i) for i = 1..n-1 (len n-1)."""
        ...


@runtime_checkable
class ModelHandle(Policy, Protocol):
    """A loaded model. The plain handle is the `none` method's policy."""

    spec: ModelSpec
    capabilities: frozenset[Capability]


@runtime_checkable
class Backend(Protocol):
    """Loads models. ``capabilities`` decides which methods may run on it."""

    name: str
    capabilities: frozenset[Capability]

    def load(self, spec: ModelSpec) -> ModelHandle:
        """Load the model the spec names (hub id, local directory or GGUF file)."""
        ...


@dataclass(frozen=True, slots=True)
class MethodContext:
    """What a method's ``prepare`` may use besides the model.

    ``train_samples(benchmark, split)`` returns benchmark samples for training; methods must
    only ask for ``"train"`` splits (the runner enforces it) so test prompts never leak.
    ``artifact_dir`` is a per-(model, fingerprint) directory in the user cache where the
    method stores and later finds its trained artifact.
    """

    seed: int
    artifact_dir: Path
    train_samples: Callable[[str], list[Sample]]
    log: Callable[[str], None] = print
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MethodEnv:
    """What a method factory gets besides its arguments: the model it will run on (for
    per-model defaults), the run's seed, and read access to benchmark *train* splits (so the
    training data can be part of the method's fingerprint)."""

    model: ModelSpec
    seed: int
    train_samples: Callable[[str], list[Sample]]
    data_dir: Path | None = None


@runtime_checkable
class Method(Protocol):
    """An over-refusal mitigation: prepares an artifact, then applies it while evaluating."""

    name: str
    requires: frozenset[Capability]

    def fingerprint(self) -> str:
        """A stable hash of everything that determines the method's effect (its config)."""
        ...

    def prepare(self, model: ModelHandle, ctx: MethodContext) -> Any:
        """Train or compute the artifact (cached by the method under ``ctx.artifact_dir``)."""
        ...

    def apply(self, model: ModelHandle, artifact: Any) -> AbstractContextManager[Policy]:
        """A context in which the returned policy has the intervention active."""
        ...


@runtime_checkable
class Judge(Protocol):
    """Classifies responses into XSTest's three classes; batched."""

    name: str
    version: str

    def preflight(self) -> None:
        """Fail fast (bad API key, missing model) before any generation is spent."""
        ...

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """One verdict per item, in order. Unparsable outputs get ``label=None``."""
        ...


@runtime_checkable
class Benchmark(Protocol):
    """A set of prompts with the behaviour expected of a well-calibrated model."""

    name: str
    kind: BenchmarkKind
    metric: str

    def samples(self, split: Split = "test", *, limit: int | None = None, seed: int = 0) -> list[Sample]:
        """Validated samples of a split; deterministic given ``seed``."""
        ...

    def data_files(self) -> list[DataFile]:
        """The files read (with sha256) so run.json pins the data."""
        ...


class KeyValue(Protocol):
    """The slice of the cache capability benchmarks use for per-item memoisation."""

    def get(self, key: str) -> Any | None:
        """A stored JSON value or None."""
        ...

    def put(self, key: str, value: Any) -> None:
        """Store a JSON value."""
        ...


@dataclass(frozen=True, slots=True)
class EvalContext:
    """What a capability benchmark's ``evaluate`` gets besides the policy."""

    seed: int
    limit: int | None
    batch_size: int
    kv: KeyValue
    key_prefix: Mapping[str, Any]
    progress: Callable[[int, int], None] = lambda done, total: None
    judge: Judge | None = None


@runtime_checkable
class CapabilityBenchmark(Benchmark, Protocol):
    """A benchmark that scores the policy itself instead of judged generations."""

    def evaluate(self, policy: ScoringPolicy, ctx: EvalContext) -> dict[str, Any]:
        """Metric name -> value (plus ``n``), cached per item through ``ctx.kv``."""
        ...


@runtime_checkable
class Reporter(Protocol):
    """Renders finished runs (their run.json + results.json) into a report."""

    name: str

    def render(self, runs: Sequence[RunRecord]) -> str:
        """The report's text (markdown, HTML, CSV or JSON)."""
        ...


def iter_chunks(seq: Sequence[Any], size: int) -> Iterator[tuple[int, Sequence[Any]]]:
    """(start, chunk) pairs; a helper for batching loops."""
    for start in range(0, len(seq), max(1, size)):
        yield start, seq[start : start + size]
