"""Building SafeDecoding's safety expert: the model's own refusals, then LoRA SFT on them.

Split from ``methods/safe_decoding.py`` (which documents the recipe, its source and the
deviations) to keep each module short. Two files in the artifact directory make the build
resumable: ``refusals.json`` (the kept answers, by seed-prompt id; prompts are not stored) is
written as soon as sampling ends, and ``expert/`` (the PEFT adapter plus ``meta.json``) appears
atomically when training ends, so its presence means the expert is complete.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.training import Trainer
from orbench_harness.protocols import MethodContext
from orbench_harness.registry import Registry
from orbench_harness.types import GenParams, JudgeItem, Label, Prompt, Sample
from orbench_methods.safe_decoding.config import SafeDecodingConfig

if TYPE_CHECKING:
    from orbench_harness.backends.hf import HFModel

EXPERT = "expert"
REFUSALS = "refusals.json"


def load_expert(artifact_dir: Path) -> dict[str, Any] | None:
    """The finished expert (path and training metadata), or None."""
    path = artifact_dir / EXPERT
    if not (path / "adapter_config.json").is_file() or not (path / "meta.json").is_file():
        return None
    return {"path": path, "meta": json.loads((path / "meta.json").read_text())}


def build_expert(
    hf: HFModel, cfg: SafeDecodingConfig, seeds: tuple[Sample, ...], seed: int, ctx: MethodContext
) -> dict[str, Any]:
    """Sample and filter refusals (or reuse them), train the LoRA, save it; returns the artifact."""
    kept = _refusals(hf, cfg, seeds, seed, ctx)
    if not kept:
        raise HarnessError(
            f"safe-decoding: none of the {len(seeds) * cfg.trials} sampled answers was kept as a refusal "
            f"(filter={cfg.filter}, judge={cfg.judge}, min_tokens={cfg.min_tokens}); the model does not "
            "refuse under refuse_prompt, so there is nothing to train the expert on"
        )
    by_id = {s.id: s for s in seeds}
    examples = [(by_id[k["id"]].prompt, k["response"]) for k in kept]
    tmp = Path(tempfile.mkdtemp(dir=ctx.artifact_dir, prefix=".expert-"))
    try:
        meta = _train(hf, cfg, examples, seed, tmp, ctx)
        meta.update(n_seeds=len(seeds), n_examples=len(examples))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, ctx.artifact_dir / EXPERT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ctx.log(f"safe-decoding: expert trained on {len(examples)} refusals -> {ctx.artifact_dir / EXPERT}")
    found = load_expert(ctx.artifact_dir)
    assert found is not None
    return found


def _refusals(
    hf: HFModel, cfg: SafeDecodingConfig, seeds: tuple[Sample, ...], seed: int, ctx: MethodContext
) -> list[dict[str, Any]]:
    """Up to ``trials`` kept answers per seed prompt, each (prompt, trial) retried ``attempts`` times."""
    path = ctx.artifact_dir / REFUSALS
    if path.is_file():
        ctx.log(f"safe-decoding: reusing sampled refusals from {path}")
        return list(json.loads(path.read_text())["kept"])
    judge = None
    if cfg.filter == "judge":
        judge = Registry().create("judges", cfg.judge, {})
        judge.preflight()
    pending = [(s, t) for s in seeds for t in range(cfg.trials)]
    kept: list[dict[str, Any]] = []
    for attempt in range(cfg.attempts):
        if not pending:
            break
        params = GenParams(max_new_tokens=cfg.gen_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                           seed=seed * 1_000 + attempt)
        comps = hf.generate([s.as_prompt(system=cfg.refuse_prompt) for s, _ in pending], params)
        if judge is not None:
            verdicts = judge.judge([JudgeItem(s.prompt, c.text) for (s, _), c in zip(pending, comps, strict=True)])
            refuses = [v.label is Label.FULL_REFUSAL for v in verdicts]
        else:
            refuses = [True] * len(comps)
        still = []
        for (s, t), c, ok in zip(pending, comps, refuses, strict=True):
            if ok and c.n_new_tokens >= cfg.min_tokens:
                kept.append({"id": s.id, "trial": t, "attempt": attempt, "response": c.text.strip()})
            else:
                still.append((s, t))
        ctx.log(f"safe-decoding: attempt {attempt + 1}: kept {len(pending) - len(still)} of {len(pending)}")
        pending = still
    path.write_text(json.dumps({"kept": kept, "dropped": [[s.id, t] for s, t in pending]}, indent=1))
    return kept


def _train(
    hf: HFModel, cfg: SafeDecodingConfig, examples: list[tuple[str, str]], seed: int, out: Path, ctx: MethodContext
) -> dict[str, Any]:
    """LoRA SFT on (prompt, refusal) pairs without the system prompt; saves the adapter in ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import get_linear_schedule_with_warmup

    eos = hf.tokenizer.eos_token_id
    rows = []
    for prompt, response in examples:
        p = hf.encode_prompt(Prompt.user(prompt))
        ids = (p + hf.encode(response) + [eos])[: min(cfg.max_seq, hf.max_length)]
        labels = [-100] * len(p) + ids[len(p):]
        rows.append((ids, labels[: len(ids)]))
    flags = {n: p.requires_grad for n, p in hf.model.named_parameters()}
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=[m.strip() for m in cfg.target_modules.split(",") if m.strip()],
                      task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(hf.model, lora)
    history: list[float] = []
    try:
        params = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
        opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=0.0)
        total = cfg.epochs * len(rows)
        sched = get_linear_schedule_with_warmup(opt, math.ceil(cfg.warmup_ratio * total), total)
        trainer = Trainer("safe-decoding: expert", opt, params, max_grad_norm=cfg.max_grad_norm, schedule=sched,
                          precision=(hf.spec.dtype, hf.device))
        rng = random.Random(seed)
        peft_model.train()
        with torch.random.fork_rng(devices=[]), trainer.running(
                str(hf.device), f"the expert trains one example at a time (up to {cfg.max_seq} tokens); "
                "lower --method-arg safe-decoding:max_seq or use a larger device"):
            torch.manual_seed(seed)  # LoRA dropout
            for epoch in range(cfg.epochs):
                order = list(range(len(rows)))
                rng.shuffle(order)
                losses: list[float] = []
                for i in order:
                    ids, labels = rows[i]
                    x = torch.tensor([ids], device=hf.device)
                    y = torch.tensor([labels], device=hf.device)
                    loss = peft_model(input_ids=x, attention_mask=torch.ones_like(x), labels=y).loss
                    losses.append(trainer.step(loss, f"safe-decoding: expert epoch {epoch + 1}, "
                                                     f"example {len(losses) + 1}"))
                history.append(sum(losses) / len(losses))
                ctx.log(f"safe-decoding: epoch {epoch + 1}/{cfg.epochs} mean loss {history[-1]:.4f}")
        peft_model.eval()
        peft_model.save_pretrained(str(out))
    finally:
        peft_model.unload()
        hf.model.eval()
        for n, p in hf.model.named_parameters():
            p.requires_grad_(flags.get(n, p.requires_grad))
    return {"loss_per_epoch": history, "steps": cfg.epochs * len(rows)}
