"""Activation utilities shared by the representation methods (ACTOR, SCANS, Surgical).

Positions: the "last post-instruction token" is the last token of the prompt rendered with the
chat template's assistant prefix (``[/INST]`` for Llama-2, ``<|im_start|>assistant\\n`` for
ChatML models). Prompts are left-padded, so it is position -1 of every row.

Layers: ``layer`` is a 0-based decoder-block index and "the activation at layer l" is the
output of block l (the residual stream after it), read by a hook on the block: that is
``hidden_states[l + 1]`` for every block but the last, whose entry there is the final norm's
output instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import CapabilityError, HarnessError
from orbench_harness.protocols import ModelHandle
from orbench_harness.types import Prompt, Sample

if TYPE_CHECKING:
    import torch


class HFDelegate:
    """Base of the policies that change only generation (SCANS, Self-CD, Safe-Decoding): the
    context length, rendering and tokenisation are the wrapped model's own."""

    hf: HFModel

    @property
    def max_length(self) -> int:
        """The model's context length."""
        return self.hf.max_length

    def render(self, prompt: Prompt) -> str:
        """The chat template's rendering (unchanged by the method)."""
        return self.hf.render(prompt)

    def encode(self, text: str) -> list[int]:
        """Token ids without special tokens added."""
        return self.hf.encode(text)


class StopForward(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


def require_hf(model: ModelHandle, method: str) -> HFModel:
    """The HF handle, or a clear error for backends without hooks/weights access."""
    if not isinstance(model, HFModel):
        raise CapabilityError(f"method {method!r} needs the hf backend (got {type(model).__name__})")
    return model


def encode_all(model: HFModel, prompts: Sequence[Prompt]) -> list[list[int]]:
    """Rendered and tokenised prompts."""
    return [model.encode_prompt(p) for p in prompts]


def block_output_last_token(
    model: HFModel, rows: Sequence[list[int]], layer: int, *, grad: bool = False
) -> torch.Tensor:
    """Output of block ``layer`` at the last token, [batch, d]; the forward stops there.

    Stopping after the target block is what makes ACTOR cheap: layers above it are never run.
    """
    return block_output_tail(model, rows, layer, 1, grad=grad)[:, 0, :]


def common_suffix(rows: Sequence[Sequence[int]], cap: int = 16) -> int:
    """How many final tokens every row shares (the chat template's post-instruction tokens)."""
    k = 0
    while k < cap and all(len(r) > k for r in rows) and len({r[-1 - k] for r in rows}) == 1:
        k += 1
    return k


def block_output_tail(
    model: HFModel, rows: Sequence[list[int]], layer: int, k: int, *, grad: bool = False
) -> torch.Tensor:
    """Output of block ``layer`` at the last ``k`` tokens, [batch, k, d]; the forward stops there.

    Rows are right-padded (``HFModel.right_pad``: this is the forward ACTOR trains through,
    and left-padded it gave NaN gradients in bfloat16 on a GPU), so each row's last ``k``
    tokens are gathered at its own length.
    """
    import torch

    captured: dict[str, torch.Tensor] = {}
    ids, mask = model.right_pad(list(rows))
    index = last_positions(mask, k)

    def hook(module: Any, inputs: Any, output: Any) -> None:
        hs = output[0] if isinstance(output, tuple) else output
        captured["h"] = hs.gather(1, index[..., None].expand(-1, -1, hs.shape[-1]))
        raise StopForward

    with (
        torch.set_grad_enabled(grad),
        model.hooks(forward=[(model.layer_name(layer), hook)]),
        contextlib.suppress(StopForward),
    ):
        model.forward(ids, mask, use_cache=False)
    return captured["h"].float()


def last_positions(mask: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of each right-padded row's last ``k`` tokens, [batch, k] (rows need >= k)."""
    import torch

    lengths = mask.long().sum(dim=-1, keepdim=True)
    if bool((lengths < k).any()):
        raise ValueError(f"a row is shorter than the {k} final tokens asked for")
    return lengths - k + torch.arange(k, device=mask.device)[None, :]


def all_layers_last_token(model: HFModel, prompts: Sequence[Prompt], batch_size: int = 16) -> torch.Tensor:
    """Every block's output at the last token, [n, n_layers, d], read by hooks on the blocks.

    Not ``output_hidden_states``: transformers puts the final norm's output in its last entry,
    so the last block's own output, the quantity ACTOR measures and trains at every other
    layer, is not there, and a silhouette score on the normed states would rank that layer on
    a different geometry from the others.
    """
    import torch

    rows = encode_all(model, prompts)
    n_layers = len(model.layers)

    def run(start: int, stop: int) -> torch.Tensor:
        ids, mask = model.left_pad(rows[start:stop])  # left-padded: the last token is position -1
        seen: dict[int, torch.Tensor] = {}

        def capture(i: int) -> Callable[..., None]:
            def hook(module: Any, inputs: Any, output: Any) -> None:
                hs = output[0] if isinstance(output, tuple) else output
                seen[i] = hs[:, -1, :].float().cpu()
            return hook

        with torch.inference_mode(), model.hooks(forward=[(model.layer_name(i), capture(i)) for i in range(n_layers)]):
            model.forward(ids, mask, use_cache=False, logits_to_keep=1)
        return torch.stack([seen[i] for i in range(n_layers)], dim=1)

    chunks = model.batches([len(r) for r in rows], batch_size, run, "reading the states of")
    return torch.cat([t for _, _, t in chunks], dim=0)


def mean_difference(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Difference of class means (the refusal direction of Arditi et al. and ACTOR)."""
    return pos.mean(dim=0) - neg.mean(dim=0)


def silhouette(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean silhouette coefficient of a two-or-more-cluster labelling (Euclidean distance).

    s_i = (b_i - a_i) / max(a_i, b_i), with a_i the mean distance to the other members of
    i's cluster and b_i the smallest mean distance to another cluster.
    """
    import torch

    d = torch.cdist(x.double(), x.double())
    classes = torch.unique(labels)
    n = len(x)
    a = torch.zeros(n, dtype=torch.float64)
    b = torch.full((n,), float("inf"), dtype=torch.float64)
    for c in classes:
        members = labels == c
        count = int(members.sum())
        mean_to_c = d[:, members].sum(dim=1)
        own = labels == c
        a = torch.where(own, mean_to_c / max(count - 1, 1), a)
        b = torch.where(own, b, torch.minimum(b, mean_to_c / count))
    s = (b - a) / torch.maximum(a, b).clamp(min=1e-12)
    return float(s.mean())


def prompts_of(samples: Sequence[Sample]) -> list[Prompt]:
    """Chat prompts of samples (no system prompt, as in the methods' released code)."""
    return [s.as_prompt() for s in samples]


@contextlib.contextmanager
def swapped_blocks(hf: HFModel, state: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Load parameters by qualified name; put the originals back afterwards, always."""
    import torch

    params = dict(hf.model.named_parameters())
    missing = [k for k in state if k not in params]
    if missing:
        raise HarnessError(f"artifact parameter {missing[0]!r} not in the model; was it trained on another model?")
    saved = {k: params[k].detach().clone() for k in state}
    try:
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v.to(params[k].device, params[k].dtype))
        yield
    finally:
        with torch.no_grad():
            for k, v in saved.items():
                params[k].copy_(v)
