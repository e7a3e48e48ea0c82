"""Where trained ACTOR blocks put the queries, on the untrained model's refusal direction.

    python probes/actor_projections.py --artifact default=DIR [--artifact NAME=DIR ...]
        [--model smollm2-135m-safety] [--layer 15] [--data-dir ../shared/datasets] [--limit 60]

A diagnostic, not a timing: it explains *how* an ACTOR variant changed behaviour. With the
untrained model it builds ACTOR's training data (the model's defaults, seed 0), computes r and
the midpoint of the two anchor means at ``--layer``, and records every query's block output.
Then, for ``none`` and for each artifact (a cached ACTOR artifact directory, the one holding
``trained.safetensors``), it swaps the trained block in and prints per query class: the share
on the harmful side of the old midpoint (">0"), the mean projection on the unit r from it
("c"), and the mean distance each query moved ("drift"); plus |r| recomputed with the trained
block. Separating look-alikes from harmful queries shows as their "c" moving apart; a
translation of everything shows as every class moving the same way (docs/results/actor-sweep.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orbench_harness.backends.hf import HFBackend
from orbench_harness.data import DataSource
from orbench_harness.methodkit.activations import block_output_last_token, swapped_blocks
from orbench_harness.protocols import MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.resolution import train_sampler
from orbench_harness.spec import RunSpec
from orbench_harness.types import Sample
from orbench_methods.actor import create
from orbench_methods.actor.anchors import anchor_means
from orbench_methods.actor.training import load_artifact
from probes._common import DATA


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", action="append", default=[], help="NAME=DIR of a cached ACTOR artifact")
    ap.add_argument("--model", default="smollm2-135m-safety")
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--limit", type=int, default=60, help="validation prompts per JailbreakBench set")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch


    reg = Registry()
    spec = reg.resolve_model(args.model)
    sampler = train_sampler(reg, RunSpec(model=args.model, method="actor", seed=0, data_dir=args.data_dir))
    actor = create({}, MethodEnv(spec, 0, sampler, args.data_dir))
    hf = HFBackend().load(spec)
    data, layer = actor.data, args.layer

    def outputs(samples: list[Sample]) -> torch.Tensor:
        rows = [hf.encode_prompt(s.as_prompt()) for s in samples]
        return torch.cat([block_output_last_token(hf, rows[i : i + 16], layer) for i in range(0, len(rows), 16)])

    n_benign = min(actor.cfg.n_benign, len(sampler("ultrachat")))
    harmful = [q for q, s in zip(data.queries, data.signs, strict=True) if s > 0]
    rest = [q for q, s in zip(data.queries, data.signs, strict=True) if s < 0]
    sets = {"train harmful": harmful, "train pseudo": rest[n_benign:], "train benign": rest[:n_benign]}
    for name in ("jbb-benign", "jbb-harmful"):
        sets[name] = reg.create("benchmarks", name, DataSource(args.data_dir)).samples("test", seed=0)[: args.limit]
    r, mid = anchor_means(hf, data, layer)
    unit = r / r.norm()
    before = {k: outputs(v) for k, v in sets.items()}
    print(f"layer {layer}, |r| untrained {float(r.norm()):.1f}; per class: >0 share / mean c / mean drift")
    runs: list[tuple[str, Path | None]] = [("none", None)]
    runs += [(a.split("=", 1)[0], Path(a.split("=", 1)[1])) for a in args.artifact]
    for name, path in runs:
        art = load_artifact(path) if path else None
        if path and art is None:
            raise SystemExit(f"{path}: no trained.safetensors + meta.json (not a finished ACTOR artifact)")
        with swapped_blocks(hf, art["state"] if art else {}):
            r_now, _ = anchor_means(hf, data, layer)
            cells = []
            for k, v in sets.items():
                h = outputs(v)
                c = (h - mid) @ unit
                drift = (h - before[k]).norm(dim=-1).mean()
                cells.append(f"{k} {float((c > 0).float().mean()):.2f}/{float(c.mean()):.1f}/{float(drift):.1f}")
        print(f"{name:>16s} |r| {float(r_now.norm()):5.1f} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
