"""Value types shared by the core and every plugin.

All values are frozen dataclasses so that they can be hashed into cache keys and passed between
plugins without anyone mutating what another component still reads.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args


class Label(str, enum.Enum):
    """A judge's verdict, in XSTest's three classes (the vocabulary every judge shares)."""

    FULL_COMPLIANCE = "full_compliance"
    FULL_REFUSAL = "full_refusal"
    PARTIAL_REFUSAL = "partial_refusal"

    @property
    def is_refusal(self) -> bool:
        """Full and partial refusals both count as refusing (the safety-score reading)."""
        return self is not Label.FULL_COMPLIANCE


class Capability(str, enum.Enum):
    """What a method needs from a backend; checked before any work starts."""

    WEIGHTS = "weights"
    HOOKS = "hooks"
    LOGITS = "logits"
    TRAINING = "training"


BenchmarkKind = Literal["over_refusal", "safety", "capability"]
Expected = Literal["comply", "refuse"]
Role = Literal["system", "user", "assistant"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: tuple[Dtype, ...] = get_args(Dtype)


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """A chat conversation to be continued by the assistant."""

    messages: tuple[Message, ...]

    @classmethod
    def user(cls, text: str, system: str | None = None) -> Prompt:
        """The common case: one user turn, optionally after a system message."""
        msgs: list[Message] = []
        if system is not None:
            msgs.append(Message("system", system))
        msgs.append(Message("user", text))
        return cls(tuple(msgs))

    def to_json(self) -> list[dict[str, str]]:
        """The shape chat templates and OpenAI clients take."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    @property
    def last_user_text(self) -> str:
        """The text a judge is shown as the question."""
        for m in reversed(self.messages):
            if m.role == "user":
                return m.content
        return ""


@dataclass(frozen=True, slots=True)
class Sample:
    """One benchmark item: a prompt with the behaviour a well-calibrated model should show."""

    id: str
    prompt: str
    expected: Expected
    meta: Mapping[str, Any] = field(default_factory=dict)

    def as_prompt(self, system: str | None = None) -> Prompt:
        """The chat prompt sent to the model."""
        return Prompt.user(self.prompt, system)


@dataclass(frozen=True, slots=True)
class GenParams:
    """Generation settings; part of every generation's cache key."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        """Temperature 0 means greedy decoding, as in every method's released code."""
        return self.temperature == 0.0


@dataclass(frozen=True, slots=True)
class Completion:
    """What a model produced for one prompt."""

    text: str
    n_prompt_tokens: int = 0
    n_new_tokens: int = 0
    finish_reason: Literal["stop", "length"] = "stop"
    truncated_prompt: bool = False


@dataclass(frozen=True, slots=True)
class JudgeItem:
    """A (question, response) pair to classify."""

    prompt: str
    response: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's answer. ``label`` is None when the judge's output could not be parsed."""

    label: Label | None
    raw: str = ""

    @property
    def parsed_ok(self) -> bool:
        """Unparsed verdicts are counted and reported, never guessed."""
        return self.label is not None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Where a model comes from, pinned enough to be a cache key.

    ``source`` is a hub id, a local directory or a ``.gguf`` file. ``revision`` pins the
    weights *and* the chat template (they ship together), so rendered prompts need not be part
    of a cache key and a finished run can be recognised without loading the model.
    """

    name: str
    source: str
    revision: str = "main"
    gguf_file: str | None = None
    chat_template: str | None = None
    dtype: Dtype = "auto"
    adapter: str | None = None
    adapter_revision: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> dict[str, Any]:
        """The fields that determine a model's outputs, for cache keys.

        A GGUF model is identified by its file name and revision alone, so the same embedded
        model installed in two virtual environments shares cache entries."""
        return {
            "source": None if self.gguf_file else self.source,
            "revision": self.revision,
            "gguf_file": self.gguf_file,
            "chat_template": self.chat_template,
            "dtype": self.dtype,
            # an adapter is identified by its content hash when known, not where it is installed
            "adapter": self.adapter_revision or self.adapter,
        }


@dataclass(frozen=True, slots=True)
class DataFile:
    """A data file a benchmark read, with its hash for run.json."""

    path: str
    sha256: str
