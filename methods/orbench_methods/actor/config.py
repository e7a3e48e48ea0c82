"""ACTOR's options and the paper's per-model settings; every option is part of the fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from orbench_harness.methodargs import ADDED_LATER


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """Every option of ACTOR; all of it is part of the fingerprint."""

    alpha: float = 0.0015
    layer: str = "auto"
    lr: float = 1e-5
    epochs: int = 3
    batch_size: int = 8
    sign: Literal["magnitude", "signed", "hinge", "hinge_benign", "hinge_keep", "hinge_keep_harmful",
                  "hinge_band"] = "magnitude"
    projection: Literal["raw", "unit"] = "raw"
    recompute: Literal["epoch", "step"] = "epoch"
    targets: Literal["calibrated", "uniform"] = "calibrated"
    beta: float = 1.0
    trainable: Literal["layer", "up_to_layer"] = "layer"
    data: Literal["auto", "demo", "paper"] = "auto"
    n_benign: int = 210
    n_pseudo: int = 100
    n_harmful: int = 330
    n_anchors: int = 64
    pseudo_sources: str = "xstest,scope,orbench-hard,phtest"
    weight_decay: float = 0.0
    positions: Literal["last", "post_instruction"] = field(default="last", metadata=ADDED_LATER)
    band: float = field(default=0.5, metadata=ADDED_LATER)
    harmful_pool: str = field(default="hexphi", metadata=ADDED_LATER)

    def __post_init__(self) -> None:
        if self.layer != "auto" and not self.layer.lstrip("-").isdigit():
            raise ValueError(f"layer must be 'auto' or an integer (got {self.layer!r})")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if not 0 < self.band < 1:
            raise ValueError(f"band is a quantile of the harmful queries' projections, in (0, 1) (got {self.band})")


# The paper's per-model settings (docs/methods.md, ACTOR); the organisms' from our sweeps
# (docs/results/actor-sweep.md), chosen on the validation (train) split, never on test.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama-2-7b-chat": {"alpha": 0.0015, "layer": "13"},
    "gemma-7b-it": {"alpha": 0.003, "layer": "17"},
    "llama-2-13b-chat": {"alpha": 0.0004, "layer": "14"},
    # layer 15 of 30 (the silhouette rule picks a late layer on this model), a third of the
    # paper's harmful budget and lr 1e-5: the validation sweep's only setting that raised
    # compliance without a large safety loss (docs/results/actor-sweep.md)
    "smollm2-135m-safety": {"alpha": 0.0006, "layer": "15", "lr": 1e-5, "n_harmful": 100},
    # the read-out organism: the same sweep's form at half the step, the one validation point
    # that gained 20 points of JBB-benign compliance for under 3 of JBB-harmful refusal
    "smollm2-135m-safety-readout": {"alpha": 0.0006, "layer": "15", "lr": 5e-6, "n_harmful": 100},
}
