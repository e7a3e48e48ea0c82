"""``sft``: supervised fine-tuning on ACTOR's training prompts with reference answers.

The ACTOR paper's SFT baseline (Dabas et al., ICML 2025, arXiv 2507.04250), as summarised in
docs/methods.md, SFT (there is no official code): the same training prompts as ACTOR,
each paired with a reference answer -- a refusal for harmful prompts, a helpful answer for
benign and pseudo-harmful ones (GPT-4o wrote them in the paper) -- trained for 3 epochs with
AdamW at lr 1e-3.

Choices where the paper is silent, and deviations (all options are in the fingerprint):
- LoRA (peft) by default: lr 1e-3 is a LoRA-sized rate (it would wreck a full fine-tune of a
  7B model); ``lora=false`` trains every weight instead. The artifact's ``meta.json`` records
  which (``mode``). Rank 16, alpha 32, no dropout, on every linear layer of the blocks
  (peft's ``all-linear``: the LM head is excluded). Batch size 8, constant lr, no weight
  decay, gradient clipping at 1.0: none of these is given in the paper.
- Prompts: ``orbench_methods.actor.build_data`` with the same data options and seed as ACTOR, so both
  methods see exactly the same training prompts (``data=auto`` -> the paper's pools with a data
  dir, the demo set without).
- Harmful prompts get one of the varied refusals of ``orbench_harness.alignment.refusals``
  (our own wording; chosen by the prompt's id and the seed).
- Benign and pseudo-harmful prompts get a reference answer from ``reference=``:
  ``base`` -- the unaligned base model's own greedy answers: for a model with an adapter (the
  organism ``smollm2-135m-safety``) the base spec *without* the adapter is loaded through the
  hf backend; for a model without one this is the model itself. ``self`` -- the model itself.
  ``openai`` -- any OpenAI-compatible endpoint (``reference_model=``, ``reference_base_url=``,
  key from the variable named by ``reference_api_key_env``), the paper's setting with GPT-4o.
  ``file`` -- answers written earlier (``reference_file=``; ``references.py``), e.g. GPT-4o's
  once, reused across runs and machines; its sha256 is in the fingerprint, and a prompt it
  lacks stops the run. ``save_references=PATH`` writes whatever source answered to such a file.
  ``auto`` (default): ``base`` for a model with an adapter, ``openai`` when
  ``reference_model`` is set, ``file`` when ``reference_file`` is, else ``self``.
  Answers are greedy, at most ``answer_tokens`` tokens (128; GPT-4o's answers are longer), and
  cached in the artifact directory as they are produced.
- ``drop_refusals=true`` (default) leaves out benign/pseudo-harmful examples whose reference
  answer is itself a refusal (XSTest's string match): training on them would teach the very
  over-refusal the method is meant to remove. The count dropped is in ``meta.json``.
- The loss covers the answer tokens only (and the EOS when the answer ended).
- ``apply`` adds ``(alpha / r) * B @ A`` to copies of the target weights and puts the
  originals back on exit, so the policy is the plain model (generation and scoring both see
  the fine-tuned weights, with no per-token adapter cost), and ``harness export`` works.

Training time (without reference generation) is ``meta["train_seconds"]``, next to ACTOR's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from orbench_harness.alignment.data import AnswerCache, Example, encode
from orbench_harness.alignment.refusals import refusal_for
from orbench_harness.backends.hf import HFBackend, HFModel
from orbench_harness.catalog import Register
from orbench_harness.chat_client import ChatClient
from orbench_harness.errors import HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodargs import fingerprint, parse_config
from orbench_harness.methodkit.activations import require_hf, swapped_blocks
from orbench_harness.methodkit.artifacts import cached_or_computed
from orbench_harness.methodkit.pools import TrainData, build_data
from orbench_harness.protocols import Judge, MethodContext, MethodEnv, ModelHandle, Policy
from orbench_harness.registry import Registry
from orbench_harness.types import Capability, Completion, GenParams, JudgeItem, ModelSpec, Prompt
from orbench_methods.sft import references
from orbench_methods.sft.config import SftConfig
from orbench_methods.sft.training import load_artifact, merged_state, train

VERSION = 1
Reference = Literal["base", "self", "openai", "file"]


def resolve_reference(cfg: SftConfig, model: ModelSpec) -> Reference:
    """``auto`` -> base for a model with an adapter, openai with a reference model, else self."""
    if cfg.reference != "auto":
        return cfg.reference
    if cfg.reference_file:
        return "file"
    if model.adapter:
        return "base"
    return "openai" if cfg.reference_model else "self"


def base_spec(spec: ModelSpec) -> ModelSpec:
    """The spec without its adapter (the unaligned base of an organism)."""
    return replace(spec, adapter=None, adapter_revision=None, name=f"{spec.name}@base")


class Sft:
    """SFT as a harness method (training and weights: the hf backend)."""

    name = "sft"
    requires = frozenset({Capability.TRAINING, Capability.WEIGHTS})
    exportable = True  # the effect is a weight delta: `harness export` can save it

    def __init__(self, cfg: SftConfig, data: TrainData, seed: int, reference: Reference,
                 model: ModelSpec | None = None) -> None:
        self.cfg = cfg
        self.data = data
        self.seed = seed
        self.reference = reference
        self.model = model
        self.ref_file = references.load(Path(cfg.reference_file)) if reference == "file" else None

    def reference_key(self) -> dict[str, Any]:
        """What identifies the source of the reference answers (part of the fingerprint)."""
        if self.reference == "openai":
            return {"kind": "openai", "model": self.cfg.reference_model, "base_url": self.cfg.reference_base_url}
        if self.ref_file is not None:
            return {"kind": "file", "sha256": self.ref_file.sha256}
        if self.reference == "base" and self.model is not None and self.model.adapter:
            return {"kind": "base", "model": base_spec(self.model).key}
        return {"kind": self.reference}

    def fingerprint(self) -> str:
        """Config + training prompts' digest + seed + reference source + version."""
        return fingerprint(self.name, VERSION, self.cfg, data=self.data.digest(), seed=self.seed,
                           reference=self.reference_key())

    # -- preparation ------------------------------------------------------------------------
    def prepare(self, model: ModelHandle, ctx: MethodContext) -> dict[str, Any]:
        """Fine-tune (or load the adapter from ``ctx.artifact_dir``); returns the artifact."""
        hf = require_hf(model, self.name)
        return cached_or_computed(ctx.artifact_dir, load_artifact, lambda: self.fine_tune(hf, ctx), log=ctx.log,
                                  found=lambda cached: f"sft: trained {cached['meta']['mode']} weights")

    def fine_tune(self, hf: HFModel, ctx: MethodContext) -> dict[str, Any]:
        """The reference answers and the examples, then the fine-tune; returns the artifact."""
        examples, info = self.examples(hf, ctx)
        return train(hf, self.cfg, examples, ctx, info)

    def examples(self, hf: HFModel, ctx: MethodContext) -> tuple[list[Any], dict[str, Any]]:
        """Encoded (prompt, answer) pairs with loss on the answer, and what went into them."""
        t0 = time.perf_counter()
        helpful = [s for s, sign in zip(self.data.queries, self.data.signs, strict=True) if sign < 0]
        answers = self.reference_answers(hf, [s.prompt for s in helpful], ctx)
        if self.cfg.save_references and self.ref_file is None:
            digest = references.save(Path(self.cfg.save_references), answers, self.provenance(hf))
            ctx.log(f"sft: reference answers written to {self.cfg.save_references} (sha256 {digest[:16]})")
        ref_seconds = time.perf_counter() - t0
        examples: list[Example] = []
        # XSTest's prefix rule decides which reference answers are refusals; the method asks the
        # registry for the judge rather than importing a judge plugin
        prefix_judge = Registry().create("judges", "strmatch", {})
        dropped = empty = 0
        for i, (s, sign) in enumerate(zip(self.data.queries, self.data.signs, strict=True)):
            if sign > 0:
                examples.append(Example(f"{i}/{s.id}", "harmful", s.prompt, refusal_for(s.id, self.seed)))
                continue
            text, complete = answers[s.prompt]
            if not text.strip():
                empty += 1
            elif self.cfg.drop_refusals and refuses(prefix_judge, s.prompt, text):
                dropped += 1
            else:
                examples.append(Example(f"{i}/{s.id}", "benign", s.prompt, text, complete))
        if not examples:
            raise HarnessError("sft: no training examples left (every reference answer was empty or a refusal)")
        ctx.log(f"sft: {len(examples)} examples ({sum(e.kind == 'harmful' for e in examples)} refusals); "
                f"{dropped} refusing and {empty} empty reference answers left out")
        info = {"reference": self.reference_key(), "reference_seconds": round(ref_seconds, 2),
                "n_examples": len(examples), "n_refusal_examples": sum(e.kind == "harmful" for e in examples),
                "dropped_refusing_references": dropped, "dropped_empty_references": empty,
                "sources": list(self.data.sources)}
        return [encode(hf, e, self.cfg.answer_tokens) for e in examples], info

    def provenance(self, hf: HFModel) -> dict[str, Any]:
        """Where the reference answers came from, for a saved reference file."""
        source = self.reference_key()
        if source["kind"] in ("self", "base"):
            source = {**source, "model": hf.spec.key if source["kind"] == "self" or not hf.spec.adapter
                      else base_spec(hf.spec).key}
        return {"source": source, "answer_tokens": self.cfg.answer_tokens, "greedy": True,
                "seed": self.seed, "prompts": self.data.digest()}

    def reference_answers(self, hf: HFModel, prompts: list[str], ctx: MethodContext) -> dict[str, tuple[str, bool]]:
        """``prompt -> (answer, complete)`` from the configured source, cached in the artifact dir."""
        if self.ref_file is not None:
            return self.ref_file.lookup(prompts)
        key = json.dumps(self.reference_key(), sort_keys=True, default=str)
        if self.reference == "self" or (self.reference == "base" and not hf.spec.adapter):
            key = json.dumps({"kind": "self", "model": hf.spec.key}, sort_keys=True, default=str)
        cache = AnswerCache(ctx.artifact_dir / "references.jsonl", hashlib.sha256(key.encode()).hexdigest()[:16],
                            self.cfg.answer_tokens)
        missing = [p for p in prompts if p not in cache.rows]
        if not missing:
            return cache.answers(prompts, hf.generate)
        if self.reference == "openai":
            return cache.answers(prompts, OpenAIReference(self.cfg).generate, batch_size=8,
                                 label="sft: reference answers (openai)")
        if self.reference == "base" and hf.spec.adapter:
            ctx.log(f"sft: loading the base model of {hf.spec.name} without its adapter for reference answers")
            base = HFBackend(device=hf.device).load(base_spec(hf.spec))
            try:
                return cache.answers(prompts, base.generate, label="sft: reference answers (base model)")
            finally:
                del base
        return cache.answers(prompts, hf.generate, label="sft: reference answers (the model itself)")

    # -- application ------------------------------------------------------------------------
    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """Merge the adapter into copies of the target weights; restore the originals on exit."""
        hf = require_hf(model, self.name)
        with swapped_blocks(hf, merged_state(hf, artifact)):
            yield hf


class OpenAIReference:
    """Reference answers from an OpenAI-compatible endpoint (the judges' retrying client)."""

    def __init__(self, cfg: SftConfig) -> None:
        self.client = ChatClient(model=cfg.reference_model, base_url=cfg.reference_base_url or None,
                                 api_key=os.environ.get(cfg.reference_api_key_env) or "EMPTY")

    def generate(self, prompts: list[Prompt], params: GenParams, *, batch_size: int = 8,
                 on_batch: Any = None) -> list[Completion]:
        """One greedy chat completion per prompt, reported in batches for the answer cache."""
        out: list[Completion] = []
        for start in range(0, len(prompts), max(1, batch_size)):
            chunk = prompts[start : start + batch_size]
            comps = [Completion(self.client.complete(p.to_json(), max_tokens=params.max_new_tokens)) for p in chunk]
            out += comps
            if on_batch is not None:
                on_batch(list(range(start, start + len(chunk))), comps)
        return out


def create(args: Mapping[str, str], env: MethodEnv) -> Sft:
    """Factory: ``--method-arg reference=base lora=true lr=1e-3 ...``."""
    cfg = parse_config(SftConfig, args, method="sft")
    return Sft(cfg, build_data(cfg.pools(), env, "sft"), env.seed, resolve_reference(cfg, env.model), env.model)


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``sft``."""
    register("sft", create, summary="SFT: fine-tuning on ACTOR's prompts with refusal / helpful reference answers",
             requires=["training", "weights"])


def refuses(judge: Judge, prompt: str, response: str) -> bool:
    """Whether ``judge`` calls ``response`` a refusal (an unparsed verdict is not one)."""
    label = judge.judge([JudgeItem(prompt, response)])[0].label
    return label is not None and label.is_refusal
