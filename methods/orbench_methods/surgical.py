"""``surgical``: single false-refusal vector ablation (Wang, Hu, Röttger, Plank; ICLR 2025).

As released (``mainlp/False-Refusal-Mitigation @ 916dcac6 : pipeline/run_pipeline.py,
pipeline/submodules/{generate_directions,select_direction}.py, pipeline/utils/hook_utils.py,
configs/cfg.yaml``), built on the refusal-direction pipeline (``andyrdt/refusal_direction @
9d852fae``); described in docs/methods.md, Surgical and Refusal direction:

1. Data: 128 train + 32 val prompts each of pseudo-harmful (OR-Bench-Hard), harmless (Alpaca)
   and harmful requests, sampled with seed 1 (``random_seed``). Train prompts are kept only if
   the unmodified model's refusal score agrees with their class (harmful and pseudo-harmful
   > 0, harmless < 0); validation prompts are not filtered.
2. Candidates: at the input of every decoder block and every post-instruction token position
   (the template tokens after the user's message), true-refusal ``r = mean(harmful) -
   mean(harmless)`` and false-refusal ``f = mean(pseudo) - mean(harmless)``;
   ``f' = f - lambda * proj_r(f)`` (lambda 1.0), unit-normalised.
3. Selection: ablate each candidate everywhere and score the mean refusal score on the
   pseudo-harmful val prompts (lower is better); drop candidates whose KL divergence of
   last-position logits on harmless val exceeds 0.2, and layers in the last 20% of the model.
4. Intervention: ``x <- x - c (x.d) d`` (c = ``ablation_coeff`` 1.0) at every block's input,
   attention output and MLP output, all positions including generated ones (``mode=hooks``);
   or the equivalent weight orthogonalisation (``mode=weights``: the embedding, attention out
   and MLP down projections lose their ``d`` component; needs no hooks at all, selection
   included; weights and weight tying restored on exit). The two are identical at c = 1;
   at other c, hooks also shrink the stream's ``d`` component again at every block input.

Refusal score: log p(refusal token) - log p(other) of the first generated token. The release
hard-codes the refusal tokens per model (Llama-2: "I"); here they are the first tokens of
``refusal_phrases`` ("I'm sorry", "I cannot", ... give "I" and "Sorry" for SmolLM2 and Llama).

Deviations, and why:
- Data pools are the benchmarks' *train* splits, so test prompts never leak: OR-Bench-Hard's
  train split holds 25 prompts (the ACTOR protocol), so the pseudo-harmful pool is split 20/5
  instead of 128/32 (the same ratio); more pools can be added with ``pseudo_sources``.
  Harmful = ``harmful-train`` (HarmBench, TDC 2023, MaliciousInstruct; AdvBench is an
  evaluation set here), harmless = Alpaca's train file. Offline: the demo sets.
- Filtering is skipped for a class when fewer than ``min_filtered`` prompts would remain
  (``filter=auto``; the release always filters); the artifact records what happened.
- Layers in the last ``prune_layers`` fraction are not evaluated at all (the release scores
  them and then discards them), and the harmless KL is computed only until the best-scoring
  candidate within the bound is found (``full_table=true`` computes all): the choice is the
  same, and on a CPU the search costs minutes instead of an hour.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from orbench_harness.catalog import Register
from orbench_harness.console import progress
from orbench_harness.errors import HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodargs import ADDED_LATER, fingerprint, parse_config
from orbench_harness.methodkit.activations import HFDelegate, require_hf
from orbench_harness.methodkit.directions import (
    ablation_hooks,
    block_inputs,
    digest,
    eoi_length,
    kl_divergence,
    last_logits,
    load_artifact,
    orthogonalized,
    refusal_scores,
    refusal_token_ids,
    save_artifact,
    split_pool,
)
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, OnBatch, Policy
from orbench_harness.types import Capability, Completion, GenParams, Prompt, Sample

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

VERSION = 1
STEM = "surgical"
GROUPS = ("harmful", "pseudo", "harmless")


@dataclass(frozen=True, slots=True)
class SurgicalConfig:
    """Every option of Surgical; all of it is part of the fingerprint."""

    mode: Literal["hooks", "weights"] = "hooks"
    """hooks ablates the direction with forward hooks; weights orthogonalises the weights (restored
    on exit). The two agree at ablation_coeff 1.
    """
    ortho_lambda: float = 1.0
    """How much of the true-refusal direction is projected out of the false-refusal one. Paper: 1.0.
    """
    ablation_coeff: float = 1.0
    """Coefficient c of the ablation x - c (x.d) d. Paper: 1.0."""
    kl_threshold: float = 0.2
    """Largest KL divergence on harmless validation prompts a kept candidate may cause. Paper: 0.2.
    """
    prune_layers: float = 0.2
    """Fraction of the last layers never considered. Paper: 0.2."""
    n_train: int = 128
    """Training prompts per class. Paper: 128."""
    n_val: int = 32
    """Validation prompts per class. Paper: 32."""
    seed: int = 1
    """Seed of the train/validation draw. Paper: 1."""
    filter: Literal["auto", "on", "off"] = "auto"
    """Keep only training prompts whose refusal score agrees with their class: on, off, or auto (on
    unless a class would keep fewer than min_filtered). Paper: on.
    """
    min_filtered: int = 8
    """Fewest prompts a class may keep after filtering under filter=auto."""
    refusal_phrases: str = "I'm sorry|I cannot|I can't|Sorry|I apologize"
    """Phrases whose first tokens count as refusal tokens for the refusal score, |-separated."""
    pseudo_sources: str = "auto"
    """Benchmarks whose train splits give the pseudo-harmful prompts, comma-separated; auto is OR-
    Bench-Hard's. Paper: OR-Bench-Hard.
    """
    data: Literal["auto", "demo", "paper"] = "auto"
    """Training prompts: paper draws the paper's pools from the benchmarks' train splits, demo uses
    the shipped demo set, auto is paper when a data directory is given and demo otherwise.
    """
    layer: str = "auto"
    """Layer of the direction: auto selects it on the validation prompts, an integer forces it."""
    position: str = "auto"
    """Post-instruction position of the direction: auto selects it, an integer (negative from the
    end) forces it.
    """
    full_table: bool = False
    """Score every candidate and compute every KL check instead of stopping at the best one within
    bound.
    """
    batch_size: int = 32
    """Prompts per forward pass while candidates are computed and scored."""
    prompt_suffix: str = field(default="", metadata=ADDED_LATER)
    """Text after the rendered prompt, in training and in use: the release renders Llama-2 as
    '[INST] q [/INST] ' with a trailing space (' '), which adds a token to the end-of-instruction
    positions and changes what the first answer token is.
    """

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_val < 1 or self.batch_size < 1:
            raise ValueError("n_train, n_val and batch_size must be >= 1")
        if not 0 <= self.prune_layers < 1:
            raise ValueError("prune_layers must be in [0, 1)")
        for key in ("layer", "position"):
            value = getattr(self, key)
            if value != "auto" and not value.lstrip("-").isdigit():
                raise ValueError(f"{key} must be 'auto' or an integer (got {value!r})")


@dataclass(frozen=True, slots=True)
class SurgicalData:
    """Train and val prompts of the three classes, and their sources."""

    train: Mapping[str, tuple[Sample, ...]]
    val: Mapping[str, tuple[Sample, ...]]
    sources: Mapping[str, tuple[str, ...]]

    def digest(self) -> str:
        """Hash of every prompt in order, for the fingerprint."""
        return digest(*(self.train[g] for g in GROUPS), *(self.val[g] for g in GROUPS))


def build_data(cfg: SurgicalConfig, env: MethodEnv) -> SurgicalData:
    """Seeded train/val splits of the three pools (benchmark train splits only)."""
    rng = random.Random(cfg.seed)
    mode = cfg.data if cfg.data != "auto" else ("paper" if env.data_dir else "demo")
    names: dict[str, tuple[str, ...]] = {
        "harmful": ("demo-harmful",), "pseudo": ("demo-pseudo-harmful",), "harmless": ("demo-benign",)}
    if mode == "paper":
        names = {"harmful": ("harmful-train",), "pseudo": ("orbench-hard",), "harmless": ("alpaca",)}
    if cfg.pseudo_sources != "auto":
        names["pseudo"] = tuple(n.strip() for n in cfg.pseudo_sources.split(",") if n.strip())
    train: dict[str, tuple[Sample, ...]] = {}
    val: dict[str, tuple[Sample, ...]] = {}
    for group in GROUPS:
        pool = [s for name in names[group] for s in env.train_samples(name)]
        if len(pool) < 2:
            raise HarnessError(f"surgical: the {group} pool ({', '.join(names[group])}) has fewer than 2 prompts")
        tr, va = split_pool(pool, cfg.n_train, cfg.n_val, rng)
        train[group], val[group] = tuple(tr), tuple(va)
    return SurgicalData(train, val, names)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate direction's selection statistics (layer, position index from the end)."""

    layer: int
    position: int
    score: float
    kl: float
    pruned: bool = False


def select(candidates: Sequence[Candidate], kl_threshold: float) -> Candidate | None:
    """The lowest pseudo-harmful refusal score among unpruned candidates within the KL bound."""
    ok = [c for c in candidates if not c.pruned and math.isfinite(c.score) and c.kl <= kl_threshold]
    return min(ok, key=lambda c: c.score) if ok else None


def orthogonalize(f: torch.Tensor, r: torch.Tensor, lam: float) -> torch.Tensor:
    """``f - lam * proj_r(f)`` along the last axis, then unit-normalised."""
    coef = (f * r).sum(-1, keepdim=True) / (r * r).sum(-1, keepdim=True).clamp(min=1e-12)
    out = f - lam * coef * r
    normed: torch.Tensor = out / out.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return normed


class Surgical:
    """Surgical as a harness method: ``mode=hooks`` (hf) or ``mode=weights`` (no hooks)."""

    name = "surgical"

    def __init__(self, cfg: SurgicalConfig, data: SurgicalData) -> None:
        self.cfg = cfg
        self.data = data
        self.requires = frozenset({Capability.HOOKS} if cfg.mode == "hooks" else {Capability.WEIGHTS})

    def fingerprint(self) -> str:
        """Config (data seed included) + data digest + version."""
        return fingerprint(self.name, VERSION, self.cfg, data=self.data.digest(), seed=self.cfg.seed)

    def ablated(self, hf: HFModel, d: torch.Tensor) -> AbstractContextManager[None]:
        """The configured mechanism removing ``d``: hooks or orthogonalised weights."""
        if self.cfg.mode == "weights":
            return orthogonalized(hf, d, self.cfg.ablation_coeff)
        forward, pre = ablation_hooks(hf, d, self.cfg.ablation_coeff)
        return hf.hooks(forward=forward, pre=pre)

    def prepare(self, model: ModelHandle, ctx: MethodContext) -> dict[str, Any]:
        """Candidates, selection and the chosen direction (cached under ``ctx.artifact_dir``)."""
        hf = require_hf(model, self.name)
        cached = load_artifact(ctx.artifact_dir, STEM)
        if cached is not None:
            ctx.log(f"surgical: direction found in {ctx.artifact_dir}")
            return {"direction": cached[0]["direction"], "meta": cached[1]}
        cfg, bs = self.cfg, self.cfg.batch_size
        refusal_ids = refusal_token_ids(hf, cfg.refusal_phrases.split("|"))
        suffixed = Suffixed(hf, cfg.prompt_suffix)
        enc = {k: {g: [suffixed.encode_prompt(s.as_prompt()) for s in split[g]] for g in GROUPS}
               for k, split in (("train", self.data.train), ("val", self.data.val))}
        train, filtering = self.filter_train(hf, enc["train"], refusal_ids)
        k = eoi_length(hf) + suffixed.extra_tokens()
        positions = list(range(-k, 0))
        means = {g: block_inputs(hf, train[g], positions, bs).mean(0) for g in GROUPS}  # [L, P, d]
        r = means["harmful"] - means["harmless"]
        cands = orthogonalize(means["pseudo"] - means["harmless"], r, cfg.ortho_lambda)
        baseline, scored = self.score_candidates(hf, cands, enc["val"], refusal_ids, ctx)
        forced = cfg.layer != "auto" or cfg.position != "auto"
        chosen = self.forced(scored) if forced else select(scored, cfg.kl_threshold)
        if chosen is None:
            raise HarnessError(f"surgical: every candidate exceeds KL {cfg.kl_threshold} on harmless prompts; "
                               "raise --method-arg kl_threshold=... or pick layer=/position=")
        direction = cands[chosen.layer, chosen.position + k].clone()
        meta = {
            "layer": chosen.layer, "position": chosen.position, "score": chosen.score, "kl": chosen.kl,
            "baseline_score": baseline, "eoi_tokens": k, "refusal_token_ids": refusal_ids,
            "filtering": filtering, "sources": {g: list(v) for g, v in self.data.sources.items()},
            "n_val": {g: len(enc["val"][g]) for g in GROUPS},
            "candidates": [asdict(c) for c in scored],
        }
        save_artifact(ctx.artifact_dir, STEM, {"direction": direction, "candidates": cands, "true_refusal": r}, meta)
        ctx.log(f"surgical: layer {chosen.layer}, position {chosen.position}: pseudo-harmful val refusal score "
                f"{baseline:.2f} -> {chosen.score:.2f}, harmless KL {chosen.kl:.3f}")
        return {"direction": direction, "meta": meta}

    def filter_train(self, hf: HFModel, rows: Mapping[str, list[list[int]]], refusal_ids: Sequence[int]
                     ) -> tuple[dict[str, list[list[int]]], dict[str, dict[str, Any]]]:
        """Keep train prompts whose baseline refusal score agrees with their class."""
        kept: dict[str, list[list[int]]] = {}
        report: dict[str, dict[str, Any]] = {}
        for g in GROUPS:
            scores = refusal_scores(last_logits(hf, rows[g], self.cfg.batch_size), refusal_ids).tolist()
            keep = [x for x, s in zip(rows[g], scores, strict=True) if (s < 0 if g == "harmless" else s > 0)]
            use = self.cfg.filter == "on" or (self.cfg.filter == "auto" and len(keep) >= self.cfg.min_filtered)
            if use and not keep:
                raise HarnessError(f"surgical: filtering leaves no {g} train prompt; use filter=off")
            kept[g] = keep if use else list(rows[g])
            report[g] = {"pool": len(rows[g]), "agreeing": len(keep), "filtered": use,
                         "mean_score": round(sum(scores) / len(scores), 4)}
        return kept, report

    def score_candidates(self, hf: HFModel, cands: torch.Tensor, val: Mapping[str, list[list[int]]],
                         refusal_ids: Sequence[int], ctx: MethodContext) -> tuple[float, list[Candidate]]:
        """The unablated pseudo-harmful val refusal score, and per candidate its ablated score and
        harmless KL (pruned candidates, and those a forced layer/position excludes, unscored).

        The KL is computed lazily, in order of increasing score, until one candidate is within
        the bound: the selection is the same as with the full table at a fraction of the cost
        (harmless val is the larger set). ``full_table=true`` (or a forced layer/position)
        computes every KL; candidates whose KL was not needed keep ``kl = nan``."""
        n_layers, n_pos = cands.shape[0], cands.shape[1]
        limit = int(n_layers * (1.0 - self.cfg.prune_layers))
        pseudo, harmless = val["pseudo"], val["harmless"]
        bs = self.cfg.batch_size
        base = last_logits(hf, harmless, bs)
        baseline = float(refusal_scores(last_logits(hf, pseudo, bs), refusal_ids).mean())
        forced = self.cfg.layer != "auto" or self.cfg.position != "auto"
        scores: dict[tuple[int, int], float] = {}
        with progress() as prog:
            task = prog.add_task("surgical: scoring candidates", total=None)
            for layer in range(n_layers):
                for pos in range(-n_pos, 0):
                    if (layer < limit or forced) and self.wanted(layer, pos):
                        with self.ablated(hf, cands[layer, pos + n_pos]):
                            logits = last_logits(hf, pseudo, bs)
                        scores[layer, pos] = float(refusal_scores(logits, refusal_ids).mean())
                        prog.advance(task)
            kls: dict[tuple[int, int], float] = {}
            for key in sorted(scores, key=lambda k: scores[k]):
                if not math.isfinite(scores[key]):
                    continue
                with self.ablated(hf, cands[key[0], key[1] + n_pos]):
                    kls[key] = kl_divergence(base, last_logits(hf, harmless, bs))
                prog.advance(task)
                if kls[key] <= self.cfg.kl_threshold and not (self.cfg.full_table or forced):
                    break
        out = [Candidate(layer, pos, scores.get((layer, pos), math.nan), kls.get((layer, pos), math.nan),
                         (layer, pos) not in scores)
               for layer in range(n_layers) for pos in range(-n_pos, 0)]
        ctx.log(f"surgical: scored {len(scores)} candidates (layers < {limit}), {len(kls)} KL checks")
        return baseline, out

    def wanted(self, layer: int, pos: int) -> bool:
        """Whether a forced ``layer``/``position`` admits this candidate."""
        return (self.cfg.layer == "auto" or int(self.cfg.layer) == layer) and (
            self.cfg.position == "auto" or int(self.cfg.position) == pos)

    def forced(self, scored: Sequence[Candidate]) -> Candidate | None:
        """The best scored candidate matching a forced layer/position (no KL bound)."""
        ok = [c for c in scored if not c.pruned and math.isfinite(c.score)]
        return min(ok, key=lambda c: c.score) if ok else None

    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """The model with the direction ablated (hooks or weights); restored on exit."""
        hf = require_hf(model, self.name)
        with self.ablated(hf, artifact["direction"]):
            yield Suffixed(hf, self.cfg.prompt_suffix) if self.cfg.prompt_suffix else hf


class Suffixed(HFDelegate):
    """The model with ``suffix`` after every rendered prompt (``prompt_suffix``)."""

    def __init__(self, hf: HFModel, suffix: str) -> None:
        self.hf = hf
        self.suffix = suffix

    def render(self, prompt: Prompt) -> str:
        """The chat template's rendering plus the suffix."""
        return self.hf.render(prompt) + self.suffix

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Rendered (with the suffix) and tokenised."""
        return self.hf.encode(self.render(prompt))

    def extra_tokens(self) -> int:
        """How many tokens the suffix adds at the end of a prompt, tokenised in context."""
        probe = Prompt.user("Hi")
        return len(self.encode_prompt(probe)) - len(self.hf.encode_prompt(probe))

    def generate(self, prompts: Sequence[Prompt], params: GenParams, *, batch_size: int = 8,
                 on_batch: OnBatch | None = None) -> list[Completion]:
        """Generation from the suffixed prompts."""
        return self.hf.generate_ids([self.encode_prompt(p) for p in prompts], params, batch_size=batch_size,
                                    on_batch=on_batch)

    def token_logprobs(self, sequences: Sequence[Sequence[int]], batch_size: int = 8) -> list[list[float]]:
        """The wrapped model's scores (sequences come tokenised from ``render``)."""
        return self.hf.token_logprobs(sequences, batch_size=batch_size)


def create(args: Mapping[str, str], env: MethodEnv) -> Surgical:
    """Factory: options from ``--method-arg``; data from benchmark train splits."""
    cfg = parse_config(SurgicalConfig, args, method="surgical")
    return Surgical(cfg, build_data(cfg, env))


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``surgical``."""
    register("surgical", create, summary="Surgical: ablate one false-refusal direction (hooks or weight edit)",
             requires=["hooks"])
