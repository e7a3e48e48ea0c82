"""A soft prompt placed as the chat template's system message, fed through ``inputs_embeds``.

How the insertion works (DRO's generation, Zheng et al. 2024, places trained vectors where
the system prompt's tokens would be; their code adds new special tokens, we feed embeddings):

1. The prompt is rendered by the model's own chat template with a placeholder system message
   (``MARKER``; ``self_cd.with_safety`` puts it as, or in front of, the system message, or in
   front of the user's text for templates without a system role -- ``placement=auto`` probes
   which).
2. The rendered text is split at the marker and the pieces are tokenised separately; the row
   is ``ids(before) + slots + ids(after)``, where slot ``i`` is the negative id ``-(i + 1)``.
   Negative ids cannot collide with a vocabulary entry, so any code that sees the row (the
   length-sorted batching, MMLU's context truncation) keeps the slots in place.
3. Embeddings: the model's input embedding layer on the row (slots clamped to id 0), then
   every slot position replaced by its soft-prompt vector; the model runs on
   ``inputs_embeds`` with position ids from the attention mask (left padding), and
   ``model.generate(inputs_embeds=...)`` decodes with its KV cache.

Tokenising the pieces separately equals tokenising the whole text when the template's
boundaries around the system text are token boundaries (ChatML, Llama-2: a newline or special
token on each side). The tests check the whole path: with the soft prompt set to the
embeddings of a text, generation and token log-probabilities equal those with that text as a
real system message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from orbench_harness.backends.chat import supports_system
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.activations import last_positions
from orbench_harness.methodkit.decoding import generate_batched
from orbench_harness.methodkit.safety_text import with_safety
from orbench_harness.protocols import OnBatch
from orbench_harness.types import Completion, GenParams, Prompt

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

MARKER = "<<orbench-soft-prompt>>"
Placement = Literal["auto", "system", "user"]


def slot_ids(n: int) -> list[int]:
    """The ids standing for soft-prompt vectors 0..n-1."""
    return [-(i + 1) for i in range(n)]


class SoftTemplate:
    """Renders prompts with the soft prompt's slots where the system message goes."""

    def __init__(self, hf: HFModel, n_slots: int, placement: Placement = "auto") -> None:
        self.hf = hf
        self.n_slots = n_slots
        self._placement = placement
        self._where: Literal["system", "user"] | None = None

    @property
    def where(self) -> Literal["system", "user"]:
        """The system role if the template renders a system message, else the user turn."""
        if self._where is None:
            if self._placement != "auto":
                self._where = self._placement
            else:
                self._where = "system" if supports_system(self.hf.tokenizer) else "user"
        return self._where

    @staticmethod
    def with_text(prompt: Prompt, text: str | None, where: Literal["system", "user"]) -> Prompt:
        """The prompt with ``text`` as its system message (or in front of the user's text)."""

        return prompt if text is None else with_safety(prompt, text, where)

    def text_prompt(self, prompt: Prompt, text: str | None) -> Prompt:
        """The same placement with a real text (the base states, the equivalence test)."""
        return self.with_text(prompt, text, self.where)

    def render(self, prompt: Prompt) -> str:
        """The chat rendering with the marker where the soft prompt goes."""
        return self.hf.render(self.with_text(prompt, MARKER, self.where))

    def encode(self, text: str) -> list[int]:
        """Token ids, with the slots wherever the marker occurs."""
        pieces = text.split(MARKER)
        ids = self.hf.encode(pieces[0])
        for piece in pieces[1:]:
            ids += slot_ids(self.n_slots) + self.hf.encode(piece)
        return ids

    def row(self, prompt: Prompt) -> list[int]:
        """The prompt's token row with the slots in place."""
        row = self.encode(self.render(prompt))
        if not any(t < 0 for t in row):
            raise HarnessError("the chat template dropped the soft prompt's placeholder; try placement=user")
        return row


def embed(hf: HFModel, ids: torch.Tensor, soft: torch.Tensor | None) -> torch.Tensor:
    """Input embeddings of ``ids`` with slot positions replaced by rows of ``soft``."""
    import torch

    base: torch.Tensor = hf.model.get_input_embeddings()(ids.clamp(min=0))
    slots = ids < 0
    if soft is None or not bool(slots.any()):
        return base
    index = (-ids - 1).clamp(min=0, max=soft.shape[0] - 1)
    return torch.where(slots[..., None], soft.to(base.dtype)[index], base)


def last_states(hf: HFModel, rows: Sequence[list[int]], soft: torch.Tensor | None, *,
                grad: bool = False) -> torch.Tensor:
    """Last-layer state (the decoder's output, final norm included) at each row's last token.

    Right-padded (``HFModel.right_pad``): DRO trains through this forward, and left padding's
    fully masked pad rows are what gave ACTOR NaN gradients in bfloat16 on a GPU."""
    import torch


    ids, mask = hf.right_pad(list(rows))
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.set_grad_enabled(grad):
        out = hf.model.get_decoder()(inputs_embeds=embed(hf, ids, soft), attention_mask=mask,
                                     position_ids=pos, use_cache=False)
    index = last_positions(mask, 1)[:, 0]
    last: torch.Tensor = out.last_hidden_state[torch.arange(len(index), device=index.device), index]
    return last.float()


def generate(hf: HFModel, rows: Sequence[list[int]], soft: torch.Tensor, params: GenParams, *,
             batch_size: int = 8, on_batch: OnBatch | None = None) -> list[Completion]:
    """Batched, left-padded generation from slot rows (length-sorted, like the hf backend)."""
    import torch


    def decode(batch: list[tuple[list[int], ...]], p: GenParams, start: int) -> list[list[int]]:
        ids, mask = hf.left_pad([b[0] for b in batch])
        if not p.greedy:
            torch.manual_seed(p.seed + start)  # as HFModel.generate_ids seeds its batches
        with torch.inference_mode():
            out = hf.model.generate(
                inputs_embeds=embed(hf, ids, soft), attention_mask=mask, max_new_tokens=p.max_new_tokens,
                do_sample=not p.greedy, temperature=p.temperature if not p.greedy else None,
                top_p=p.top_p if not p.greedy else None, top_k=None,
                pad_token_id=hf.tokenizer.pad_token_id, eos_token_id=hf._eos_ids,
            )
        new: list[list[int]] = out.tolist()  # with inputs_embeds only, generate returns the new tokens
        return new

    return generate_batched(hf, [(list(r),) for r in rows], params, decode, batch_size=batch_size, on_batch=on_batch)


def token_logprobs(hf: HFModel, sequences: Sequence[Sequence[int]], soft: torch.Tensor,
                   batch_size: int = 8) -> list[list[float]]:
    """log p(t_i | t_<i) with slots embedded as the soft prompt; a slot itself gets 0.0 (it is
    given context, not a predicted token)."""
    import torch

    pad = hf.tokenizer.pad_token_id
    rows = [list(s) for s in sequences]

    def run(a: int, b: int) -> list[list[float]]:
        chunk = rows[a:b]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, s in enumerate(chunk):
            ids[j, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[j, : len(s)] = 1
        ids, mask = ids.to(hf.device), mask.to(hf.device)
        scored = []
        with torch.inference_mode():
            logits = hf.model(inputs_embeds=embed(hf, ids, soft), attention_mask=mask).logits
            for j, s in enumerate(chunk):  # row by row, as HFModel.score_batch: no batch-wide float32 copy
                n = max(len(s) - 1, 0)
                z = logits[j, :n].float()
                target = ids[j, 1 : n + 1]
                picked = z.gather(-1, target.clamp(min=0)[:, None]).squeeze(-1) - torch.logsumexp(z, dim=-1)
                scored.append(torch.where(target < 0, torch.zeros_like(picked), picked).tolist())
        return scored

    return [lp for _, _, part in hf.batches([len(r) for r in rows], batch_size, run, "scoring") for lp in part]
