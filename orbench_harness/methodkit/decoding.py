"""Step-by-step batched decoding with a KV cache, shared by the logit-level methods.

Self-CD and SafeDecoding both need the next-token logits of *two* model streams at every step
and pick the token themselves, which ``model.generate`` cannot do. Their released code runs
one prompt at a time and (Self-CD) recomputes the whole sequence at each step; here every
stream is a left-padded batch with its own KV cache, so a step costs one token's forward per
stream. Position ids come from the attention mask, so a left-padded row computes the same
logits as the row alone (up to float rounding), which the methods' tests check.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from orbench_harness.errors import HarnessError
from orbench_harness.protocols import OnBatch
from orbench_harness.types import Completion, GenParams

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

# A method's batch decoder: (rows of each stream for the batch, params, batch start) -> new
# token ids per item (may include a final EOS; it is cut when the completion is built).
BatchDecoder = Callable[[list[tuple[list[int], ...]], GenParams, int], list[list[int]]]


class CachedStream:
    """One left-padded batch of prompts, advanced one token at a time with its own KV cache.

    ``adapter`` is entered around every forward pass of this stream; SafeDecoding uses it to
    run the base model with the LoRA expert disabled while a second stream keeps it enabled.
    """

    def __init__(
        self,
        hf: HFModel,
        rows: Sequence[list[int]],
        adapter: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        import torch

        self.hf = hf
        self.adapter = adapter
        ids, self.mask = hf.left_pad(list(rows))
        self.cache_arg = cache_argument(hf.model)
        with torch.inference_mode(), adapter():
            out = hf.forward(ids, self.mask, use_cache=True, logits_to_keep=1)
        self.cache = returned_cache(out)
        self.logits: torch.Tensor = out.logits[:, -1, :].float()

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row (shape [batch]); returns the next-token logits [batch, vocab]."""
        import torch

        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        pos = self.mask.sum(dim=-1, keepdim=True) - 1
        with torch.inference_mode(), self.adapter():
            out = self.hf.model(
                input_ids=tokens.view(-1, 1).to(self.mask.device), attention_mask=self.mask, position_ids=pos,
                use_cache=True, **{self.cache_arg: self.cache},
            )
        self.cache = returned_cache(out)
        self.logits = out.logits[:, -1, :].float()
        return self.logits


def cache_argument(model: Any) -> str:
    """The forward's name for the KV cache: ``cache`` in recent transformers (5.25 here), which
    deprecate ``past_key_values`` and announce its removal in 5.40; ``past_key_values`` before.
    Read off the signature, so every supported version gets the name it knows."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(out: Any) -> Any:
    """The KV cache a forward returned, under either name (see ``cache_argument``)."""
    cache = out.get("cache") if hasattr(out, "get") else None
    return cache if cache is not None else out.past_key_values


def top_p_keep(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail outside the smallest set whose mass reaches ``top_p`` (nucleus), renormalised.

    Works on the last dimension; the most probable entry is always kept."""
    import torch

    if top_p >= 1.0:
        return probs / probs.sum(dim=-1, keepdim=True)
    sorted_p, order = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_p, dim=-1) - sorted_p  # mass strictly above each entry
    sorted_p = torch.where(before < top_p, sorted_p, torch.zeros_like(sorted_p))
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return kept / kept.sum(dim=-1, keepdim=True)


def choose(logits: torch.Tensor, params: GenParams, generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row: argmax when greedy, else temperature + top-p sampling."""
    import torch

    if params.greedy:
        return logits.argmax(dim=-1)
    probs = top_p_keep(torch.softmax(logits / params.temperature, dim=-1), params.top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def make_generator(hf: HFModel, params: GenParams, start: int) -> torch.Generator | None:
    """A per-batch seeded generator (None when greedy), seeded like the hf backend's batches."""
    import torch

    if params.greedy:
        return None
    return torch.Generator(device=hf.device).manual_seed(params.seed + start)


def generate_batched(
    hf: HFModel,
    items: Sequence[tuple[list[int], ...]],
    params: GenParams,
    decode: BatchDecoder,
    *,
    batch_size: int = 8,
    on_batch: OnBatch | None = None,
) -> list[Completion]:
    """Length-sorted batches of items (one token row per stream), prompts truncated from the
    left to fit ``max_new_tokens``, ``on_batch`` called as batches finish, results in input
    order. The completion reports the *first* stream's prompt length. A batch that runs out
    of accelerator memory is retried in halves, as the backend's own generation is (Self-CD
    decodes two streams per prompt, so it meets the limit at half the batch)."""
    budget = hf.max_length - params.max_new_tokens
    if budget <= 0:
        raise HarnessError(f"--max-new-tokens {params.max_new_tokens} exceeds the context")
    order = sorted(range(len(items)), key=lambda i: -max(len(r) for r in items[i]))
    streams = [tuple(r[-budget:] for r in items[i]) for i in order]
    truncated = [any(len(r) > budget for r in items[i]) for i in order]
    results: list[Completion | None] = [None] * len(items)
    for start, stop, new in hf.batches([max(len(r) for r in s) for s in streams], batch_size,
                                       lambda a, b: decode(streams[a:b], params, a),
                                       f"generating {params.max_new_tokens} tokens for",
                                       "lower --max-new-tokens, pass a smaller --dtype, or use a larger device",
                                       unit="prompt"):
        idx = order[start:stop]
        comps = [completion(hf, rows[0], n, t)
                 for rows, n, t in zip(streams[start:stop], new, truncated[start:stop], strict=True)]
        for i, c in zip(idx, comps, strict=True):
            results[i] = c
        if on_batch is not None:
            on_batch(idx, comps)
    return [c for c in results if c is not None]


def completion(hf: HFModel, prompt_ids: list[int], new_ids: list[int], truncated: bool) -> Completion:
    """The backend's own completion builder (cut at EOS, decoded), so texts match ``none``'s."""
    return hf._completion(prompt_ids, new_ids, truncated)


def eos_tensor(hf: HFModel) -> torch.Tensor:
    """The model's EOS ids on its device."""
    import torch

    return torch.tensor(hf._eos_ids, device=hf.device)


def take_step(tok: torch.Tensor, done: torch.Tensor, out: list[list[int]], eos: torch.Tensor,
              pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step's bookkeeping, shared by the step-by-step decoders: finished rows get
    the pad token, unfinished rows keep theirs in ``out``; returns (tokens to feed, done)."""
    import torch

    tok = torch.where(done, torch.full_like(tok, pad_id), tok)
    for j, t in enumerate(tok.tolist()):
        if not done[j]:
            out[j].append(t)
    return tok, done | torch.isin(tok, eos)
