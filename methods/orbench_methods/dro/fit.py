"""DRO's estimation and training steps (Zheng et al., ICML 2024), apart from the plugin.

Facts from ``chujiezheng/LLM-Safeguard @ 410bfb5c : code/{estimate,train}.py`` (docs/methods.md, DRO):
PCA to 4 dimensions over the 8 groups' last-layer states; the basis completed to a full
orthonormal one from random vectors (seed 42); two logistic heads on the PCA coordinates,
AdamW lr 1e-4 (torch's default weight decay), full-batch BCE, stopped when the held-out loss
has not improved by 1e-4 for 3 epochs (at most 10000), the best weights of each of 10 folds
averaged; the soft prompt trained with AdamW lr 1e-3, clip 1.0, loss
``BCE(dr, y) + 0.01 BCE(dh, y) + 0.001 MSE(rest)``.

Implementation notes: the PCA is an exact SVD of the centred states (deterministic; each
component's sign fixed so its largest entry is positive). The completion is a QR
decomposition of [V | random] with R's diagonal made positive, which is what Gram-Schmidt on
those columns computes (Householder QR is the numerically stable way to do it); the first
columns are V itself. The norm term does not depend on which completion is drawn: it is the
squared norm of the state change outside the PCA span, divided by d - k. The folds are trained
side by side as one [folds, k] tensor (AdamW acts elementwise, so this equals separate runs).
The released estimator clips gradients before ``backward`` (a no-op); we do not clip heads.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.console import progress
from orbench_harness.methodkit.checkpoint import save as _checkpoint  # the name tests/_interrupt.py patches
from orbench_harness.methodkit.soft_prompt import last_states
from orbench_harness.methodkit.training import Trainer
from orbench_harness.scratch import writing
from orbench_harness.types import GenParams, JudgeItem, Label, Prompt
from orbench_methods.dro.config import DroConfig

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel
    from orbench_harness.protocols import Judge, MethodContext


# ------------------------------------------------------------------------------ boundary


def text_states(hf: HFModel, prompts: Sequence[Prompt], batch_size: int = 16) -> torch.Tensor:
    """Last-layer, last-prompt-token states of plain (text) prompts, [n, d] on the CPU."""
    import torch


    rows = [hf.encode_prompt(p) for p in prompts]

    def run(a: int, b: int) -> torch.Tensor:
        with torch.no_grad():
            return last_states(hf, rows[a:b], None).cpu()

    return torch.cat([t for _, _, t in hf.batches([len(r) for r in rows], batch_size, run, "reading the states of")])


def compliance(hf: HFModel, prompts: Sequence[Prompt], judge: Judge, *, n_samples: int, max_new_tokens: int,
               seed: int, batch_size: int = 16, label: str = "dro: sampling") -> list[float]:
    """Per prompt, the fraction of ``n_samples`` sampled answers (temperature 1, top-p 0.9) the
    judge reads as full compliance (DRO's empirical compliance score)."""
    params = GenParams(max_new_tokens=max_new_tokens, temperature=1.0, top_p=0.9, seed=seed)
    expanded = list(prompts) * n_samples
    with progress() as prog:
        task = prog.add_task(label, total=len(expanded))
        comps = hf.generate(expanded, params, batch_size=batch_size,
                            on_batch=lambda idx, c: prog.advance(task, len(idx)))
    verdicts = judge.judge([JudgeItem(p.last_user_text, c.text) for p, c in zip(expanded, comps, strict=True)])
    n = len(prompts)
    scores = []
    for i in range(n):
        labels = [verdicts[i + j * n].label for j in range(n_samples)]
        parsed = [lb for lb in labels if lb is not None]
        scores.append(sum(lb is Label.FULL_COMPLIANCE for lb in parsed) / len(parsed) if parsed else 0.5)
    return scores



def pca(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Mean [d], top-k principal directions [d, k] and their explained-variance ratios."""
    import torch

    x64 = x.double()
    mean = x64.mean(dim=0)
    _, s, vh = torch.linalg.svd(x64 - mean, full_matrices=False)
    v = vh[:k].T.clone()
    idx = v.abs().argmax(dim=0)
    v = v * torch.sign(v[idx, torch.arange(k)])[None, :]
    ratio = (s[:k] ** 2 / (s**2).sum()).tolist()
    return mean.float(), v.float(), ratio


def complete_basis(v: torch.Tensor, seed: int = 42) -> torch.Tensor:
    """An orthonormal [d, d] basis whose first k columns are ``v`` (orthonormal [d, k])."""
    import torch

    d, k = v.shape
    g = torch.Generator().manual_seed(seed)
    rand = torch.randn(d, d - k, generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(torch.cat([v.double().cpu(), rand], dim=1))
    basis: torch.Tensor = q * torch.sign(torch.diagonal(r))[None, :]
    return basis.float()


@dataclass(frozen=True, slots=True)
class HeadFit:
    """A logistic head averaged over folds, with its training record."""

    weight: list[float]
    bias: float
    epochs: list[int]
    initial_loss: float
    final_loss: float


def fit_head(x: torch.Tensor, y: torch.Tensor, *, folds: int = 10, lr: float = 1e-4, max_epochs: int = 10000,
             patience: int = 3, seed: int = 42) -> HeadFit:
    """Logistic regression on ``x`` [n, k] to soft targets ``y`` [n] with k-fold early stopping.

    Runs on one thread: for tensors this small, a second (shared) core only adds sync cost
    (measured ~6x slower per epoch with two threads)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_head(x, y, folds=folds, lr=lr, max_epochs=max_epochs, patience=patience, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _fit_head(x: torch.Tensor, y: torch.Tensor, *, folds: int, lr: float, max_epochs: int, patience: int,
              seed: int) -> HeadFit:
    import torch
    import torch.nn.functional as F

    n, k = x.shape
    x, y = x.float().cpu(), y.float().cpu()
    order = list(range(n))
    random.Random(seed).shuffle(order)
    nf = max(1, min(folds, n))
    held = torch.zeros(nf, n, dtype=torch.bool)
    if nf > 1:
        for f in range(nf):
            held[f, order[f * n // nf : (f + 1) * n // nf]] = True
    train = ~held if nf > 1 else torch.ones(nf, n, dtype=torch.bool)
    judge = held if nf > 1 else train  # one fold: stop on the training loss, as the source does
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / k**0.5  # nn.Linear's default initialisation
    w = ((torch.rand(nf, k, generator=g) * 2 - 1) * bound).requires_grad_(True)
    b = ((torch.rand(nf, generator=g) * 2 - 1) * bound).requires_grad_(True)
    opt = torch.optim.AdamW([w, b], lr=lr)

    def losses(mask: torch.Tensor) -> torch.Tensor:
        per = F.binary_cross_entropy_with_logits(x @ w.T + b, y[:, None].expand(n, nf), reduction="none")
        return (per * mask.T).sum(dim=0) / mask.sum(dim=1).clamp(min=1)

    with torch.no_grad():
        initial = float(losses(train).mean())
    best = torch.full((nf,), float("inf"))  # the first epoch always counts as an improvement
    best_w, best_b = w.detach().clone(), b.detach().clone()
    bad = torch.zeros(nf, dtype=torch.long)
    stop = torch.full((nf,), max_epochs, dtype=torch.long)
    active = torch.ones(nf, dtype=torch.bool)
    for epoch in range(1, max_epochs + 1):
        opt.zero_grad()
        losses(train).sum().backward()  # type: ignore[no-untyped-call]
        opt.step()
        with torch.no_grad():
            now = losses(judge)
            better = active & (now < best - 1e-4)
            best = torch.where(better, now, best)
            best_w[better], best_b[better] = w[better], b[better]
            bad = torch.where(better, torch.zeros_like(bad), bad + 1)
            done = active & (bad >= patience)
            stop[done] = epoch
            active &= ~done
        if not bool(active.any()):
            break
    with torch.no_grad():
        mw, mb = best_w.mean(dim=0), best_b.mean()
        final = float(F.binary_cross_entropy_with_logits(x @ mw + mb, y))
    return HeadFit(mw.tolist(), float(mb), stop.tolist(), initial, final)


# ------------------------------------------------------------------------------ soft prompt loss


def loss_terms(new: torch.Tensor, base: torch.Tensor, y: torch.Tensor, b: dict[str, torch.Tensor]
               ) -> dict[str, torch.Tensor]:
    """DRO's three terms for states ``new`` (soft prompt) against ``base`` (text prompt)."""
    import torch.nn.functional as F

    k = b["refusal_w"].shape[0]
    t_new = (new - b["mean"]) @ b["basis"]
    t_base = (base - b["mean"]) @ b["basis"]
    d_refu = (t_new[:, :k] - t_base[:, :k]) @ b["refusal_w"]  # the biases cancel in the difference
    d_harm = (t_new[:, :k] - t_base[:, :k]) @ b["harm_w"]
    return {"refusal": F.binary_cross_entropy_with_logits(d_refu, y),
            "harmfulness": F.binary_cross_entropy_with_logits(d_harm, y),
            "norm": ((t_new[:, k:] - t_base[:, k:]) ** 2).mean()}


def total_loss(terms: dict[str, torch.Tensor], cfg: DroConfig) -> torch.Tensor:
    """Weighted sum; an ablation flag drops its term."""
    total = terms["refusal"] * (0.0 if cfg.ablate_refu else 1.0)
    total = total + terms["harmfulness"] * (0.0 if cfg.ablate_harm else cfg.w_harm)
    return total + terms["norm"] * (0.0 if cfg.ablate_norm else cfg.w_norm)


def train_soft_prompt(hf: HFModel, cfg: DroConfig, rows: Sequence[list[int]], base: torch.Tensor, y: torch.Tensor,
                      boundary: dict[str, torch.Tensor], init: torch.Tensor, ctx: MethodContext
                      ) -> tuple[torch.Tensor, list[dict[str, float]], float]:
    """Optimise the soft prompt with the model frozen; returns it, the history and seconds."""
    import torch

    t0 = time.perf_counter()
    dev = hf.device
    bnd = {k: v.to(dev) for k, v in boundary.items()}
    soft = torch.nn.Parameter(init.detach().clone().float().to(dev))
    opt = torch.optim.AdamW([soft], lr=cfg.lr)  # torch's default weight decay, as the source
    # the soft prompt is float32 whatever the model's precision: a divergence names the model's
    trainer = Trainer("dro", opt, {"soft": soft}, max_grad_norm=cfg.max_grad_norm,
                      precision=(hf.spec.dtype, hf.device), save=_checkpoint)
    history: list[dict[str, float]] = []
    start = trainer.resume(ctx.artifact_dir, history)
    flags = {n: p.requires_grad for n, p in hf.model.named_parameters()}
    for p in hf.model.parameters():
        p.requires_grad_(False)
    base, y = base.to(dev), y.to(dev)
    steps = (len(rows) + cfg.batch_size - 1) // cfg.batch_size
    try:
        with trainer.running(
                str(dev), f"lower --method-arg dro:micro_batch (now {cfg.micro_batch}; the step stays the "
                "same, but it is another fingerprint and trains from the start)",
                label="dro: training the soft prompt", total=cfg.epochs * steps, done=start * steps):
            for epoch in range(start, cfg.epochs):
                order = list(range(len(rows)))
                random.Random(f"dro:{ctx.seed}:{epoch}").shuffle(order)
                sums = {"loss": 0.0, "refusal": 0.0, "harmfulness": 0.0, "norm": 0.0}
                for s in range(0, len(order), cfg.batch_size):
                    batch = order[s : s + cfg.batch_size]
                    trainer.zero_grad()
                    for m in range(0, len(batch), cfg.micro_batch):  # gradient accumulation: same mean
                        idx = batch[m : m + cfg.micro_batch]
                        new = last_states(hf, [rows[i] for i in idx], soft, grad=True)
                        terms = loss_terms(new, base[idx], y[idx], bnd)
                        loss = total_loss(terms, cfg) * (len(idx) / len(batch))
                        value = trainer.backward(loss, f"dro: epoch {epoch + 1}")
                        share = len(idx) / len(order)
                        sums["loss"] += value * len(batch) / len(idx) * share
                        for key, v in terms.items():
                            sums[key] += float(v.detach()) * share
                    trainer.update(f"dro: epoch {epoch + 1}")
                history.append({"epoch": epoch, **sums, "seconds": round(time.perf_counter() - t0, 2)})
                ctx.log(f"dro: epoch {epoch + 1}/{cfg.epochs} loss {sums['loss']:.4f} (refusal "
                        f"{sums['refusal']:.4f}, harmfulness {sums['harmfulness']:.4f}, norm {sums['norm']:.4f})")
                trainer.save(ctx.artifact_dir, history, epoch + 1)
    finally:
        for n, p in hf.model.named_parameters():
            p.requires_grad_(flags[n])
    return soft.detach().cpu(), history, time.perf_counter() - t0


# ------------------------------------------------------------------------------ artifact files


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Tensors as safetensors plus a JSON sidecar (the JSON is written last: it marks completion)."""
    from safetensors.torch import save_file

    with writing(path.with_suffix(".safetensors")):
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=str))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """What ``save_tensors`` wrote, or None when it is not complete."""
    from safetensors.torch import load_file

    if not (path.with_suffix(".json").is_file() and path.with_suffix(".safetensors").is_file()):
        return None
    return load_file(str(path.with_suffix(".safetensors"))), json.loads(path.with_suffix(".json").read_text())


def load_soft_prompt(artifact_dir: Path) -> dict[str, Any] | None:
    """The finished artifact (the trained soft prompt and its meta), or None."""
    done = load_tensors(artifact_dir / "soft_prompt")
    return None if done is None else {"soft": done[0]["soft_prompt"], "meta": done[1]}
