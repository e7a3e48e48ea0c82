"""``dro``: Directed Representation Optimization, a trained soft system prompt (Zheng et al., ICML 2024).

Source: ``chujiezheng/LLM-Safeguard @ 410bfb5c : code/*`` as described in docs/methods.md,
DRO. With the model frozen, a continuous system prompt (initialised from the token embeddings
of a human-written safety prompt, without BOS) is trained to move harmful queries' last-layer,
last-token states toward refusal and harmless queries' toward compliance, along directions
estimated in a low-dimensional PCA space:

1. States of harmful and harmless queries under four settings (no system prompt, the default
   safety prompt, a short one, a third variant): 8 groups.
2. Empirical compliance per (query, setting): ``n_samples`` answers sampled at temperature 1,
   top-p 0.9, scored by the harness's own judge (``label_judge``, default ``keywords``: DRO's
   refusal-phrase list; docs/methods.md, Refusal phrases with exceptions).
3. PCA to ``pca_dim`` = 4 over the 8 groups' states, completed to an orthonormal basis (seed
   42); a "refusal" logistic head (target: the compliance score, high logit = complies) and a
   "harmfulness" head (0 harmful, 1 harmless) on the PCA coordinates; AdamW lr 1e-4, full-batch
   BCE, early stopping (patience 3, at most 10000 epochs), 10-fold CV with the folds' weights
   averaged.
4. The soft prompt: batch 50, 40 epochs, AdamW lr 1e-3, clip 1.0; loss
   ``BCE(r_new - r_base, y) + 0.01 BCE(h_new - h_base, y) + 0.001 MSE(other coordinates)``
   with y = 0 harmful, 1 harmless and "base" the states under the text prompt the soft prompt
   started from. ``ablate_refu|ablate_harm|ablate_norm`` drop a term (combinable here; the
   source allows one at a time).

Generation and scoring (methods/_soft_prompt.py says how): the soft prompt is the system
message, fed as ``inputs_embeds`` (batched, left-padded, ``model.generate`` with its KV cache).
A prompt that already has a system message gets the soft prompt in front of it. Scoring:
``render`` puts the soft prompt's placeholder where the system message goes and ``encode``
turns it into slot ids, so MMLU's chat contexts are scored with the soft prompt in context,
as generation is; raw text without the placeholder (WikiText-2) is scored by the plain model,
since DRO defines its intervention as a system prompt only. A slot's own log-probability is
reported as 0 (it is given context).

Deviations and choices:
- The three prompt texts are our own wording: ``default`` is the harness's safety prompt (the
  one Self-CD uses, in the spirit of Llama-2's default), ``short`` a one-sentence version,
  ``alt`` a Mistral-style variant. ``init`` picks the starting text, ``system_prompt=`` gives
  any other; the starting text also defines the base states.
- Data: ``data=paper`` (default with a data dir) draws ``n_harmful`` = 100 from ``harmful-train``
  and ``n_harmless`` = 100 from Alpaca's train split; ``demo`` uses the demo set's train splits.
  The paper's 100 + 100 queries were written with matched wording; ours are not.
- Compliance labels: the source also requires a LlamaGuard "unsafe" verdict and a response of
  more than two lines before a harmful query's answer counts as compliance; we use the judge
  alone. ``n_samples`` defaults to 4 and ``label_tokens`` to 64 (the paper: 25 samples of up
  to 300 tokens), sized for a CPU.
- ``micro_batch`` accumulates gradients over parts of a batch (the loss is a batch mean, so the
  step is the same); the "last layer" state is the decoder's output after its final norm (what
  ``hidden_states[-1]`` holds in transformers, as in the source).
- The data are shuffled per epoch with the run's seed (the source: 42).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodargs import fingerprint, parse_config
from orbench_harness.methodkit.activations import require_hf
from orbench_harness.methodkit.artifacts import cached_or_computed
from orbench_harness.methodkit.checkpoint import discard
from orbench_harness.methodkit.soft_prompt import SoftTemplate, generate, token_logprobs
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, OnBatch, Policy
from orbench_harness.registry import Registry
from orbench_harness.types import Capability, Completion, GenParams, Prompt, Sample
from orbench_methods.dro.config import PROMPTS, SETTINGS, DroConfig
from orbench_methods.dro.fit import (
    complete_basis,
    compliance,
    fit_head,
    load_soft_prompt,
    load_tensors,
    pca,
    save_tensors,
    text_states,
    train_soft_prompt,
)

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

VERSION = 1


@dataclass(frozen=True, slots=True)
class DroData:
    """Harmful (y=0) and harmless (y=1) training queries."""

    harmful: tuple[Sample, ...]
    harmless: tuple[Sample, ...]
    sources: tuple[str, ...]

    def digest(self) -> str:
        """Hash of every prompt, for the fingerprint."""
        blob = json.dumps([[s.prompt for s in self.harmful], [s.prompt for s in self.harmless]])
        return hashlib.sha256(blob.encode()).hexdigest()


def build_data(cfg: DroConfig, env: MethodEnv) -> DroData:
    """Train-split pools, ``n`` of each drawn with the run's seed (sorted by id first)."""
    mode = cfg.data if cfg.data != "auto" else ("paper" if env.data_dir else "demo")
    names = ("demo-harmful", "demo-benign") if mode == "demo" else ("harmful-train", "alpaca")
    rng = random.Random(env.seed)

    def take(name: str, n: int) -> tuple[Sample, ...]:
        pool = sorted(env.train_samples(name), key=lambda s: s.id)
        return tuple(pool if n >= len(pool) else rng.sample(pool, n))

    return DroData(take(names[0], cfg.n_harmful), take(names[1], cfg.n_harmless), names)


class Dro:
    """DRO as a harness method (the hf backend: training through the frozen model)."""

    name = "dro"
    requires = frozenset({Capability.TRAINING, Capability.WEIGHTS})

    def __init__(self, cfg: DroConfig, data: DroData, seed: int = 0, judge_version: str = "") -> None:
        self.cfg = cfg
        self.data = data
        self.seed = seed
        self.judge_version = judge_version

    def fingerprint(self) -> str:
        """Config + data digest + seed (sampling and batch order) + label judge version + version."""
        return fingerprint(self.name, VERSION, self.cfg, data=self.data.digest(), seed=self.seed,
                           judge=self.judge_version)

    # -- preparation ------------------------------------------------------------------------
    def prepare(self, model: ModelHandle, ctx: MethodContext) -> dict[str, Any]:
        """Estimate the boundaries, then train the soft prompt (each stage cached)."""
        hf = require_hf(model, self.name)
        return cached_or_computed(ctx.artifact_dir, load_soft_prompt, lambda: self.train(hf, ctx), log=ctx.log,
                                  found="dro: trained soft prompt")

    def train(self, hf: HFModel, ctx: MethodContext) -> dict[str, Any]:
        """The boundary (cached on its own), then the soft prompt; saves and returns the artifact."""
        import torch

        boundary, bmeta = self.boundary(hf, ctx)
        init_ids = hf.encode(self.cfg.init_text)  # no special tokens: the source drops BOS
        init = hf.model.get_input_embeddings().weight[init_ids].detach().float().cpu()
        tmpl = SoftTemplate(hf, len(init_ids), self.cfg.placement)
        queries = [*self.data.harmful, *self.data.harmless]
        y = torch.tensor([0.0] * len(self.data.harmful) + [1.0] * len(self.data.harmless))
        base = text_states(hf, [tmpl.text_prompt(s.as_prompt(), self.cfg.init_text) for s in queries])
        rows = [tmpl.row(s.as_prompt()) for s in queries]
        soft, history, seconds = train_soft_prompt(hf, self.cfg, rows, base, y, boundary, init, ctx)
        meta = {"history": history, "train_seconds": round(seconds, 2), "n_tokens": len(init_ids),
                "placement": tmpl.where, "init_text": self.cfg.init_text, "config": asdict(self.cfg),
                "sources": list(self.data.sources), "n_harmful": len(self.data.harmful),
                "n_harmless": len(self.data.harmless), "boundary": bmeta,
                "moved": float((soft - init).norm() / init.norm())}
        save_tensors(ctx.artifact_dir / "soft_prompt", {"soft_prompt": soft, "init": init}, meta)
        discard(ctx.artifact_dir)
        return {"soft": soft, "meta": meta}

    def boundary(self, hf: HFModel, ctx: MethodContext) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """PCA basis and the two heads (cached in ``boundary.*``; labels cached per group)."""
        return cached_or_computed(ctx.artifact_dir, lambda d: load_tensors(d / "boundary"),
                                  lambda: self.estimate_boundary(hf, ctx))

    def estimate_boundary(self, hf: HFModel, ctx: MethodContext) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Labels, states, PCA and the two heads, saved as ``boundary.*``."""
        import torch

        cfg = self.cfg
        tmpl = SoftTemplate(hf, 1, cfg.placement)
        judge = Registry().create("judges", cfg.label_judge, {})
        judge.preflight()
        labels_path = ctx.artifact_dir / "labels.json"
        labels: dict[str, list[float]] = json.loads(labels_path.read_text()) if labels_path.is_file() else {}
        states, scores, harmless = [], [], []
        for kind, samples in (("harmful", self.data.harmful), ("harmless", self.data.harmless)):
            for setting in SETTINGS:
                prompts = [tmpl.text_prompt(s.as_prompt(), PROMPTS.get(setting)) for s in samples]
                states.append(text_states(hf, prompts))
                key = f"{kind}/{setting}"
                if key not in labels:
                    labels[key] = compliance(hf, prompts, judge, n_samples=cfg.n_samples,
                                             max_new_tokens=cfg.label_tokens, seed=self.seed,
                                             batch_size=cfg.label_batch_size, label=f"dro: labels {key}")
                    labels_path.write_text(json.dumps(labels))
                scores += labels[key]
                harmless += [1.0 if kind == "harmless" else 0.0] * len(samples)
        x = torch.cat(states)
        mean, v, ratio = pca(x, cfg.pca_dim)
        basis = complete_basis(v, cfg.basis_seed)
        coords = (x - mean) @ v
        refusal, harm = (fit_head(coords, torch.tensor(target), folds=cfg.head_folds, lr=cfg.head_lr,
                                  max_epochs=cfg.head_max_epochs, patience=cfg.head_patience, seed=cfg.basis_seed)
                         for target in (scores, harmless))
        tensors = {"mean": mean, "basis": basis, "refusal_w": torch.tensor(refusal.weight),
                   "refusal_b": torch.tensor([refusal.bias]), "harm_w": torch.tensor(harm.weight),
                   "harm_b": torch.tensor([harm.bias])}
        meta = {"explained_variance": ratio, "refusal_head": asdict(refusal), "harm_head": asdict(harm),
                "mean_compliance": {k: sum(s) / len(s) for k, s in labels.items()},
                "label_judge": f"{judge.name}@{judge.version}"}
        ctx.log(f"dro: PCA explains {sum(ratio):.1%}; refusal head BCE {refusal.initial_loss:.3f} -> "
                f"{refusal.final_loss:.3f}, harmfulness head {harm.initial_loss:.3f} -> {harm.final_loss:.3f}")
        save_tensors(ctx.artifact_dir / "boundary", tensors, meta)
        return tensors, meta

    # -- application ------------------------------------------------------------------------
    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """A policy with the soft prompt as system message; the model itself is not changed."""
        yield DroPolicy(require_hf(model, self.name), artifact["soft"], self.cfg.placement)


class DroPolicy:
    """Generation and scoring with the soft prompt where the system message goes."""

    def __init__(self, hf: HFModel, soft: torch.Tensor, placement: Literal["auto", "system", "user"] = "auto") -> None:
        self.hf = hf
        self.soft = soft.to(hf.device)
        self.template = SoftTemplate(hf, int(soft.shape[0]), placement)

    @property
    def max_length(self) -> int:
        """The model's context length."""
        return self.hf.max_length

    def render(self, prompt: Prompt) -> str:
        """The chat rendering with the soft prompt's placeholder as the system message."""
        return self.template.render(prompt)

    def encode(self, text: str) -> list[int]:
        """Token ids; the placeholder becomes the soft prompt's slot ids."""
        return self.template.encode(text)

    def generate(self, prompts: Sequence[Prompt], params: GenParams, *, batch_size: int = 8,
                 on_batch: OnBatch | None = None) -> list[Completion]:
        """Batched generation with the soft prompt inserted."""
        rows = [self.template.row(p) for p in prompts]
        return generate(self.hf, rows, self.soft, params, batch_size=batch_size, on_batch=on_batch)

    def token_logprobs(self, sequences: Sequence[Sequence[int]], batch_size: int = 8) -> list[list[float]]:
        """Log-probabilities with slots embedded as the soft prompt (plain text: the plain model)."""
        return token_logprobs(self.hf, sequences, self.soft, batch_size)


def create(args: Mapping[str, str], env: MethodEnv) -> Dro:
    """Factory: ``--method-arg epochs=40 n_samples=4 init=default ...``."""
    cfg = parse_config(DroConfig, args, method="dro")
    judge = Registry().create("judges", cfg.label_judge, {})  # an unknown or unusable judge fails here
    return Dro(cfg, build_data(cfg, env), env.seed, f"{judge.name}@{judge.version}")


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``dro``."""
    register("dro", create, summary="DRO: a soft system prompt trained along refusal/harmfulness directions",
             requires=["training", "weights"])
