"""``safety-reminder``: a safety system prompt in front of every conversation, the reference
row for prompt-only defences.

Over-refusal papers report the model with a safety system prompt beside the bare model (the
Llama-2 default system prompt is the classic case: it makes the model refuse far more safe
prompts); a method that reduces over-refusal should be compared with both. The method changes
nothing but the conversation, so it needs no capability and runs on every backend, ``openai``
included, where weight and hook methods cannot.

- The default text is the harness's safety text (``methodkit.safety_text.SAFETY_PROMPT``, our
  wording after Llama-2's default system prompt, the one Self-CD and DRO start from);
  ``--method-arg text=...`` replaces it.
- It goes in the system role, merged in front of a system message the prompt already has. A
  chat template without a system role gets it folded into the first user turn by the ``hf``
  and ``vllm`` backends (``backends.chat.render``); a server applies its own template.
- Raw-text scoring (MMLU's log-likelihood, perplexity) is passed through unchanged: those read
  text without a chat wrapper, so there is no conversation to put a system prompt in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from orbench_harness.catalog import Register
from orbench_harness.errors import HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodkit.safety_text import SAFETY_PROMPT, with_safety
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, OnBatch, Policy
from orbench_harness.types import Capability, Completion, GenParams, Prompt


class Reminded:
    """The loaded model seen through the safety system prompt. Generation and chat rendering
    get the reminder; everything else (``token_logprobs``, ``encode``, ``max_length``, a served
    model's ``scoring_unavailable``) is the model's own, so capability benchmarks behave as
    they do under ``none``."""

    def __init__(self, model: ModelHandle, text: str) -> None:
        self._model = model
        self._text = text

    def remind(self, prompt: Prompt) -> Prompt:
        """The prompt with the reminder as (the start of) its system message."""
        return with_safety(prompt, self._text, "system")

    def generate(self, prompts: Sequence[Prompt], params: GenParams, *, batch_size: int = 8,
                 on_batch: OnBatch | None = None) -> list[Completion]:
        """The model's generation on the reminded prompts (indices and order unchanged)."""
        return self._model.generate([self.remind(p) for p in prompts], params, batch_size=batch_size,
                                    on_batch=on_batch)

    def render(self, prompt: Prompt) -> str:
        """The model's chat rendering of the reminded prompt (for chat-formatted scoring)."""
        model: Any = self._model  # a ModelHandle need not render; the hf one does
        text: str = model.render(self.remind(prompt))
        return text

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class SafetyReminder:
    """Adds a fixed safety system prompt; nothing to train."""

    name = "safety-reminder"
    requires: frozenset[Capability] = frozenset()

    def __init__(self, text: str = SAFETY_PROMPT) -> None:
        if not text.strip():
            raise HarnessError("method 'safety-reminder': text must not be empty")
        self.text = text

    def fingerprint(self) -> str:
        """Version plus a hash of the text: another reminder is another method."""
        return "safety-reminder-v1-" + hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def prepare(self, model: ModelHandle, ctx: MethodContext) -> None:
        """Nothing to prepare."""
        return None

    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """The model behind the reminder."""
        yield Reminded(model, self.text)


def create(args: Mapping[str, str], env: MethodEnv | None = None) -> SafetyReminder:
    """Factory: ``--method-arg text='...'`` (default: the harness's safety text)."""
    unknown = set(args) - {"text"}
    if unknown:
        raise HarnessError(f"method 'safety-reminder' has no argument {sorted(unknown)[0]!r} (text)")
    return SafetyReminder(args.get("text", SAFETY_PROMPT))


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``safety-reminder`` (alias ``system-prompt``)."""
    register("safety-reminder", create, summary="a safety system prompt before every prompt (prompt-only baseline)",
             aliases=("system-prompt",))
