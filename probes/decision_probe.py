"""Does the model know more than it acts on? A linear probe against the organism's behaviour.

    python probes/decision_probe.py [--model smollm2-135m] [--model smollm2-135m-safety ...]
        [--data-dir ../shared/datasets] [--behaviour RUN_DIR] [--extra IDS_FILE]

The organism's two missed aims are HEx-PHI refusal and UltraChat compliance, and every build
of it lands on one trade-off line between them (docs/results/organism.md). This
script asks whether the line is set by the representation or by how the alignment learns to
use it. For every layer (block outputs at the last prompt token, where greedy decoding picks
its first answer token) it fits an L2 logistic regression on exactly the data `harness align
--recipe safety` trains on (the `harmful-train` requests against 700 Alpaca train requests,
the recipe's draw) and applies it, at its own fitted threshold, to validation prompts the
alignment never sees: HEx-PHI's and UltraChat's train splits (150 each, as in the organism's
validation table). It prints, per layer, the probe's held-out ROC AUC and, at the fitted
threshold, the share of HEx-PHI it flags (refusal) and of UltraChat it passes (compliance).

`--behaviour RUN_DIR` adds the model's own rates from a `harness run` on the same prompts
(`--benchmark hexphi,ultrachat --split train --limit 150`), for the comparison the question
is about. `--extra FILE` (an id list such as `probes/mine_refusals.py` writes: Alpaca train
requests a build refuses) adds the share of those requests the probe passes, leaving out any
that are in the probe's own training draw. The probe is a read-out, not a model: it shows what
a decision on these states could reach with this data, not how to train one into the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orbench_harness.alignment.data import benchmark_samples, draw_benign, extra_benign, read_id_list
from orbench_harness.backends.hf import HFBackend
from orbench_harness.data import DataSource
from orbench_harness.registry import Registry
from probes._common import DATA
from probes.separability import auc, fit_probe, states

if TYPE_CHECKING:
    import torch

    from orbench_harness.types import Sample

N_BENIGN = 700  # the shipped recipe's --n-benign
N_VAL = 150


def rates_at_zero(pos: torch.Tensor, neg: torch.Tensor) -> tuple[float, float]:
    """(share of ``pos`` scored above 0, share of ``neg`` at or below 0), in percent."""
    return 100 * float((pos > 0).double().mean()), 100 * float((neg <= 0).double().mean())


def behaviour(run: Path) -> tuple[float, float]:
    """(HEx-PHI refusal rate, UltraChat compliance rate) from a run's results.json."""
    res = json.loads((run / "results.json").read_text())["benchmarks"]
    return float(res["hexphi"]["refusal_rate"]), float(res["ultrachat"]["compliance_rate"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], help="alias or adapter directory (repeatable)")
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--behaviour", type=Path, help="run directory of the model on the same validation prompts")
    ap.add_argument("--extra", type=Path, help="Alpaca train ids (e.g. mined refusals): share the probe passes")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


    reg = Registry()
    src = DataSource(args.data_dir)

    def split(name: str, which: str) -> list[Sample]:
        return reg.create("benchmarks", name, src).samples(which, seed=0)  # type: ignore[no-any-return]

    harmful = benchmark_samples("harmful-train", args.data_dir)  # as `harness align` reads them
    alpaca = benchmark_samples("alpaca", args.data_dir, "train")
    benign = draw_benign(alpaca, N_BENIGN, 0, 0, harmful)
    extra = extra_benign(alpaca, read_id_list(args.extra), {s.id for s in benign}) if args.extra else []
    val_h, val_b = split("hexphi", "train")[:N_VAL], split("ultrachat", "train")[:N_VAL]
    print(f"probe trained on {len(harmful)} harmful-train vs {len(benign)} Alpaca; "
          f"validation {len(val_h)} HEx-PHI train vs {len(val_b)} UltraChat train"
          + (f"; {len(extra)} requests of {args.extra}" if extra else ""))
    if args.behaviour:
        h, u = behaviour(args.behaviour)
        print(f"behaviour ({args.behaviour}): HEx-PHI refusal {h:.1f}, UltraChat compliance {u:.1f}, "
              f"balanced accuracy {(h + u) / 200:.3f}")
    for name in args.model or ["smollm2-135m-safety"]:
        hf = HFBackend().load(reg.resolve_model(name))
        xh, xb, th, tb = (states(hf, s) for s in (harmful, benign, val_h, val_b))
        te = states(hf, extra) if extra else None
        print(f"\n{name}\nlayer      AUC  HEx-PHI flagged  UltraChat passed  balanced acc"
              + ("  extra passed" if extra else ""))
        for layer in range(xh.shape[1]):
            mu, sd, w = fit_probe(xh[:, layer], xb[:, layer])
            sh = ((th[:, layer] - mu) / sd) @ w[:-1] + w[-1]
            sb = ((tb[:, layer] - mu) / sd) @ w[:-1] + w[-1]
            flagged, passed = rates_at_zero(sh, sb)
            row = f"{layer:5d}  {auc(sh, sb):7.3f}  {flagged:15.1f}  {passed:16.1f}  {(flagged + passed) / 200:12.3f}"
            if te is not None:
                se = ((te[:, layer] - mu) / sd) @ w[:-1] + w[-1]
                row += f"  {rates_at_zero(sh, se)[1]:12.1f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
