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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from methods._precision import check_finite, copy_into_model, float32_masters, optimizer_step
from orbench_harness.errors import HarnessError

if TYPE_CHECKING:
    import torch

    from methods.sft import SftConfig
    from orbench_harness.alignment.data import Encoded
    from orbench_harness.backends.hf import HFModel
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


def _collate(batch: Sequence[Encoded], pad: int) -> tuple[Any, Any, Any]:
    """Right-padded ids, labels (IGNORE outside answers) and attention mask."""
    import torch

    from orbench_harness.alignment.data import IGNORE

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for j, e in enumerate(batch):
        n = len(e.input_ids)
        ids[j, :n] = torch.tensor(e.input_ids)
        labels[j, :n] = torch.tensor(e.labels)
        mask[j, :n] = 1
    return ids, labels, mask


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices of the epoch's batches: a shuffle seeded by (seed, epoch)."""
    order = list(range(n))
    random.Random(f"sft:{seed}:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train(hf: HFModel, cfg: SftConfig, data: Sequence[Encoded], ctx: MethodContext,
          info: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune on ``data`` (LoRA or full), save the artifact, restore the model; returns the artifact."""
    import torch

    from orbench_harness.alignment.train import masked_loss
    from orbench_harness.console import progress

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
        history: list[dict[str, float]] = []
        start = _resume(ctx.artifact_dir, masters or named, opt, history)
        copy_into_model(named, masters)
        pad = hf.tokenizer.pad_token_id
        net.train()
        steps = len(epoch_batches(len(data), cfg.batch_size, ctx.seed, 0))
        with progress() as prog:
            task = prog.add_task(f"sft: training ({'lora' if cfg.lora else 'full'})", total=cfg.epochs * steps)
            prog.update(task, completed=start * steps)
            for epoch in range(start, cfg.epochs):
                losses: list[float] = []
                for idx in epoch_batches(len(data), cfg.batch_size, ctx.seed, epoch):
                    ids, labels, mask = (t.to(hf.device) for t in _collate([data[i] for i in idx], pad))
                    loss = masked_loss(net, ids, labels, mask)
                    where = f"sft: epoch {epoch + 1}, step {len(losses) + 1}"
                    losses.append(check_finite(float(loss.item()), named, where))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer_step(opt, named, masters, cfg.max_grad_norm, where=where)
                    prog.advance(task)
                history.append({"epoch": epoch, "loss": sum(losses) / len(losses), "first_batch_loss": losses[0],
                                "last_batch_loss": losses[-1], "seconds": round(time.perf_counter() - t0, 2)})
                ctx.log(f"sft: epoch {epoch + 1}/{cfg.epochs} loss {history[-1]['loss']:.4f}")
                _checkpoint(ctx.artifact_dir, masters or named, opt, history, epoch + 1)
        train_seconds = time.perf_counter() - t0
        artifact = _save(ctx.artifact_dir, cfg, peft_model, model, info, history, train_seconds,
                         sum(p.numel() for p in named.values()))
        (ctx.artifact_dir / "checkpoint.pt").unlink(missing_ok=True)
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
    from dataclasses import asdict

    from safetensors.torch import save_file

    if peft_model is not None:
        peft_model.save_pretrained(d / ADAPTER_DIR, safe_serialization=True)
    else:
        state = {n: p.detach().cpu().contiguous().clone() for n, p in model.named_parameters()}
        save_file(state, str(d / FULL_FILE))
    meta = {"mode": "lora" if peft_model is not None else "full", "history": history,
            "train_seconds": round(seconds, 2), "trainable_parameters": n_trainable,
            "config": asdict(cfg), **info}
    (d / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    loaded = load_artifact(d)
    assert loaded is not None
    return loaded


def _checkpoint(d: Path, named: dict[str, Any], opt: Any, history: list[dict[str, float]], epoch: int) -> None:
    import torch

    tmp = d / "checkpoint.pt.tmp"
    torch.save({"epoch": epoch, "state": {n: p.detach().cpu() for n, p in named.items()},
                "optim": opt.state_dict(), "history": history}, tmp)
    tmp.replace(d / "checkpoint.pt")


def _resume(d: Path, named: dict[str, Any], opt: Any, history: list[dict[str, float]]) -> int:
    """Restore the last epoch checkpoint if one fits; returns the epoch to start from."""
    import torch

    from orbench_harness.console import info, warn

    path = d / "checkpoint.pt"
    if not path.is_file():
        return 0
    try:
        ck = torch.load(path, weights_only=True)
        if set(ck["state"]) != set(named):
            raise ValueError("parameters differ")
    except Exception as e:  # cut off by a kill, or another model: start over rather than crash
        warn(f"sft: checkpoint {path} unusable ({e}); training from scratch")
        return 0
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(ck["state"][n])
    opt.load_state_dict(ck["optim"])
    history.extend(ck["history"])
    info(f"sft: resuming training after epoch {ck['epoch']}")
    return int(ck["epoch"])
