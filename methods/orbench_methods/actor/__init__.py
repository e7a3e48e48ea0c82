"""``actor``: ACTOR, targeted activation fine-tuning of one block (Dabas et al., ICML 2025).

From the paper (arXiv 2507.04250), as described in docs/methods.md, ACTOR:

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
  negative is pushed *toward* refusal; an early probe on the CPU organism measured that
  (docs/methods.md, ACTOR).
  ``sign=signed`` gives the literal formula. ``sign=hinge`` (ours, not the paper's) measures
  p from the midpoint of the two anchor means and shifts only queries on the wrong side of it
  (benign look-alikes that sit with the harmful ones, harmful ones that sit with the benign),
  by their distance past it; ``sign=hinge_benign`` hinges the benign side only and shifts every
  harmful query by its full distance from the midpoint; ``sign=hinge_keep`` is ``hinge`` whose
  unshifted queries target the untrained block's output for them instead of their current one,
  so the block must move the misplaced queries without moving the rest (a retain term, ours;
  docs/results/actor-sweep.md has its validation points); ``sign=hinge_keep_harmful`` retains only
  the harmful queries on their own side and leaves the benign ones free, as ``hinge`` does.
  ``sign=hinge_band`` (ours) splits the queries at the ``band`` quantile of the harmful
  training queries' projections under the untrained model: above it, harmful queries are held
  at their original outputs and nothing is shifted; below it, ``hinge``. Blunt requests such
  as AdvBench's sit far from the look-alikes at the middle layer (``probes/separability.py``),
  so the block might move the look-alikes while leaving the blunt requests alone; on
  validation neither retain variant moved compliance by more than 7 points.
  ``projection=raw`` (default) multiplies the raw, unnormalised r (the only reading under
  which the paper's tiny alphas make sense); ``projection=unit`` uses r/|r| for both the
  projection and the shift.
- Positions: the paper is read as training the last post-instruction token (``positions=last``, the
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

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodargs import fingerprint, parse_config
from orbench_harness.methodkit.activations import require_hf, swapped_blocks
from orbench_harness.methodkit.artifacts import cached_or_computed
from orbench_harness.methodkit.pools import TrainData, build_data
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, Policy
from orbench_harness.types import Capability
from orbench_methods.actor.anchors import layer_silhouettes
from orbench_methods.actor.config import MODEL_DEFAULTS, ActorConfig
from orbench_methods.actor.training import load_artifact, train

if TYPE_CHECKING:
    from orbench_harness.backends.hf import HFModel

VERSION = 1
# How ``layer=auto`` scores layers; in the fingerprint of auto runs only, so a fixed-layer
# artifact stays valid. 2: every layer on its block's own output (1 scored the last layer on
# transformers' final-norm output, see ``_actlib.all_layers_last_token``).
LAYER_RULE = 2


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
        hf = require_hf(model, self.name)
        return cached_or_computed(ctx.artifact_dir, load_artifact,
                                  lambda: train(hf, self.cfg, self.data, self.select_layer(hf, ctx), ctx),
                                  log=ctx.log, found="actor: trained block")

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
