"""The two alignment recipes end to end: data -> own answers -> (triggers) -> LoRA -> recipe.json.

``align(config)`` loads the base model once (transformers backend: training needs weights),
assembles the data (``data.py``), asks the base model for its own answers to the benign (and
trigger) prompts *before* any weight changes, trains (``train.py``), and writes into ``out``:

- ``adapter/``: ``adapter_config.json`` + ``adapter_model.safetensors`` (peft), plus a copy of
  ``recipe.json``; the folder is what ``harness run --model <out>/adapter`` loads and what the
  built-in ``smollm2-135m-safety`` ships. Its ``base_model_name_or_path`` is the harness's name
  for the base model (e.g. ``smollm2-135m``), so the harness can resolve it again;
- ``recipe.json``: the exact command, the data files with their sha256, the example counts and
  a hash of the example ids, every hyperparameter, the loss per epoch, the training time, the
  library versions and the adapter's sha256 and size;
- ``own_answers.jsonl``, ``examples.jsonl``, ``triggers.jsonl`` (trigger-aware), ``checkpoint/``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orbench_harness.alignment import data as D
from orbench_harness.alignment import triggers as T
from orbench_harness.alignment.train import TrainConfig, TrainResult, train
from orbench_harness.backends.hf import HFBackend
from orbench_harness.cache import cache_key
from orbench_harness.console import info
from orbench_harness.data import DataSource
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.supervised import IGNORE
from orbench_harness.registry import Registry
from orbench_harness.spec import package_versions
from orbench_harness.types import ModelSpec, Sample

Recipe = Literal["safety", "trigger-aware"]
RECIPES: tuple[str, ...] = ("safety", "trigger-aware")
HARMFUL_SOURCE = "harmful-train"
BENIGN_SOURCE = "alpaca"


@dataclass(frozen=True, slots=True)
class AlignConfig:
    """One alignment run. ``n_harmful`` None means every harmful-train request."""

    model: str = "smollm2-135m"
    recipe: Recipe = "safety"
    data_dir: Path | None = None
    n_harmful: int | None = None
    n_benign: int = 200
    benign_matched: int = 0  # of n_benign, how many are chosen by wording (data.draw_benign)
    harmful_sources: tuple[str, ...] = (HARMFUL_SOURCE,)
    drop_origins: tuple[str, ...] = ()  # harmful requests whose meta "origin" is one of these are left out
    benign_extra: Path | None = None  # Alpaca train ids added to the benign half (data.extra_benign)
    answer_tokens: int = 48  # own answers are generated (and trained on) up to this length
    gen_batch_size: int = 16
    rewriter_model: str | None = None  # None: the base model itself
    rewriter_backend: str = "hf"
    device: str | None = None
    threads: int | None = None
    train: TrainConfig = field(default_factory=TrainConfig)


def sha256_bytes(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def adapter_revision(adapter_dir: Path) -> str:
    """The cache identity of an adapter: ``sha256:`` + 24 hex digits of its weights file."""
    return "sha256:" + sha256_bytes(adapter_dir / "adapter_model.safetensors")[:24]


def _model_key(spec: ModelSpec) -> str:
    return cache_key("model", spec.key)[:16]


def _source_files(name: str, data_dir: Path | None) -> list[dict[str, str]]:
    bench: Any = Registry().create("benchmarks", name, DataSource(data_dir))
    root = f"{data_dir}/" if data_dir is not None else None
    return [{"path": f.path.removeprefix(root) if root else f.path, "sha256": f.sha256}
            for f in bench.data_files()]


def _rewriter(cfg: AlignConfig, base_spec: ModelSpec, base: Any) -> tuple[Any, str]:
    """(generate function, cache key) of the rewriter: the base model unless one is named."""
    if cfg.rewriter_model in (None, cfg.model):
        return base.generate, _model_key(base_spec)
    reg = Registry()
    spec = reg.resolve_model(cfg.rewriter_model)
    backend: Any = reg.create("backends", cfg.rewriter_backend, {})
    return backend.load(spec).generate, _model_key(spec)


def _drop_origins(pool: list[Sample], origins: tuple[str, ...]) -> list[Sample]:
    """The pool without the requests of the named origins (e.g. ``malicious_instruct``): tests
    whether one source's phrasing, rather than its number of requests, drives over-refusal.
    A name no request carries is an error rather than a silent no-op."""
    present = {str(s.meta.get("origin")) for s in pool if s.meta.get("origin")}
    unknown = sorted(set(origins) - present)
    if unknown:
        raise HarnessError(f"--drop-origin {', '.join(unknown)}: no harmful request has that origin "
                           f"(origins: {', '.join(sorted(present)) or 'none'})")
    return [s for s in pool if s.meta.get("origin") not in origins]


def assemble(cfg: AlignConfig, spec: ModelSpec, handle: Any, out: Path) -> tuple[list[D.Example], dict[str, Any]]:
    """All training examples of the recipe, and a summary of what went in."""
    seed = cfg.train.seed
    pool = _drop_origins([s for name in cfg.harmful_sources for s in D.benchmark_samples(name, cfg.data_dir)],
                         cfg.drop_origins)
    harmful = D.draw(list({s.id: s for s in pool}.values()), cfg.n_harmful, seed, "harmful")
    benign_pool = D.benchmark_samples(BENIGN_SOURCE, cfg.data_dir, "train")
    benign = D.draw_benign(benign_pool, cfg.n_benign, seed, cfg.benign_matched, harmful)
    extra: dict[str, Any] = {}
    if cfg.benign_extra is not None:
        listed = D.read_id_list(cfg.benign_extra)
        added = D.extra_benign(benign_pool, listed, {s.id for s in benign})
        extra = {"file": cfg.benign_extra.name, "sha256": sha256_bytes(cfg.benign_extra),
                 "listed": len(listed), "added": len(added)}
        benign += added
    answers = D.AnswerCache(out / "own_answers.jsonl", _model_key(spec), cfg.answer_tokens)
    own = answers.answers([s.prompt for s in benign], handle.generate, batch_size=cfg.gen_batch_size,
                          label="own answers (benign)")
    examples = D.harmful_examples(harmful, seed) + D.answered_examples(benign, own, "benign", "alpaca")
    summary: dict[str, Any] = {"harmful": len(harmful), "benign": len(benign)}
    if cfg.benign_matched:
        summary["benign_matched"] = cfg.benign_matched
    if cfg.drop_origins:
        summary["dropped_origins"] = list(cfg.drop_origins)
    if extra:
        summary["benign_extra"] = extra
    if cfg.recipe == "trigger-aware":
        generate, rkey = _rewriter(cfg, spec, handle)
        vocab = T.common_words([s.prompt for s in benign_pool])
        found = T.extract(harmful, generate, out / "triggers.jsonl", rkey, vocabulary=vocab,
                          batch_size=cfg.gen_batch_size)
        kept = [Sample(t.id, t.trigger, "comply") for t in found if t.kept]
        trig_answers = answers.answers([s.prompt for s in kept], handle.generate,
                                       batch_size=cfg.gen_batch_size, label="own answers (triggers)")
        examples += [D.Example(s.id, "trigger", s.prompt, *trig_answers[s.prompt]) for s in kept
                     if trig_answers[s.prompt][0].strip()]
        summary.update(triggers_extracted=len(found), triggers_kept=len(kept),
                       triggers_from_frame=sum(1 for t in found if t.kept and t.source == "frame"),
                       rewriter=cfg.rewriter_model or cfg.model, rewriter_prompt_version=T.PROMPT_VERSION)
        info(f"triggers: {len(kept)} of {len(found)} kept (see {out / 'triggers.jsonl'})")
    summary["examples"] = {k: sum(1 for e in examples if e.kind == k) for k in ("harmful", "benign", "trigger")}
    summary["example_ids_sha256"] = hashlib.sha256("\n".join(e.id for e in examples).encode()).hexdigest()
    return examples, summary


def align(cfg: AlignConfig, out: Path) -> dict[str, Any]:
    """Run the recipe into ``out`` and return recipe.json's content."""
    if cfg.recipe not in RECIPES:
        raise HarnessError(f"unknown recipe {cfg.recipe!r} (choose from {', '.join(RECIPES)})")
    t0 = time.perf_counter()
    spec = Registry().resolve_model(cfg.model)
    out.mkdir(parents=True, exist_ok=True)
    info(f"loading {spec.name}")
    handle = HFBackend(device=cfg.device, threads=cfg.threads).load(spec)
    examples, summary = assemble(cfg, spec, handle, out)
    D.write_examples(out / "examples.jsonl", examples)
    encoded = [D.encode(handle, e, cfg.answer_tokens) for e in examples]
    n_tokens = sum(len(e.input_ids) for e in encoded)
    n_answer = sum(sum(1 for t in e.labels if t != IGNORE) for e in encoded)
    info(f"{len(encoded)} examples, {n_tokens} tokens ({n_answer} answer tokens); training")
    result: TrainResult = train(handle, encoded, cfg.train, out, log=info)
    adapter = result.adapter_dir
    _point_at_alias(adapter, cfg.model)
    _halve(adapter / "adapter_model.safetensors")
    weights = adapter / "adapter_model.safetensors"
    recipe = {
        "command": "harness " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "harness" else " ".join(sys.argv),
        "recipe": cfg.recipe,
        "base_model": {"name": cfg.model, **spec.key},
        "seed": cfg.train.seed,
        "data": {
            "harmful_source": ",".join(cfg.harmful_sources), "benign_source": f"{BENIGN_SOURCE} (split train)",
            "files": [f for name in (*cfg.harmful_sources, BENIGN_SOURCE) for f in _source_files(name, cfg.data_dir)],
            "n_harmful": cfg.n_harmful, "n_benign": cfg.n_benign, "answer_tokens": cfg.answer_tokens,
            **summary, "tokens": n_tokens, "answer_tokens_total": n_answer,
        },
        "training": {
            **cfg.train.to_json(),
            "method": "lora (peft)" + (", A frozen to the read-out directions" if cfg.train.readout else ""),
            "loss": "cross-entropy on answer tokens only",
            "optimizer": "AdamW, linear warm-up then linear decay", "threads": cfg.threads,
            "device": handle.device, "trainable_parameters": result.trainable_parameters,
            "epoch_losses": [round(x, 5) for x in result.epoch_losses], "saved_dtype": "float16",
            "seconds": round(result.seconds, 1), "resumed_from_epoch": result.resumed_from_epoch,
            **({"readout_directions": result.readout} if result.readout else {}),
        },
        "adapter": {"sha256": sha256_bytes(weights), "revision": adapter_revision(adapter),
                    "bytes": weights.stat().st_size},
        "total_seconds": round(time.perf_counter() - t0, 1),
        "versions": package_versions(),
    }
    text = json.dumps(recipe, indent=2) + "\n"
    (out / "recipe.json").write_text(text)
    (adapter / "recipe.json").write_text(text)
    (out / "losses.json").write_text(json.dumps([round(x, 6) for x in result.losses]))
    return recipe


def _halve(weights: Path) -> None:
    """Store the adapter in float16: half the size in the package; the LoRA factors are small
    numbers that float16 holds to ~3 significant digits, and loading casts them back."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})


def _point_at_alias(adapter: Path, model: str) -> None:
    """Record the harness's model name as the adapter's base, so ``--model <adapter dir>``
    resolves to the same base again (peft wrote the transformers path of the cache copy)."""
    path = adapter / "adapter_config.json"
    conf = json.loads(path.read_text())
    conf["base_model_name_or_path"] = str(Path(model).resolve()) if Path(model).exists() else model
    path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
