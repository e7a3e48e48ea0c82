"""Supervised fine-tuning with a LoRA adapter (peft): deterministic, resumable, CPU-sized.

Why LoRA and not a full fine-tune: the organism ships *inside* the package, so its artifact must
be a few MB (a full copy of the 135M model is ~540 MB in float32; the rank-16 attention adapter
is 3.7 MB in float16). Speed did not decide it: on the shared 2-core CPU one step on 8 x 90
tokens measured 11-36 s for a full fine-tune and 18-32 s for LoRA, too noisy under other
workers' load to tell apart (the backward pass through the frozen weights dominates both).
LoRA sits on the attention projections (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``) of
every block by default; ``target_modules`` is a setting.

Cost savers on the CPU:
- the LM head (49k-word vocabulary x 576: 28M of the model's 135M weights, so about a fifth
  of the multiply-adds of a forward pass) is applied only at
  positions whose next token is an answer token, because the loss is masked to the answer;
- batches are built from length-sorted buckets of a seeded shuffle, so little compute goes to
  padding, and the batch order is shuffled again;
- one thread per process (``--threads 1``): with the cores shared by other workers, two OpenMP
  threads that get descheduled at a barrier made a forward pass ~5x slower than one thread.

Determinism: ``torch.manual_seed(seed)`` before the adapter is created (LoRA's A matrices are
random), ``random.Random(seed, epoch)`` for the data order, no dropout, and
``torch.use_deterministic_algorithms(True)``. Two runs with the same seed give the same loss
curve and the same adapter bytes on the same machine and library versions.

Checkpoints: after every epoch the adapter, the optimizer state and the epoch number are saved
to ``<out>/checkpoint/``; a killed run restarts from the last finished epoch and, because the
order of epoch ``e`` depends only on (seed, e), continues exactly as if it had not stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from orbench_harness.alignment import readout as R
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.supervised import Encoded, collate, masked_loss
from orbench_harness.methodkit.training import Trainer

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that determines the trained adapter (beyond the data and the base model)."""

    seed: int = 0
    epochs: int = 2
    lr: float = 2e-4
    batch_size: int = 8
    lora_r: int = 16
    lora_alpha: int = 32
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    warmup_fraction: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bucket_batches: int = 8  # batches per length-sorted bucket
    layers: tuple[int, ...] = ()  # blocks that get LoRA modules; empty: every block
    first_token_weight: float = 1.0  # loss weight of each answer's first token (the refuse/answer choice)
    readout: bool = False  # rank-1 LoRA whose A is frozen to the harmful-vs-benign direction (readout.py)
    # how that direction is fitted: difference of class means, or a logistic regression's weights
    readout_fit: Literal["mean", "logistic"] = "mean"

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for recipe.json and the checkpoint's compatibility check. ``layers``,
        ``first_token_weight``, ``readout`` and ``readout_fit`` appear only when set, so
        records and checkpoints of builds made before they existed stay as they were."""
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        if self.layers:
            d["layers"] = list(self.layers)
        else:
            del d["layers"]
        if self.first_token_weight == 1.0:
            del d["first_token_weight"]
        if not self.readout:
            del d["readout"]
        if self.readout_fit == "mean":
            del d["readout_fit"]
        return d


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What training produced: per-step losses (all epochs), time, and where the adapter is."""

    adapter_dir: Path
    losses: tuple[float, ...]
    seconds: float
    resumed_from_epoch: int = 0
    trainable_parameters: int = 0
    epoch_losses: tuple[float, ...] = field(default_factory=tuple)
    readout: dict[str, Any] = field(default_factory=dict)  # Readout.summary() when cfg.readout


def batches(data: Sequence[Encoded], cfg: TrainConfig, epoch: int) -> list[list[Encoded]]:
    """The epoch's batches: seeded shuffle, length-sorted buckets, shuffled batch order."""
    rng = random.Random(f"{cfg.seed}:epoch:{epoch}")
    order = list(data)
    rng.shuffle(order)
    size = max(1, cfg.batch_size)
    span = size * max(1, cfg.bucket_batches)
    out: list[list[Encoded]] = []
    for start in range(0, len(order), span):
        bucket = sorted(order[start : start + span], key=lambda e: len(e.input_ids))
        out += [bucket[i : i + size] for i in range(0, len(bucket), size)]
    rng.shuffle(out)
    return out


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then linear decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def make_peft(model: Any, cfg: TrainConfig) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter (seeded)."""
    import torch
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        raise HarnessError(f"--target-modules: {missing[0]!r} is not a module of {type(model).__name__}")
    torch.manual_seed(cfg.seed)
    n_blocks = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    bad = [i for i in cfg.layers if not 0 <= i < n_blocks]
    if bad:
        raise HarnessError(f"--layers: block {bad[0]} does not exist (the model has {n_blocks})")
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                      target_modules=list(cfg.target_modules), task_type="CAUSAL_LM",
                      layers_to_transform=list(cfg.layers) or None)
    return get_peft_model(model, lcfg)


def data_digest(data: Sequence[Encoded]) -> str:
    """Identity of the training data (ids, tokens, labels), so a checkpoint is resumed only on
    the very data it was trained on: two recipes can draw as many examples but different ones."""
    h = hashlib.sha256()
    for e in data:
        h.update(json.dumps([e.id, e.input_ids, e.labels]).encode())
    return h.hexdigest()


def train(
    handle: Any,
    data: Sequence[Encoded],
    cfg: TrainConfig,
    out: Path,
    *,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Fine-tune ``handle.model`` in place with LoRA; save the adapter to ``out/adapter``."""
    import torch

    if not data:
        raise HarnessError("no training examples")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _train(handle, data, cfg, out, log)
    finally:
        torch.use_deterministic_algorithms(previous)  # a process-wide switch: put it back


def _train(handle: Any, data: Sequence[Encoded], cfg: TrainConfig, out: Path,
           log: Callable[[str], None]) -> TrainResult:
    import torch
    from peft import set_peft_model_state_dict

    t0 = time.perf_counter()
    readout = None
    if cfg.readout:
        R.check(cfg.target_modules, cfg.lora_r)
        readout = R.directions(handle.model, data, cfg.target_modules, cfg.layers, handle.tokenizer.pad_token_id,
                               fit=cfg.readout_fit)
        log(f"read-out directions for {len(readout.rows)} modules (harmful - other gap "
            f"{readout.summary()['gap_mean']:.2f} std on average)")
    model = make_peft(handle.model, cfg)
    if readout is not None:
        R.install(model, readout)
    model.train()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    trainer = Trainer("align", opt, params, max_grad_norm=cfg.max_grad_norm,
                      precision=(handle.spec.dtype, handle.device))
    per_epoch = len(batches(data, cfg, 0))
    total = per_epoch * cfg.epochs
    warmup = max(1, round(cfg.warmup_fraction * total))
    ckpt = out / "checkpoint"
    losses: list[float] = []
    epoch_losses: list[float] = []
    start_epoch = 0
    state_file = ckpt / "state.json"
    digest = data_digest(data)
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if state.get("config") == cfg.to_json() and state.get("data_sha256") == digest:
            from safetensors.torch import load_file

            set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
            opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
            start_epoch = int(state["epoch"])
            losses = list(state["losses"])
            epoch_losses = list(state["epoch_losses"])
            log(f"resuming from the checkpoint after epoch {start_epoch}")
        else:
            log("checkpoint belongs to other settings or data; starting over")
    pad = handle.tokenizer.pad_token_id
    with trainer.running(str(handle.device), f"lower --batch-size (now {cfg.batch_size}; another batch size "
                         "trains from the start)", label="training", total=total, done=start_epoch * per_epoch):
        for epoch in range(start_epoch, cfg.epochs):
            ep: list[float] = []
            for k, batch in enumerate(batches(data, cfg, epoch)):
                step = epoch * per_epoch + k
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * _lr_factor(step, total, warmup)
                ids, labels, mask = collate(batch, pad)
                loss = masked_loss(model, ids.to(handle.device), labels.to(handle.device), mask.to(handle.device),
                                   cfg.first_token_weight)
                ep.append(trainer.step(loss, f"align: epoch {epoch + 1}, step {k + 1}"))
                if (step + 1) % max(1, total // 20) == 0:  # a line per 5% for logs without a tty
                    log(f"step {step + 1}/{total}: loss {sum(ep[-10:]) / len(ep[-10:]):.4f} "
                        f"({time.perf_counter() - t0:.0f}s)")
            losses += ep
            epoch_losses.append(sum(ep) / len(ep))
            log(f"epoch {epoch + 1}/{cfg.epochs}: mean loss {epoch_losses[-1]:.4f}")
            _save_checkpoint(model, opt, ckpt, cfg, epoch + 1, (len(data), digest), losses, epoch_losses)
    adapter_dir = out / "adapter"
    model.save_pretrained(adapter_dir, safe_serialization=True)
    model.eval()
    n_trainable = sum(p.numel() for p in params.values())
    return TrainResult(adapter_dir, tuple(losses), time.perf_counter() - t0, start_epoch,
                       n_trainable, tuple(epoch_losses), readout.summary() if readout else {})


def _save_checkpoint(model: Any, opt: Any, ckpt: Path, cfg: TrainConfig, epoch: int, data: tuple[int, str],
                     losses: list[float], epoch_losses: list[float]) -> None:
    """Adapter + optimizer + epoch, written to a temp dir and swapped in (kill-safe)."""
    import torch

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    state = {"epoch": epoch, "config": cfg.to_json(), "n_examples": data[0], "data_sha256": data[1],
             "losses": losses, "epoch_losses": epoch_losses}
    (tmp / "state.json").write_text(json.dumps(state))
    old = ckpt.with_name(ckpt.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)
