"""ACTOR's options and the paper's per-model settings; every option is part of the fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from orbench_harness.methodargs import ADDED_LATER


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """Every option of ACTOR; all of it is part of the fingerprint."""

    alpha: float = 0.0015
    """Shift strength: a training query's target moves by alpha times its projection p along the
    refusal vector r. Paper: 0.0015 (Llama-2-7b-chat), 0.003 (Gemma-7b-it), 0.0004
    (Llama-2-13b-chat).
    """
    # The 0-based index of the decoder *block* that trains (its output is transformers'
    # ``hidden_states[layer + 1]``), not the paper's hidden-state numbering: the paper's
    # "layer L" is block L - 1 (``paper_layer_to_block``). "auto" is the silhouette rule.
    layer: str = "auto"
    """Block to train, 0-based (its output is hidden_states[layer + 1]; the paper numbers hidden
    states, so its layer L is block L - 1): auto picks the one whose
    anchor states separate best by silhouette score, an integer sets it. Paper: the silhouette
    rule (it reports layers 13, 17 and 14 for its three models).
    """
    lr: float = 1e-5
    """AdamW learning rate of the trained block. Paper: 1e-5."""
    epochs: int = 3
    """Passes over the training queries. Paper: 3."""
    batch_size: int = 8
    """Training queries per optimizer step (the paper gives none)."""
    sign: Literal["magnitude", "signed", "hinge", "hinge_benign", "hinge_keep", "hinge_keep_harmful",
                  "hinge_band"] = "magnitude"
    """How a query's projection p on r is read: magnitude uses |h.r|, signed uses h.r as written;
    the hinge variants (ours) shift only queries on the wrong side of the anchors' midpoint
    (docs/methods.md). Paper: magnitude (its 'projection magnitude').
    """
    projection: Literal["raw", "unit"] = "raw"
    """raw projects on and shifts along the unnormalised refusal vector (the only reading under
    which the paper's alpha values are sensible); unit uses r/|r|. Paper: raw.
    """
    recompute: Literal["epoch", "step"] = "epoch"
    """How often the refusal vector and targets are re-estimated with the current weights: once per
    epoch or before every step.
    """
    targets: Literal["calibrated", "uniform"] = "calibrated"
    """calibrated shifts each query by its own projection (ACTOR); uniform shifts every query by the
    same beta times r (the paper's ablation). Paper: calibrated.
    """
    beta: float = 1.0
    """Shift size of targets=uniform."""
    trainable: Literal["layer", "up_to_layer"] = "layer"
    """Weights trained: the target block only (layer) or every block up to it (up_to_layer). Paper:
    layer.
    """
    data: Literal["auto", "demo", "paper"] = "auto"
    """Training prompts: paper draws the paper's pools from the benchmarks' train splits, demo uses
    the shipped demo set, auto is paper when a data directory is given and demo otherwise.
    """
    n_benign: int = 210
    """Benign training queries (UltraChat, spread over its topic categories). Paper: 210."""
    n_pseudo: int = 100
    """Pseudo-harmful training queries, shared among pseudo_sources. Paper: 100 (25 per source)."""
    n_harmful: int = 330
    """Harmful training queries, from harmful_pool. Paper: 330 (all of HEx-PHI)."""
    n_anchors: int = 64
    """Prompts in each anchor set (harmful HEx-PHI, benign TruthfulQA) that estimate the refusal
    vector. Paper: 64.
    """
    pseudo_sources: str = "xstest,scope,orbench-hard,phtest"
    """Benchmarks whose train splits give the pseudo-harmful queries, comma-separated. Paper:
    xstest,scope,orbench-hard,phtest.
    """
    weight_decay: float = 0.0
    """AdamW weight decay (the paper gives none)."""
    positions: Literal["last", "post_instruction"] = field(default="last", metadata=ADDED_LATER)
    """Positions trained: last (the last post-instruction token) or post_instruction (every token of
    the template's post-instruction suffix, each with its own vector). Paper: last.
    """
    band: float = field(default=0.5, metadata=ADDED_LATER)
    """sign=hinge_band only: the quantile of the harmful queries' projections above which they are
    held, in (0, 1).
    """
    harmful_pool: str = field(default="hexphi", metadata=ADDED_LATER)
    """Benchmark whose train split gives the harmful training queries (the anchors stay HEx-PHI's);
    ``name@all`` takes every row of a set the run does not score. Paper: all 330 of HEx-PHI
    (hexphi@all, setup actor-paper).
    """
    benign_classes: str = field(default="", metadata=ADDED_LATER)
    """UltraChat classes the benign queries come from, as a|b|c; empty: every class. Paper: 30
    from each of 7 topic categories (setup actor-paper names UltraChat's seven 30-question classes).
    """

    def __post_init__(self) -> None:
        if self.layer != "auto" and not self.layer.lstrip("-").isdigit():
            raise ValueError(f"layer must be 'auto' or an integer (got {self.layer!r})")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if not 0 < self.band < 1:
            raise ValueError(f"band is a quantile of the harmful queries' projections, in (0, 1) (got {self.band})")


# The target layers the ACTOR paper reports, in *its* numbering: hidden states, 0 being the
# embeddings and L the output of the L-th block (1-based). The paper's Table 5 splits
# Llama-2-7b-chat's 32 blocks into [0-9], [10-20], [21-32], 33 entries, which only the
# hidden-state numbering has; so its "layer 13" is ``hidden_states[13]``, the output of
# 0-based block 12. docs/paper-setup.md gives the evidence.
PAPER_LAYERS: dict[str, int] = {"llama-2-7b-chat": 13, "gemma-7b-it": 17, "llama-2-13b-chat": 14}


def paper_layer_to_block(paper_layer: int) -> int:
    """The 0-based block whose output is the paper's hidden state ``paper_layer``. Layer 0
    (the embeddings) has no block: no block's weights could move it."""
    if paper_layer < 1:
        raise ValueError(f"hidden state {paper_layer} is the embeddings, not a block's output")
    return paper_layer - 1


# The paper's per-model settings (docs/methods.md, ACTOR), with ``layer`` as a block index
# (converted from PAPER_LAYERS, never written by hand); the organisms' from our sweeps
# (docs/results/actor-sweep.md), chosen on the validation (train) split, never on test.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama-2-7b-chat": {"alpha": 0.0015, "layer": str(paper_layer_to_block(PAPER_LAYERS["llama-2-7b-chat"]))},
    "gemma-7b-it": {"alpha": 0.003, "layer": str(paper_layer_to_block(PAPER_LAYERS["gemma-7b-it"]))},
    "llama-2-13b-chat": {"alpha": 0.0004, "layer": str(paper_layer_to_block(PAPER_LAYERS["llama-2-13b-chat"]))},
    # layer 15 of 30 (the silhouette rule picks a late layer on this model), a third of the
    # paper's harmful budget and lr 1e-5: the validation sweep's only setting that raised
    # compliance without a large safety loss (docs/results/actor-sweep.md)
    "smollm2-135m-safety": {"alpha": 0.0006, "layer": "15", "lr": 1e-5, "n_harmful": 100},
    # the read-out organism: the same sweep's form at half the step, the one validation point
    # that gained 20 points of JBB-benign compliance for under 3 of JBB-harmful refusal
    "smollm2-135m-safety-readout": {"alpha": 0.0006, "layer": "15", "lr": 5e-6, "n_harmful": 100},
}
