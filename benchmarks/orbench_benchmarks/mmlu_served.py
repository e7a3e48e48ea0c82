"""MMLU for a served model (``--backend openai``), which has no tokenizer or logits here.

Two protocols, the first the endpoint allows, recorded in the results as ``protocol``:

- ``next-token-logprobs``: the same raw-text prompt as the ``hf`` path, sent to the completions
  endpoint for one token with the top 20 log-probabilities (vLLM and llama.cpp give them); the
  prediction is the letter among ``" A"`` .. ``" D"`` with the highest log-probability as the
  next token, the same choice the ``hf`` path's log-likelihood makes when each letter is one
  token (as it is in the tokenizers we tried). A letter outside the top 20 is less likely than
  every letter in it; a question with no letter in it has no prediction and counts as wrong
  (``no_letter`` says how many). llama.cpp reports nothing when the end of text is the
  likeliest next token (it stops first); such a question is asked again with the letters
  forced as the generated token, which llama.cpp allows and which leaves the reported
  log-probabilities the model's own.
- ``generated-letter``: where the endpoint has no such log-probabilities (chat-only
  providers), the prompt is sent as one user turn and the first standalone letter A-D of the
  answer (greedy, a few tokens) is the prediction; an answer without one is wrong and counted
  as ``unparsed``. This is a different measurement from the log-probability one (it also tests
  following the format), so the protocol is part of the result and of the cache key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from orbench_harness.protocols import EvalContext, Policy
from orbench_harness.types import GenParams, Prompt

LETTERS = ("A", "B", "C", "D")
LETTER_TOKENS = 8
CHUNK = 32  # questions per round of requests
_LETTER = re.compile(r"\b([ABCD])\b")


@runtime_checkable
class NextTokenScorer(Protocol):
    """A policy that gives next-token log-probabilities of raw text (a served model)."""

    no_text_logprobs: str | None

    def next_token_logprobs(self, contexts: Sequence[str], candidates: Sequence[str] = ()
                            ) -> list[dict[str, float]] | None:
        """Per context, the likeliest next tokens and their log-probabilities (``candidates``
        among them where the server can be made to report them); None if unavailable."""
        ...


def first_letter(text: str) -> int | None:
    """Index of the first standalone letter A-D in a generated answer, or None."""
    m = _LETTER.search(text)
    return LETTERS.index(m.group(1)) if m else None


def best_letter(scores: Sequence[float | None]) -> int | None:
    """Index of the likeliest letter among those scored (the first on ties), or None."""
    scored = [(s, -i) for i, s in enumerate(scores) if s is not None]
    return -max(scored)[1] if scored else None


def predict(policy: Policy, texts: Sequence[str], keys: Sequence[str], ctx: EvalContext,
            ) -> tuple[list[int | None], str, str | None]:
    """Per question the predicted answer index, the protocol used and, for ``generated-letter``,
    why log-probabilities were unavailable. Answers are cached per question and protocol."""
    if isinstance(policy, NextTokenScorer):
        scores = _cached(ctx, keys, "next-token-logprobs", lambda todo: _letter_logprobs(policy, [texts[i]
                                                                                                  for i in todo]))
        if scores is not None:
            return [best_letter(s) for s in scores], "next-token-logprobs", None
        reason = policy.no_text_logprobs
    else:
        reason = "the policy scores no text"
    letters = _cached(ctx, keys, "generated-letter", lambda todo: _letters(policy, [texts[i] for i in todo], ctx))
    assert letters is not None  # generation has no unavailable case
    return [first_letter(a[0]) if a else None for a in letters], "generated-letter", reason


def _letter_logprobs(policy: NextTokenScorer, texts: list[str]) -> list[list[Any]] | None:
    tops = policy.next_token_logprobs(texts, [f" {ltr}" for ltr in LETTERS])
    if tops is None:
        return None
    return [[top.get(f" {ltr}") for ltr in LETTERS] for top in tops]


def _letters(policy: Policy, texts: list[str], ctx: EvalContext) -> list[list[Any]]:
    comps = policy.generate([Prompt.user(t) for t in texts], GenParams(max_new_tokens=LETTER_TOKENS, seed=ctx.seed))
    return [[c.text] for c in comps]


def _cached(ctx: EvalContext, keys: Sequence[str], protocol: str, compute: Any) -> list[list[Any]] | None:
    """Values per question from the cache, the rest from ``compute(indices)`` (None: unavailable)."""
    full = [f"{k}/served/{protocol}" for k in keys]
    out: list[list[Any] | None] = []
    for key in full:
        hit = ctx.kv.get(key)
        out.append(list(hit["values"]) if isinstance(hit, dict) else None)
    todo = [i for i, v in enumerate(out) if v is None]
    done = len(keys) - len(todo)
    ctx.progress(done, len(keys))
    for start in range(0, len(todo), CHUNK):  # saved as it goes: a stopped run keeps its answers
        chunk = todo[start: start + CHUNK]
        fresh = compute(chunk)
        if fresh is None:
            return None
        for i, values in zip(chunk, fresh, strict=True):
            ctx.kv.put(full[i], {"values": values})
            out[i] = values
        done += len(chunk)
        ctx.progress(done, len(keys))
    return [v if v is not None else [] for v in out]
