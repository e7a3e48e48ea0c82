"""SFT's training loop and the adapter merge, kept apart from the plugin.

LoRA is injected into the loaded model in place (peft) for training and unloaded afterwards,
so the handle's model object and its weights are exactly as before once ``train`` returns
(also when it is interrupted); a full fine-tune saves the original weights and copies them
back. Checkpoints after every epoch (trainable tensors, optimizer state, history) let a killed
training resume at the last finished epoch; the data order of epoch ``e`` depends only on
(seed, e), so a resumed run continues as the uninterrupted one would.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.checkpoint import discard
from orbench_harness.methodkit.checkpoint import save as _checkpoint  # the name tests/_interrupt.py patches
from orbench_harness.methodkit.precision import float32_masters
from orbench_harness.methodkit.supervised import collate, masked_loss
from orbench_harness.methodkit.training import Trainer
from orbench_harness.scratch import writing
from orbench_methods.sft.config import SftConfig

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel
    from orbench_harness.methodkit.supervised import Encoded
    from orbench_harness.protocols import MethodContext

ADAPTER_DIR = "adapter"
FULL_FILE = "trained.safetensors"


def load_artifact(artifact_dir: Path) -> dict[str, Any] | None:
    """A finished artifact (``meta.json`` is written last), or None."""
    from safetensors.torch import load_file

    meta_path = artifact_dir / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta["mode"] == "lora":
        adapter = artifact_dir / ADAPTER_DIR
        config = json.loads((adapter / "adapter_config.json").read_text())
        return {"mode": "lora", "state": load_file(str(adapter / "adapter_model.safetensors")),
                "scaling": float(config["lora_alpha"]) / float(config["r"]), "meta": meta}
    return {"mode": "full", "state": load_file(str(artifact_dir / FULL_FILE)), "meta": meta}


def merged_state(hf: HFModel, artifact: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Parameter name -> fine-tuned tensor: W + scaling * B @ A for LoRA, the weights for full."""

    state: dict[str, torch.Tensor] = artifact["state"]
    if artifact["mode"] == "full":
        return state
    params = dict(hf.model.named_parameters())
    out: dict[str, torch.Tensor] = {}
    for key, a in state.items():
        if not key.endswith(".lora_A.weight"):
            continue
        stem = key[: -len(".lora_A.weight")]
        name = stem.removeprefix("base_model.model.") + ".weight"
        if name not in params:
            raise HarnessError(f"sft: adapter module {name!r} is not in the model; was it trained on another model?")
        w = params[name].detach()
        delta = state[stem + ".lora_B.weight"].float() @ a.float()
        out[name] = (w.float() + artifact["scaling"] * delta.to(w.device)).to(w.dtype)
    if not out:
        raise HarnessError("sft: the adapter holds no LoRA weights")
    return out


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices of the epoch's batches: a shuffle seeded by (seed, epoch)."""
    order = list(range(n))
    random.Random(f"sft:{seed}:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train(hf: HFModel, cfg: SftConfig, data: Sequence[Encoded], ctx: MethodContext,
          info: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune on ``data`` (LoRA or full), save the artifact, restore the model; returns the artifact."""
    import torch

    t0 = time.perf_counter()
    model = hf.model
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    torch.manual_seed(ctx.seed)  # LoRA's A matrices are random
    peft_model: Any = None
    original: dict[str, torch.Tensor] = {}
    try:
        if cfg.lora:
            from peft import LoraConfig, get_peft_model

            targets: Any = cfg.target_modules if cfg.target_modules == "all-linear" else \
                [t.strip() for t in cfg.target_modules.split(",") if t.strip()]
            lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=targets)
            with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
                warnings.simplefilter("ignore", FutureWarning)
                peft_model = get_peft_model(model, lcfg)
            net = peft_model
            named = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
        else:
            net = model
            named = dict(model.named_parameters())
            original = {n: p.detach().clone() for n, p in named.items()}
            for p in named.values():
                p.requires_grad_(True)
        masters = float32_masters(named)  # full fine-tuning of a 16-bit model (LoRA is float32)
        opt = torch.optim.AdamW(list((masters or named).values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
        trainer = Trainer("sft", opt, named, masters, max_grad_norm=cfg.max_grad_norm, save=_checkpoint)
        history: list[dict[str, float]] = []
        start = trainer.resume(ctx.artifact_dir, history)
        pad = hf.tokenizer.pad_token_id
        net.train()
        steps = len(epoch_batches(len(data), cfg.batch_size, ctx.seed, 0))
        with trainer.running(
                str(hf.device), f"lower --method-arg sft:batch_size (now {cfg.batch_size}; another batch size is "
                "another fingerprint, trained from the start) or keep sft:lora=true",
                label=f"sft: training ({'lora' if cfg.lora else 'full'})", total=cfg.epochs * steps,
                done=start * steps):
            for epoch in range(start, cfg.epochs):
                losses: list[float] = []
                for idx in epoch_batches(len(data), cfg.batch_size, ctx.seed, epoch):
                    ids, labels, mask = (t.to(hf.device) for t in collate([data[i] for i in idx], pad))
                    loss = masked_loss(net, ids, labels, mask)
                    losses.append(trainer.step(loss, f"sft: epoch {epoch + 1}, step {len(losses) + 1}"))
                history.append({"epoch": epoch, "loss": sum(losses) / len(losses), "first_batch_loss": losses[0],
                                "last_batch_loss": losses[-1], "seconds": round(time.perf_counter() - t0, 2)})
                ctx.log(f"sft: epoch {epoch + 1}/{cfg.epochs} loss {history[-1]['loss']:.4f}")
                trainer.save(ctx.artifact_dir, history, epoch + 1)
        train_seconds = time.perf_counter() - t0
        artifact = _save(ctx.artifact_dir, cfg, peft_model, model, info, history, train_seconds,
                         sum(p.numel() for p in named.values()))
        discard(ctx.artifact_dir)
        return artifact
    finally:
        if peft_model is not None:
            peft_model.unload()  # puts the original modules back (weights untouched)
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, v in original.items():
                params[n].copy_(v)
        for n, p in params.items():
            p.requires_grad_(flags.get(n, p.requires_grad))
        model.train(was_training)


def _save(d: Path, cfg: SftConfig, peft_model: Any, model: Any, info: dict[str, Any],
          history: list[dict[str, float]], seconds: float, n_trainable: int) -> dict[str, Any]:
    """Write the adapter (or full weights), then meta.json last; returns the loaded artifact."""
    from safetensors.torch import save_file

    if peft_model is not None:
        with writing(d / ADAPTER_DIR):
            peft_model.save_pretrained(d / ADAPTER_DIR, safe_serialization=True)
    else:
        state = {n: p.detach().cpu().contiguous().clone() for n, p in model.named_parameters()}
        with writing(d / FULL_FILE):
            save_file(state, str(d / FULL_FILE))
    meta = {"mode": "lora" if peft_model is not None else "full", "history": history,
            "train_seconds": round(seconds, 2), "trainable_parameters": n_trainable,
            "config": asdict(cfg), **info}
    (d / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    loaded = load_artifact(d)
    assert loaded is not None
    return loaded


