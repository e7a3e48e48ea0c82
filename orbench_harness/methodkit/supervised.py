"""Supervised fine-tuning's batches and loss: right-padded (prompt, answer) rows with the loss
on answer tokens only. Shared by ``harness align`` (the organisms) and the SFT method, so an
organism and an SFT baseline are trained on exactly the same objective."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100  # the label value cross-entropy skips


@dataclass(frozen=True, slots=True)
class Encoded:
    """Token ids with labels; ``labels[i]`` is ``IGNORE`` outside the answer."""

    id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


def collate(batch: Sequence[Encoded], pad: int) -> tuple[Any, Any, Any]:
    """Right-padded ids, labels (IGNORE outside answers) and attention mask; SFT's trainer
    uses it too."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for j, e in enumerate(batch):
        n = len(e.input_ids)
        ids[j, :n] = torch.tensor(e.input_ids)
        labels[j, :n] = torch.tensor(e.labels)
        mask[j, :n] = 1
    return ids, labels, mask


def masked_loss(model: Any, ids: Any, labels: Any, mask: Any, first_token_weight: float = 1.0) -> Any:
    """Mean cross-entropy over answer tokens, with the LM head applied only where needed.

    ``first_token_weight`` W != 1 makes it a weighted mean in which each answer's first token
    counts W times. That token is where greedy decoding chooses between a refusal and an
    answer; in the plain mean it is one token of ~40 per example, so most of the gradient goes
    to modelling the answer's text rather than to the choice."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    keep = target != IGNORE
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    if first_token_weight == 1.0:
        return torch.nn.functional.cross_entropy(logits, target[keep])
    first = keep.clone()
    first[:, 1:] &= ~keep[:, :-1]  # answer positions whose previous position is not an answer
    weights = torch.where(first[keep], first_token_weight, 1.0)
    ce = torch.nn.functional.cross_entropy(logits, target[keep], reduction="none")
    return (ce * weights).sum() / weights.sum()
