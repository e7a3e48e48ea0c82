"""ACTOR's reading of the anchors: the refusal vector r and the anchor midpoint at one block,
and the silhouette score behind ``layer=auto``. Shared by the plugin (layer choice) and the
training loop (r re-estimated per epoch or step)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbench_harness.methodkit.activations import all_layers_last_token, block_output_tail, mean_difference, silhouette
from orbench_harness.methodkit.pools import TrainData
from orbench_harness.types import Sample

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel


def layer_silhouettes(hf: HFModel, data: TrainData) -> list[float]:
    """Silhouette score of harmful vs benign anchors at every layer."""
    import torch

    prompts = [s.as_prompt() for s in (*data.harmful_anchors, *data.benign_anchors)]
    acts = all_layers_last_token(hf, prompts)
    labels = torch.tensor([1] * len(data.harmful_anchors) + [0] * len(data.benign_anchors))
    return [silhouette(acts[:, i, :], labels) for i in range(acts.shape[1])]


def refusal_vector(hf: HFModel, data: TrainData, layer: int, batch_size: int = 16) -> torch.Tensor:
    """Difference of means of the anchors' block-``layer`` outputs (no gradient)."""
    return anchor_means(hf, data, layer, batch_size)[0]


def anchor_means(hf: HFModel, data: TrainData, layer: int, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The refusal vector and the midpoint of the two anchor means (for ``sign=hinge``)."""
    r, mid = anchor_means_tail(hf, data, layer, 1, batch_size)
    return r[0], mid[0]


def anchor_means_tail(hf: HFModel, data: TrainData, layer: int, k: int,
                      batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``anchor_means`` at each of the last ``k`` token positions: two [k, d] tensors."""
    import torch

    def acts(samples: tuple[Sample, ...]) -> torch.Tensor:
        rows = [hf.encode_prompt(s.as_prompt()) for s in samples]
        return torch.cat([t for _, _, t in hf.batches([len(r) for r in rows], batch_size,
                                                      lambda a, b: block_output_tail(hf, rows[a:b], layer, k),
                                                      "reading the anchor states of")])

    harmful, benign = acts(data.harmful_anchors), acts(data.benign_anchors)
    return mean_difference(harmful, benign), (harmful.mean(dim=0) + benign.mean(dim=0)) / 2
