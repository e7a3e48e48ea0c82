"""``actor``: ACTOR, targeted activation fine-tuning of one block (Dabas et al., ICML 2025).

From the paper (arXiv 2507.04250), as summarised in shared/docs/METHODS.md 1.0:

1. Target layer: the block whose output at the last post-instruction token best separates
   harmful from benign anchors by silhouette score (``layer=auto``), or a given index.
2. Refusal vector r = mean(harmful anchors) - mean(benign anchors) at that layer.
3. Per query, a "just enough" target computed from the model *before* the update step:
   benign and pseudo-harmful h_tgt = h - alpha * p * r, harmful h_tgt = h + alpha * p * r,
   with p the projection of h on r.
4. Loss 1 - cos(h, h_tgt) at the target layer, last post-instruction token; only the target
   block is trained (AdamW, lr 1e-5, 3 epochs); the forward pass stops at the target layer.
5. r is re-estimated with the current weights once per epoch (``recompute=step``: per step).

Where the paper is silent or this implementation departs from it:
- ``sign=magnitude`` (default) uses p = |h.r|. With the signed p a benign query whose h.r is
  negative is pushed *toward* refusal; METHODS.md 1.0 measured that on the CPU organism.
  ``sign=signed`` gives the literal formula. ``sign=hinge`` (ours, not the paper's) measures
  p from the midpoint of the two anchor means and shifts only queries on the wrong side of it
  (benign look-alikes that sit with the harmful ones, harmful ones that sit with the benign),
  by their distance past it; ``sign=hinge_benign`` hinges the benign side only and shifts every
  harmful query by its full distance from the midpoint; ``sign=hinge_keep`` is ``hinge`` whose
  unshifted queries target the untrained block's output for them instead of their current one,
  so the block must move the misplaced queries without moving the rest (a retain term, ours;
  methods/ACTOR_SWEEP.md has its validation points); ``sign=hinge_keep_harmful`` retains only
  the harmful queries on their own side and leaves the benign ones free, as ``hinge`` does.
  ``sign=hinge_band`` (ours) splits the queries at the ``band`` quantile of the harmful
  training queries' projections under the untrained model: above it, harmful queries are held
  at their original outputs and nothing is shifted; below it, ``hinge``. Blunt requests such
  as AdvBench's sit far from the look-alikes at the middle layer (``bench/separability.py``),
  so the block might move the look-alikes while leaving the blunt requests alone; on
  validation neither retain variant moved compliance by more than 7 points.
  ``projection=raw`` (default) multiplies the raw, unnormalised r (the only reading under
  which the paper's tiny alphas make sense); ``projection=unit`` uses r/|r| for both the
  projection and the shift.
- Positions: METHODS.md 1.0 assumes the last post-instruction token (``positions=last``, the
  default). ``positions=post_instruction`` applies r, the targets and the loss at every token
  of the chat template's post-instruction suffix (the tokens all training prompts end with),
  each position with its own r and midpoint, the loss averaged over them.
- Batch size is not given in the paper: 8, recorded in the fingerprint.
- AdamW weight decay 0 (the paper names AdamW only); the block's original weights are
  restored after training, and ``apply`` swaps the trained block in only inside its context.
- ``targets=uniform`` is the paper's ablation (h_tgt = h -/+ beta * r, the same shift for all).
- Data: ``data=paper`` uses the paper's pools (HEx-PHI harmful, 210 UltraChat benign, 25
  pseudo-harmful each from XSTest, SCOPE, OR-Bench-Hard, PHTest; anchors 64 HEx-PHI + 64
  TruthfulQA), all from the benchmarks' *train* splits; a pool that cannot be loaded (PHTest
  without the hub) is left out with a warning and the fingerprint records what was used.
  ``data=demo`` uses the shipped demo set; ``auto`` picks paper when a data dir is given.
  ``harmful_pool`` (ours) names another benchmark whose train split gives the harmful
  training queries (e.g. ``harmful-train``: HarmBench, TDC 2023, MaliciousInstruct, requests
  as blunt as AdvBench's); the refusal-vector anchors stay HEx-PHI's.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from methods._actlib import all_layers_last_token, block_output_tail, mean_difference, require_hf, silhouette
from orbench_harness.catalog import Register
from orbench_harness.errors import HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodargs import ADDED_LATER, fingerprint, parse_config
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, Policy
from orbench_harness.types import Capability, Sample

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

VERSION = 1
# How ``layer=auto`` scores layers; in the fingerprint of auto runs only, so a fixed-layer
# artifact stays valid. 2: every layer on its block's own output (1 scored the last layer on
# transformers' final-norm output, see ``_actlib.all_layers_last_token``).
LAYER_RULE = 2

# The paper's per-model settings (METHODS.md 1.0); smollm2-135m-safety from our sweep
# (methods/ACTOR_SWEEP.md), chosen on the validation (train) split, never on test.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama-2-7b-chat": {"alpha": 0.0015, "layer": "13"},
    "gemma-7b-it": {"alpha": 0.003, "layer": "17"},
    "llama-2-13b-chat": {"alpha": 0.0004, "layer": "14"},
    # layer 15 of 30 (the silhouette rule picks a late layer on this model), a third of the
    # paper's harmful budget and lr 1e-5: the validation sweep's only setting that raised
    # compliance without a large safety loss (methods/ACTOR_SWEEP.md)
    "smollm2-135m-safety": {"alpha": 0.0006, "layer": "15", "lr": 1e-5, "n_harmful": 100},
    # the read-out organism: the same sweep's form at half the step, the one validation point
    # that gained 20 points of JBB-benign compliance for under 3 of JBB-harmful refusal
    "smollm2-135m-safety-readout": {"alpha": 0.0006, "layer": "15", "lr": 5e-6, "n_harmful": 100},
}


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


@dataclass(frozen=True, slots=True)
class TrainData:
    """Training queries with their direction (+1 harmful, -1 benign/pseudo) and anchors."""

    queries: tuple[Sample, ...]
    signs: tuple[int, ...]
    harmful_anchors: tuple[Sample, ...]
    benign_anchors: tuple[Sample, ...]
    sources: tuple[str, ...]

    def digest(self) -> str:
        """Hash of every prompt and label, for the fingerprint."""
        blob = json.dumps([[s.prompt for s in self.queries], list(self.signs),
                           [s.prompt for s in self.harmful_anchors], [s.prompt for s in self.benign_anchors]])
        return hashlib.sha256(blob.encode()).hexdigest()


def _take(samples: list[Sample], n: int, rng: random.Random) -> list[Sample]:
    return samples if n >= len(samples) else rng.sample(samples, n)


def build_data(cfg: ActorConfig, env: MethodEnv) -> TrainData:
    """Assemble the training pools from benchmark train splits (seeded)."""
    rng = random.Random(env.seed)
    mode = cfg.data if cfg.data != "auto" else ("paper" if env.data_dir else "demo")
    if mode == "demo":
        harmful = env.train_samples("demo-harmful")
        benign = env.train_samples("demo-benign")
        pseudo = env.train_samples("demo-pseudo-harmful")
        sources = ["demo-harmful", "demo-benign", "demo-pseudo-harmful"]
        h_anchor, b_anchor = harmful, benign
    else:
        harmful = env.train_samples(cfg.harmful_pool)
        benign = env.train_samples("ultrachat")
        pseudo, sources = [], [cfg.harmful_pool, "ultrachat"]
        names = [n.strip() for n in cfg.pseudo_sources.split(",") if n.strip()]
        per = max(1, cfg.n_pseudo // max(1, len(names)))
        for name in names:
            try:
                pool = env.train_samples(name)
            except HarnessError as e:
                from orbench_harness.console import warn

                warn(f"actor: pseudo-harmful pool {name!r} unavailable ({e}); training without it")
                continue
            pseudo += _take(pool, per, rng)
            sources.append(name)
        h_anchor = env.train_samples("hexphi")  # the anchors are HEx-PHI's whatever the pool
        b_anchor = env.train_samples("truthfulqa")
        if cfg.harmful_pool != "hexphi":
            sources.append("hexphi")
        sources.append("truthfulqa")
    harmful_q = _take(harmful, cfg.n_harmful, rng)
    benign_q = _take(benign, cfg.n_benign, rng)
    pseudo_q = _take(pseudo, cfg.n_pseudo, rng)
    queries = harmful_q + benign_q + pseudo_q
    signs = [1] * len(harmful_q) + [-1] * (len(benign_q) + len(pseudo_q))
    return TrainData(
        tuple(queries), tuple(signs),
        tuple(_take(h_anchor, cfg.n_anchors, rng)), tuple(_take(b_anchor, cfg.n_anchors, rng)), tuple(sources),
    )


class Actor:
    """ACTOR as a harness method (needs hooks and training: the hf backend)."""

    name = "actor"
    requires = frozenset({Capability.HOOKS, Capability.TRAINING, Capability.WEIGHTS})
    exportable = True  # the effect is one block's weights: `harness export` can save it

    def __init__(self, cfg: ActorConfig, data: TrainData, seed: int = 0) -> None:
        self.cfg = cfg
        self.data = data
        self.seed = seed

    def fingerprint(self) -> str:
        """Config + training data digest + seed (it orders the batches) + version (+ the
        layer rule, for ``layer=auto``)."""
        rule = {"layer_rule": LAYER_RULE} if self.cfg.layer == "auto" else {}
        return fingerprint(self.name, VERSION, self.cfg, data=self.data.digest(), seed=self.seed, **rule)

    # -- preparation ------------------------------------------------------------------------
    def prepare(self, model: ModelHandle, ctx: MethodContext) -> dict[str, Any]:
        """Train the target block (or load it from ``ctx.artifact_dir``); returns the artifact."""
        from methods._actor_train import load_artifact, train

        hf = require_hf(model, self.name)
        cached = load_artifact(ctx.artifact_dir)
        if cached is not None:
            ctx.log(f"actor: trained block found in {ctx.artifact_dir}")
            return cached
        layer = self.select_layer(hf, ctx)
        return train(hf, self.cfg, self.data, layer, ctx)

    def select_layer(self, hf: HFModel, ctx: MethodContext) -> int:
        """The configured layer, or the silhouette-best one over all layers."""
        n = int(hf.model.config.num_hidden_layers)
        if self.cfg.layer != "auto":
            return int(self.cfg.layer) % n
        scores = layer_silhouettes(hf, self.data)
        layer = max(range(n), key=lambda i: scores[i])
        ctx.log(f"actor: silhouette picks layer {layer} ({scores[layer]:.3f}); "
                f"scores {', '.join(f'{s:.2f}' for s in scores)}")
        (ctx.artifact_dir / "silhouette.json").write_text(json.dumps(scores))
        return layer

    # -- application ------------------------------------------------------------------------
    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """Swap the trained block(s) in; restore the originals on exit."""
        hf = require_hf(model, self.name)
        with swapped_blocks(hf, artifact["state"]):
            yield hf


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


@contextmanager
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


def create(args: Mapping[str, str], env: MethodEnv) -> Actor:
    """Factory: per-model defaults underneath the user's ``--method-arg`` values."""
    defaults = MODEL_DEFAULTS.get(env.model.name, {})
    cfg = parse_config(ActorConfig, args, method="actor", defaults=defaults)
    return Actor(cfg, build_data(cfg, env), env.seed)


def config_dict(cfg: ActorConfig) -> dict[str, Any]:
    """The config as JSON (for artifacts)."""
    return asdict(cfg)


def artifact_path(artifact_dir: Path) -> Path:
    """Where the trained parameters live."""
    return artifact_dir / "trained.safetensors"


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``actor``."""
    register("actor", create, summary="ACTOR: projection-calibrated activation fine-tuning of one block",
             requires=["hooks", "training", "weights"])
