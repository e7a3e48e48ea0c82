"""Can a model's hidden states tell harmful requests from their benign look-alikes, and where?

    python probes/separability.py [--model smollm2-135m-safety] [--model runs/align-X/adapter ...]
        [--data-dir ../shared/datasets]

A diagnostic for the over-refusal methods that act on one layer's representation (ACTOR,
DRO, SCANS, Surgical). They can only help if the look-alikes and the harmful requests sit
apart somewhere in the residual stream. ACTOR's sweep found that on the CPU organism they do
not move apart (docs/results/actor-sweep.md); this asks whether a layer holds the difference at
all. For every layer (block outputs at the last prompt token, the position ACTOR trains; the
last layer after the final norm) it fits two read-outs on train-split prompts only and scores
them on held-out pairs as ROC AUC (0.5 = indistinguishable, 1.0 = perfectly ordered):

- ``dm``: the difference of class means (ACTOR's and Arditi et al.'s direction), fitted on
  harmful (HEx-PHI train) vs look-alikes (the XSTest, SCOPE and OR-Bench-Hard train pools);
- ``lr``: an L2-regularised logistic regression on the same standardised features, the best a
  linear read-out of that layer can do with this little data.

Held out: XSTest's 225 safe test prompts against its 200 unsafe contrast prompts (minimal
pairs: "kill a Python process" / "kill a person"); JailbreakBench's 100 benign against its 100
harmful behaviours; and XSTest's safe prompts against 225 of AdvBench (``adv``: the set ACTOR's
safety bar is measured on, blunter than the contrast prompts). Behaviour is a binary read-out
of the same question, so compare these AUCs with the balanced accuracy of the model's refusals
from a `harness run` on the same sets (for a binary score, AUC equals balanced accuracy).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orbench_harness.backends.hf import HFBackend
from orbench_harness.data import DataSource
from orbench_harness.methodkit.activations import all_layers_last_token, mean_difference, prompts_of
from orbench_harness.registry import Registry
from probes._common import DATA

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel
    from orbench_harness.protocols import Benchmark
    from orbench_harness.types import Sample

HARMFUL_TRAIN = ("hexphi",)
LOOKALIKE_TRAIN = ("xstest", "scope", "orbench-hard")
HELD_OUT = {"xstest": ("xstest", "xstest-unsafe"), "jbb": ("jbb-benign", "jbb-harmful"),
            "adv": ("xstest", "advbench")}


def auc(scores_pos: torch.Tensor, scores_neg: torch.Tensor) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half."""
    diff = scores_pos[:, None] - scores_neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def logistic(x: torch.Tensor, y: torch.Tensor, l2: float = 1.0) -> torch.Tensor:
    """Weights of an L2-regularised logistic regression (bias last), fitted by L-BFGS."""
    import torch

    xb = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    w = torch.zeros(xb.shape[1], dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xb @ w, y) + l2 * (w[:-1] ** 2).sum() / len(x)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    return w.detach()


def fit_probe(pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, scale, weights with bias last) of a logistic read-out of ``pos`` (1) against
    ``neg`` (0) on features standardised by the pooled mean and standard deviation."""
    import torch

    x = torch.cat([pos, neg])
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).double()
    mu, sd = x.mean(0), x.std(0).clamp(min=1e-6)
    return mu, sd, logistic((x - mu) / sd, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], help="alias or adapter directory (repeatable)")
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--every", type=int, default=3, help="print every k-th layer (and the best)")
    ap.add_argument("--add-lookalikes", metavar="NAME:N", default=None,
                    help="also train the read-outs on N prompts drawn (seed 0) from the train split of"
                         " NAME, e.g. orbench-borderline:1500: does more look-alike data separate better?")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


    reg = Registry()
    src = DataSource(args.data_dir)

    def split(name: str, which: Literal["train", "test"]) -> list[Sample]:
        bench: Benchmark = reg.create("benchmarks", name, src)
        return bench.samples(which, seed=0)

    harmful = [s for n in HARMFUL_TRAIN for s in split(n, "train")]
    lookalike = [s for n in LOOKALIKE_TRAIN for s in split(n, "train")]
    if args.add_lookalikes:
        extra, _, n = args.add_lookalikes.partition(":")
        pool = split(extra, "train")
        lookalike += random.Random(0).sample(pool, min(int(n or len(pool)), len(pool)))
    held = {k: (split(a, "test")[:225], split(b, "test")[:225]) for k, (a, b) in HELD_OUT.items()}
    print(f"train: {len(harmful)} harmful, {len(lookalike)} look-alikes; held out: "
          + ", ".join(f"{k} {len(a)} benign / {len(b)} harmful" for k, (a, b) in held.items()))
    for name in args.model or ["smollm2-135m-safety"]:
        hf = HFBackend().load(reg.resolve_model(name))
        xh, xl = states(hf, harmful), states(hf, lookalike)
        test = {k: (states(hf, a), states(hf, b)) for k, (a, b) in held.items()}
        rows: list[tuple[int, list[float]]] = []
        for layer in range(xh.shape[1]):
            mu, sd, w = fit_probe(xh[:, layer], xl[:, layer])
            w = w[:-1]
            r = mean_difference(xh[:, layer], xl[:, layer])
            cells = []
            for benign, bad in test.values():
                cells.append(auc(bad[:, layer] @ r, benign[:, layer] @ r))
                cells.append(auc(((bad[:, layer] - mu) / sd) @ w, ((benign[:, layer] - mu) / sd) @ w))
            rows.append((layer, cells))
        head = "  ".join(f"{k + ':' + m:>9s}" for k in test for m in ("dm", "lr"))
        print(f"\n{name}: held-out AUC, harmful vs look-alike, per layer\nlayer  {head}")
        best = max(rows, key=lambda row: sum(row[1]))
        for layer, cells in rows:
            if layer % args.every == 0 or layer == best[0] or layer == len(rows) - 1:
                mark = "  <- best mean" if layer == best[0] else ""
                print(f"{layer:5d}  " + "  ".join(f"{v:9.3f}" for v in cells) + mark, flush=True)


def states(hf: HFModel, samples: list[Sample]) -> torch.Tensor:
    """Block outputs at the last prompt token for every layer, float64 (the last one is read
    after the final norm, as transformers returns it)."""

    return all_layers_last_token(hf, prompts_of(samples)).double()


if __name__ == "__main__":
    main()
