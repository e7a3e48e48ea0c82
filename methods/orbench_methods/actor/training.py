"""ACTOR's training loop, kept apart from the plugin so each module stays readable.

Checkpoints after every epoch (trained parameters, optimizer state, refusal vector, history)
so a killed training resumes at the last finished epoch instead of starting over.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.console import warn
from orbench_harness.methodkit.activations import block_output_tail, common_suffix
from orbench_harness.methodkit.checkpoint import discard
from orbench_harness.methodkit.checkpoint import save as _checkpoint  # the name tests/_interrupt.py patches
from orbench_harness.methodkit.pools import TrainData
from orbench_harness.methodkit.precision import float32_masters
from orbench_harness.methodkit.training import Trainer
from orbench_harness.scratch import writing
from orbench_methods.actor.anchors import anchor_means_tail
from orbench_methods.actor.config import ActorConfig

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel
    from orbench_harness.protocols import MethodContext


def load_artifact(artifact_dir: Path) -> dict[str, Any] | None:
    """A finished artifact (trained parameters + meta), or None."""
    from safetensors.torch import load_file

    path = artifact_dir / "trained.safetensors"
    meta_path = artifact_dir / "meta.json"
    if not (path.is_file() and meta_path.is_file()):
        return None
    state, meta = load_file(str(path)), json.loads(meta_path.read_text())
    if "master_weights" not in meta and any(v.element_size() < 4 for v in state.values()):
        # Trained in 16 bits before float32 master weights existed: most steps rounded away.
        warn(f"actor: {artifact_dir} was trained in 16-bit precision without master weights; retraining")
        return None
    return {"state": state, "meta": meta}


def _trainable_names(hf: HFModel, cfg: ActorConfig, layer: int) -> list[str]:
    blocks = range(layer + 1) if cfg.trainable == "up_to_layer" else [layer]
    prefixes = tuple(hf.layer_name(i) + "." for i in blocks)
    return [n for n, _ in hf.model.named_parameters() if n.startswith(prefixes)]


def _shift(cfg: ActorConfig, h: torch.Tensor, r: torch.Tensor, signs: torch.Tensor | None = None,
           mid: torch.Tensor | None = None) -> torch.Tensor:
    """The per-query shift vector (before the +/- sign of the query's class).

    ``sign=hinge`` measures the projection from ``mid`` (the midpoint of the two anchor means)
    and keeps only the part on the wrong side of it for the query's class (``signs``: +1
    harmful, -1 benign), so a query already on its own side is not shifted at all.
    ``sign=hinge_benign`` does that for benign queries only; harmful ones are shifted by their
    full distance from the midpoint, so every harmful query keeps pulling towards refusal.
    ``sign=hinge_keep`` and ``hinge_keep_harmful`` shift as ``hinge`` does; their retain
    targets are set in ``train``.
    """
    if cfg.targets == "uniform":
        return cfg.beta * r.expand_as(h)
    direction = r / r.norm() if cfg.projection == "unit" else r
    if cfg.sign in ("hinge", "hinge_benign", "hinge_keep", "hinge_keep_harmful", "hinge_band"):
        if signs is None or mid is None:
            raise ValueError(f"sign={cfg.sign} needs the query classes and the anchor midpoint")
        centred = (h - mid) @ direction
        p = (-signs * centred).clamp(min=0)
        if cfg.sign == "hinge_benign":  # harmful queries: pushed by their distance either way
            p = centred.abs().where(signs > 0, p)
    else:
        p = h @ direction
        if cfg.sign == "magnitude":
            p = p.abs()
    return cfg.alpha * p[:, None] * direction[None, :]


def train(hf: HFModel, cfg: ActorConfig, data: TrainData, layer: int, ctx: MethodContext) -> dict[str, Any]:
    """Fine-tune the target block towards the per-query targets; returns the artifact."""
    import torch
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    torch.manual_seed(ctx.seed)
    names = _trainable_names(hf, cfg, layer)
    params = dict(hf.model.named_parameters())
    original = {n: params[n].detach().clone() for n in names}
    flags = {n: p.requires_grad for n, p in params.items()}
    for n, p in params.items():
        p.requires_grad_(n in names)
    trained_params = {n: params[n] for n in names}
    masters = float32_masters(trained_params)  # a 16-bit model steps float32 copies (_precision)
    opt = torch.optim.AdamW(list((masters or trained_params).values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    trainer = Trainer("actor", opt, trained_params, masters, save=_checkpoint)
    rows = [hf.encode_prompt(s.as_prompt()) for s in data.queries]
    signs = torch.tensor(data.signs, dtype=torch.float32)
    history: list[dict[str, float]] = []
    k = _positions(hf, cfg, data, rows)
    retain = cfg.sign in ("hinge_keep", "hinge_keep_harmful", "hinge_band")
    kept = _original_outputs(hf, rows, layer, k, cfg.batch_size) if retain else None
    above = _above_band(hf, cfg, data, kept, signs, layer, k) if kept is not None and cfg.sign == "hinge_band" else None
    start_epoch = trainer.resume(ctx.artifact_dir, history)
    steps_per_epoch = (len(rows) + cfg.batch_size - 1) // cfg.batch_size
    try:
        with trainer.running(
                str(hf.device), f"lower --method-arg actor:batch_size (now {cfg.batch_size}; another batch size "
                "is another fingerprint, trained from the start) or load in a 16-bit --dtype",
                label=f"actor: training layer {layer}", total=cfg.epochs * steps_per_epoch,
                done=start_epoch * steps_per_epoch):
            for epoch in range(start_epoch, cfg.epochs):
                order = list(range(len(rows)))
                random.Random(ctx.seed * 1000 + epoch).shuffle(order)
                r, mid = anchor_means_tail(hf, data, layer, k)
                losses, rel = [], []
                for start in range(0, len(order), cfg.batch_size):
                    idx = order[start : start + cfg.batch_size]
                    if cfg.recompute == "step" and start > 0:
                        r, mid = anchor_means_tail(hf, data, layer, k)
                    h = block_output_tail(hf, [rows[i] for i in idx], layer, k, grad=True)  # [b, k, d]
                    h0 = h.detach()
                    sign = signs[idx].to(h0.device)
                    shift = torch.stack([_shift(cfg, h0[:, j], r[j], sign, mid[j]) for j in range(k)], dim=1)
                    band = above[idx].to(h0.device) if above is not None else None
                    if band is not None:  # nothing above the band is shifted
                        shift = shift.masked_fill(band[..., None], 0.0)
                    target = h0 + sign[:, None, None] * shift
                    if kept is not None:  # held queries stay where the original model put them
                        still = band if band is not None else shift.norm(dim=-1) == 0
                        if cfg.sign != "hinge_keep":  # the harmful side only
                            still = still & (sign[:, None] > 0)
                        target = kept[idx].to(h0.device).where(still[..., None], target)
                    loss = (1 - torch.nn.functional.cosine_similarity(h, target, dim=-1)).mean()
                    losses.append(trainer.step(loss, f"actor: epoch {epoch + 1}, step {start // cfg.batch_size + 1}"))
                    rel.append(float((shift.norm(dim=-1) / h0.norm(dim=-1)).mean()))
                history.append({"epoch": epoch, "loss": sum(losses) / len(losses), "r_norm": float(r[-1].norm()),
                                "relative_shift": sum(rel) / len(rel)})
                ctx.log(f"actor: epoch {epoch + 1}/{cfg.epochs} loss {history[-1]['loss']:.5f} "
                        f"|r| {history[-1]['r_norm']:.2f} shift/|h| {history[-1]['relative_shift']:.4f}")
                trainer.save(ctx.artifact_dir, history, epoch + 1)
        trained = {n: params[n].detach().clone().contiguous().cpu() for n in names}
        with writing(ctx.artifact_dir / "trained.safetensors"):
            save_file(trained, str(ctx.artifact_dir / "trained.safetensors"))
        meta = {"layer": layer, "positions": k, "history": history, "trainable": names, "n_queries": len(rows),
                "sources": list(data.sources), "config": _cfg_json(cfg),
                "dtype": str(params[names[0]].dtype).removeprefix("torch."), "master_weights": masters is not None,
                "train_seconds": round(time.perf_counter() - t0, 2)}
        (ctx.artifact_dir / "meta.json").write_text(json.dumps(meta, indent=2))
        discard(ctx.artifact_dir)
        return {"state": trained, "meta": meta}
    finally:
        with torch.no_grad():
            for n, v in original.items():
                params[n].copy_(v)
        for n, p in params.items():
            p.requires_grad_(flags[n])


def _positions(hf: HFModel, cfg: ActorConfig, data: TrainData, rows: list[list[int]]) -> int:
    """How many final tokens the loss covers: 1, or the post-instruction suffix's length."""
    if cfg.positions == "last":
        return 1
    anchors = [hf.encode_prompt(s.as_prompt()) for s in (*data.harmful_anchors, *data.benign_anchors)]
    k = common_suffix([*rows, *anchors])
    if k < 1:
        raise ValueError("positions=post_instruction: the prompts share no final token (no chat template?)")
    return k


def _original_outputs(hf: HFModel, rows: list[list[int]], layer: int, k: int, batch_size: int) -> torch.Tensor:
    """The untrained block's output for every training query (the ``hinge_keep*`` anchors).

    Computed before any checkpoint is restored, so a resumed run anchors to the same points.
    """
    import torch

    parts = hf.batches([len(r) for r in rows], batch_size,
                       lambda a, b: block_output_tail(hf, rows[a:b], layer, k), "reading the untrained states of")
    return torch.cat([t for _, _, t in parts])


def _above_band(hf: HFModel, cfg: ActorConfig, data: TrainData, kept: torch.Tensor, signs: torch.Tensor,
                layer: int, k: int) -> torch.Tensor:
    """``sign=hinge_band``: which queries project above the ``band`` quantile of the harmful
    queries' projections, [n, k] bool, on the untrained model's unit r from its anchor midpoint.

    Computed from the untrained outputs before any checkpoint is restored, so a resumed run
    splits the queries the same way.
    """
    import torch


    r, mid = anchor_means_tail(hf, data, layer, k)
    c = ((kept - mid[None]) * (r / r.norm(dim=-1, keepdim=True))[None]).sum(dim=-1)  # [n, k]
    q = torch.quantile(c[signs > 0], cfg.band, dim=0)  # [k]
    above: torch.Tensor = c > q[None]
    return above


def _cfg_json(cfg: ActorConfig) -> dict[str, Any]:
    return asdict(cfg)


