"""``safe-decoding``: SafeDecoding (Xu et al., ACL 2024), a decoding-time jailbreak defence.

Source: ``uw-nsl/SafeDecoding @ 5b77507dea95031b6a067e6d5a136831103ae193`` as summarised in
docs/methods.md, Safe-Decoding: ``exp/finetune.py`` (building the expert),
``lora_modules/llama2/adapter_config.json`` (its LoRA shape), ``utils/safe_decoding.py``
(``SafeDecoding.safedecoding_lora``, the decoding) and ``exp/defense.py`` (the defaults).

The expert is a LoRA adapter (r=16, alpha=64, dropout 0.1 on ``q_proj``/``v_proj``) trained on
the model's *own* refusals: seed harmful prompts are answered under a system prompt that tells
the model to refuse (temperature 0.8, top-p 0.9, 2 answers per prompt, up to 5 attempts each),
answers that refuse and have at least 10 tokens are kept, and the adapter is fine-tuned on them
*without* that system prompt (2 epochs, lr 2e-3, batch 1, AdamW, max_grad_norm 0.3, warmup
0.03, linear schedule). Decoding: for the first ``m`` tokens (m=2) the base and expert
next-token distributions are mixed over the tokens both rank highly (k grows from
``num_common_tokens``=5 until the two top-k sets share at least 5 tokens),
``p = p_base + alpha * (p_expert - p_base)`` (alpha=3), floored at 1e-8 and renormalised over
that set, greedy; after that the base model alone finishes the answer.

Deviations, and why:
- The refusal filter is a judge of the harness (``judge=strmatch`` by default: XSTest's refusal
  prefixes, which test the paper's "explicitly rejects the question at the beginning"), not
  GPT-4, which is not reachable offline; ``filter=none`` keeps every answer of >= ``min_tokens``
  tokens (an ablation, and what the tiny-model tests use).
- Seed prompts: the harness's harmful *train* pool (``harmful-train`` with a data dir, the
  demo set's ``demo-harmful`` train split offline), ``n_seeds``=36 sampled with the run seed,
  not the paper's ``seed_reject.json``. The refusal system prompt is our own wording.
- SFT details the paper leaves to its trainer: the loss covers the answer tokens only (the
  prompt is masked), the answer ends with the tokenizer's EOS, AdamW weight decay 0 (the
  Trainer default), LoRA init seeded with the run seed, sequences capped at ``max_seq``.
- Stock PEFT: the base and expert passes are two forward passes (the adapter switched off with
  ``disable_adapter()`` for the base), each with its own KV cache, instead of the repo's forked
  PEFT with per-row adapter names. Batched over prompts (the released code runs one at a time).
- With ``temperature > 0`` the first ``m`` tokens are sampled top-p from the mixed set (as the
  released code does) and the rest from the base model with temperature and top-p.
- ``expert_adapter=DIR`` uses a ready expert (the release ships one for Llama-2 in
  ``lora_modules/llama2``) instead of building one; nothing is sampled or trained then, and the
  adapter's weights are hashed into the fingerprint.
- Scoring (MMLU, perplexity) uses the base model: SafeDecoding only changes the first ``m``
  tokens of a *generated* answer, and its set-restricted mixture gives no probability to tokens
  outside the common set, so it defines no likelihood for a given text.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.catalog import Register
from orbench_harness.errors import HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodargs import fingerprint, parse_config
from orbench_harness.methodkit.activations import HFDelegate, require_hf
from orbench_harness.methodkit.artifacts import cached_or_computed
from orbench_harness.methodkit.decoding import (
    CachedStream,
    choose,
    eos_tensor,
    generate_batched,
    make_generator,
    take_step,
    top_p_keep,
)
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, OnBatch, Policy
from orbench_harness.registry import Registry
from orbench_harness.types import Capability, Completion, GenParams, Prompt, Sample
from orbench_methods.safe_decoding.config import SafeDecodingConfig
from orbench_methods.safe_decoding.expert import build_expert, load_expert

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

VERSION = 1


# -- the mixing rule ---------------------------------------------------------------------------
def common_tokens(logp_base: torch.Tensor, logp_expert: torch.Tensor, n_common: int) -> list[int]:
    """Token ids in both top-k lists, k grown from ``n_common`` until there are >= ``n_common``
    of them (or the vocabulary is exhausted); ordered by the rank at which they joined."""
    import torch

    rank_b = torch.argsort(logp_base, descending=True).tolist()
    rank_e = torch.argsort(logp_expert, descending=True).tolist()
    seen_b: set[int] = set()
    seen_e: set[int] = set()
    common: list[int] = []
    for k in range(len(rank_b)):
        b, e = rank_b[k], rank_e[k]
        seen_b.add(b)
        seen_e.add(e)
        for t in (b, e) if b != e else (b,):
            if t in seen_b and t in seen_e and t not in common:
                common.append(t)
        if k + 1 >= n_common and len(common) >= n_common:
            break
    return common


def mix(logp_base: torch.Tensor, logp_expert: torch.Tensor, tokens: Sequence[int], alpha: float) -> torch.Tensor:
    """SafeDecoding's distribution over ``tokens``: p_base + alpha*(p_expert - p_base), floored
    at 1e-8, renormalised over the set (softmax of the log, as the paper writes it)."""
    import torch

    idx = torch.tensor(list(tokens), device=logp_base.device)
    pb, pe = logp_base[idx].exp(), logp_expert[idx].exp()
    p = (pb + alpha * (pe - pb)).clamp(min=1e-8)
    return p / p.sum()


def safe_decode_ids(
    hf: HFModel, peft_model: Any, rows: Sequence[list[int]], cfg: SafeDecodingConfig, params: GenParams, start: int = 0
) -> list[list[int]]:
    """New token ids per row: ``first_m`` mixed tokens, then the base model alone."""
    import torch

    base = CachedStream(hf, rows, adapter=peft_model.disable_adapter)
    expert = CachedStream(hf, rows) if cfg.first_m > 0 else None
    eos = eos_tensor(hf)
    gen = make_generator(hf, params, start)
    done = torch.zeros(len(rows), dtype=torch.bool, device=base.logits.device)
    out: list[list[int]] = [[] for _ in rows]
    for step in range(params.max_new_tokens):
        if step < cfg.first_m and expert is not None:
            tok = _mixed_step(base.logits, expert.logits, cfg, params, gen)
        else:
            tok = choose(base.logits, params, gen)
        tok, done = take_step(tok, done, out, eos, hf.tokenizer.pad_token_id)
        if bool(done.all()) or step == params.max_new_tokens - 1:
            break
        base.push(tok)
        if expert is not None and step + 1 < cfg.first_m:
            expert.push(tok)
    return out


def _mixed_step(
    z_base: torch.Tensor, z_expert: torch.Tensor, cfg: SafeDecodingConfig, params: GenParams,
    gen: torch.Generator | None,
) -> torch.Tensor:
    import torch

    lb, le = torch.log_softmax(z_base, dim=-1), torch.log_softmax(z_expert, dim=-1)
    picks = []
    for j in range(len(lb)):
        tokens = common_tokens(lb[j], le[j], cfg.num_common_tokens)
        p = mix(lb[j], le[j], tokens, cfg.alpha)
        if params.greedy:
            k = int(torch.argmax(p))
        else:
            k = int(torch.multinomial(top_p_keep(p, params.top_p), 1, generator=gen))
        picks.append(tokens[k])
    return torch.tensor(picks, device=z_base.device)


# -- the policy --------------------------------------------------------------------------------
class SafeDecodingPolicy(HFDelegate):
    """Generation with the expert mixed into the first tokens; scoring by the base model."""

    def __init__(self, hf: HFModel, peft_model: Any, cfg: SafeDecodingConfig) -> None:
        self.hf = hf
        self.peft_model = peft_model
        self.cfg = cfg

    def generate(
        self, prompts: Sequence[Prompt], params: GenParams, *, batch_size: int = 8, on_batch: OnBatch | None = None
    ) -> list[Completion]:
        """SafeDecoding generation, batched over prompts."""
        items = [(self.hf.encode_prompt(p),) for p in prompts]

        def decode(batch: list[tuple[list[int], ...]], p: GenParams, start: int) -> list[list[int]]:
            return safe_decode_ids(self.hf, self.peft_model, [b[0] for b in batch], self.cfg, p, start)

        return generate_batched(self.hf, items, params, decode, batch_size=batch_size, on_batch=on_batch)

    def token_logprobs(self, sequences: Sequence[Sequence[int]], batch_size: int = 8) -> list[list[float]]:
        """The base model's log-probabilities (adapter off; see the module docstring)."""
        with self.peft_model.disable_adapter():
            return self.hf.token_logprobs(sequences, batch_size)


# -- the method --------------------------------------------------------------------------------
def seed_prompts(cfg: SafeDecodingConfig, env: MethodEnv) -> tuple[Sample, ...]:
    """``n_seeds`` harmful prompts from a train split, sampled with the run seed."""
    mode = cfg.data if cfg.data != "auto" else ("paper" if env.data_dir else "demo")
    pool = env.train_samples("harmful-train" if mode == "paper" else "demo-harmful")
    chosen = pool if cfg.n_seeds >= len(pool) else random.Random(env.seed).sample(pool, cfg.n_seeds)
    return tuple(chosen)


class SafeDecoding:
    """SafeDecoding as a harness method: trains the expert once, then decodes with it."""

    name = "safe-decoding"
    requires = frozenset({Capability.LOGITS, Capability.TRAINING})

    def __init__(self, cfg: SafeDecodingConfig, seeds: tuple[Sample, ...], seed: int = 0) -> None:
        self.cfg = cfg
        self.seeds = seeds
        self.seed = seed
        self.given = given_expert(cfg.expert_adapter) if cfg.expert_adapter else None

    def fingerprint(self) -> str:
        """Config + seed prompts + run seed (it drives sampling and LoRA init) + version (+ a
        given expert's weights hash)."""
        digest = hashlib.sha256(json.dumps([[s.id, s.prompt] for s in self.seeds]).encode()).hexdigest()
        extra = {"expert": self.given["meta"]["sha256"]} if self.given else {}
        return fingerprint(self.name, VERSION, self.cfg, data=digest, seed=self.seed, **extra)

    def prepare(self, model: ModelHandle, ctx: MethodContext) -> dict[str, Any]:
        """The expert adapter from ``ctx.artifact_dir``, built (refusals, then SFT) if absent."""
        hf = require_hf(model, self.name)
        if self.given is not None:
            ctx.log(f"safe-decoding: expert adapter given ({self.cfg.expert_adapter})")
            return self.given
        return cached_or_computed(ctx.artifact_dir, load_expert,
                                  lambda: build_expert(hf, self.cfg, self.seeds, self.seed, ctx), log=ctx.log,
                                  found="safe-decoding: expert adapter")

    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """Load the expert LoRA into the model; remove it (and restore grad flags) on exit."""
        from peft import PeftModel

        hf = require_hf(model, self.name)
        flags = {n: p.requires_grad for n, p in hf.model.named_parameters()}
        peft_model = PeftModel.from_pretrained(hf.model, str(artifact["path"]))
        peft_model.eval()
        try:
            yield SafeDecodingPolicy(hf, peft_model, self.cfg)
        finally:
            peft_model.unload()
            for n, p in hf.model.named_parameters():
                p.requires_grad_(flags.get(n, p.requires_grad))


def given_expert(path: str) -> dict[str, Any]:
    """A ready expert adapter directory as an artifact, identified by its weights' sha256."""
    root = Path(path).expanduser()
    weights = [root / n for n in ("adapter_model.safetensors", "adapter_model.bin") if (root / n).is_file()]
    if not (root / "adapter_config.json").is_file() or not weights:
        raise HarnessError(f"safe-decoding: expert_adapter {path} is not a PEFT adapter directory "
                           "(adapter_config.json and adapter_model.safetensors or .bin expected)")
    sha = hashlib.sha256(weights[0].read_bytes()).hexdigest()
    return {"path": root.resolve(), "meta": {"source": "given", "path": str(root.resolve()), "sha256": sha}}


def create(args: Mapping[str, str], env: MethodEnv) -> SafeDecoding:
    """Factory: options from ``--method-arg``, seed prompts from the train pool."""
    cfg = parse_config(SafeDecodingConfig, args, method="safe-decoding")
    if cfg.filter == "judge":
        Registry().judges().get(cfg.judge)  # an unknown judge fails here, before any work
    return SafeDecoding(cfg, seed_prompts(cfg, env), env.seed)


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``safe-decoding``."""
    register("safe-decoding", create, summary="SafeDecoding: refusal-expert LoRA mixed into the first tokens",
             aliases=("safedecoding",), requires=["logits", "training"])
