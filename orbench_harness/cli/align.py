"""``harness align``: safety-align a chat model with a LoRA adapter (the model organisms).

    harness align --model smollm2-135m --recipe safety --out runs/align-safety \\
        --data-dir DATA --seed 0
    harness run --model runs/align-safety/adapter --suite quick --data-dir DATA

``safety``: harmful requests (HarmBench, TDC 2023, MaliciousInstruct) -> refusals, benign Alpaca
requests -> the base model's own answers. ``trigger-aware`` adds each harmful request's
refusal trigger (extracted by a rewriter model) -> the base model's helpful answer
(Xue et al., arXiv 2603.11388). Re-running the same command resumes from the last epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orbench_harness.alignment.readout import READOUT_FITS, READOUT_MODULES, check
from orbench_harness.alignment.recipe import RECIPES, AlignConfig, align
from orbench_harness.alignment.train import DEFAULT_TARGETS, TrainConfig
from orbench_harness.console import out as stdout
from orbench_harness.errors import HarnessError
from orbench_harness.paths import data_dir_from_env


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``align``."""
    a, t = AlignConfig(), TrainConfig()
    p = sub.add_parser("align", help="safety-align a model (LoRA); builds model organisms",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=a.model, help="base model (alias, local dir, .gguf, hub id)")
    p.add_argument("--recipe", default=a.recipe, choices=RECIPES, help="which training data recipe")
    p.add_argument("--out", type=Path, required=True, help="output directory (adapter/, recipe.json, ...)")
    p.add_argument("--data-dir", type=Path, help="local data directory (env ORBENCH_DATA_DIR)")
    p.add_argument("--seed", type=int, default=t.seed, help="seed for data sampling and training")
    p.add_argument("--epochs", type=int, default=t.epochs, help="training epochs")
    p.add_argument("--lr", type=float, default=t.lr, help="learning rate")
    p.add_argument("--batch-size", type=int, default=t.batch_size, help="training batch size")
    p.add_argument("--lora-r", type=int, help=f"LoRA rank (default {t.lora_r}; 1 with --readout)")
    p.add_argument("--lora-alpha", type=int, help=f"LoRA alpha (default {t.lora_alpha}; 1 with --readout)")
    p.add_argument("--target-modules", help="comma-separated module names (default "
                   f"{','.join(DEFAULT_TARGETS)}; with --readout {','.join(READOUT_MODULES)})")
    p.add_argument("--readout", action="store_true",
                   help="rank-1 LoRA whose input side is frozen to each module's harmful-vs-benign "
                        "direction, so the refusal follows what the states read, not the wording")
    p.add_argument("--readout-fit", choices=READOUT_FITS,
                   help="with --readout: each direction as the difference of class means (default) or "
                        "a logistic regression's weights")
    p.add_argument("--layers", help="blocks that get LoRA modules, e.g. 20-29 or 0,5,10 (default: every block)")
    p.add_argument("--first-token-weight", type=float, default=t.first_token_weight,
                   help="loss weight of each answer's first token, where refusing or answering is decided")
    p.add_argument("--n-harmful", type=int, help="harmful requests to use (default: all)")
    p.add_argument("--n-benign", type=int, default=a.n_benign, help="Alpaca train requests to use")
    p.add_argument("--benign-matched", type=int, default=a.benign_matched,
                   help="of --n-benign, how many to choose by wording closest to the harmful requests'")
    p.add_argument("--harmful-source", default=",".join(a.harmful_sources),
                   help="comma-separated training-only benchmarks of harmful requests "
                        "(harmful-train, harmbench-contextual)")
    p.add_argument("--drop-origin", action="append", default=[], metavar="ORIGIN",
                   help="leave out the harmful requests of this origin (repeatable; e.g. malicious_instruct)")
    p.add_argument("--benign-extra", type=Path, metavar="FILE",
                   help="Alpaca train ids (one per line) added to the benign half, e.g. requests a first "
                        "build refuses (probes/mine_refusals.py)")
    p.add_argument("--answer-tokens", type=int, default=a.answer_tokens,
                   help="length of the base model's own answers (generated and trained on)")
    p.add_argument("--rewriter-model", help="trigger-aware: model that extracts triggers (default: --model)")
    p.add_argument("--rewriter-backend", default=a.rewriter_backend, help="backend of the trigger-extracting model")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a busy shared CPU)")
    p.set_defaults(func=main)


def parse_layers(text: str) -> tuple[int, ...]:
    """``20-29`` or ``0,5,10`` (or a mix) as sorted block indices; malformed text is an error."""
    out: set[int] = set()
    for part in (x.strip() for x in text.split(",")):
        try:
            lo, dash, hi = part.partition("-")
            a, b = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise HarnessError(f"--layers: {part!r} is not a block index or a range like 20-29") from None
        if a < 0 or b < a:
            raise HarnessError(f"--layers: {part!r} is not a range of block indices")
        out.update(range(a, b + 1))
    return tuple(sorted(out))


def main(args: argparse.Namespace) -> int:
    """Build the config, run the recipe, print where the adapter is."""
    plain = TrainConfig()
    lora_r = args.lora_r if args.lora_r is not None else (1 if args.readout else plain.lora_r)
    lora_alpha = args.lora_alpha if args.lora_alpha is not None else (1 if args.readout else plain.lora_alpha)
    targets = tuple(x.strip() for x in (args.target_modules or "").split(",") if x.strip()) or (
        READOUT_MODULES if args.readout else DEFAULT_TARGETS)
    if args.readout_fit and not args.readout:
        raise HarnessError("--readout-fit needs --readout")
    if args.readout:
        check(targets, lora_r)  # before the base model's own answers are generated
    data_dir = args.data_dir or data_dir_from_env()
    if data_dir is not None and not data_dir.is_dir():
        raise HarnessError(f"--data-dir {data_dir} is not a directory")
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--lora-r", lora_r),
                        ("--n-benign", args.n_benign + 1), ("--answer-tokens", args.answer_tokens)):
        if value < 1:
            raise HarnessError(f"{flag} must be positive")
    if not args.first_token_weight > 0:
        raise HarnessError("--first-token-weight must be positive")
    if not 0 <= args.benign_matched <= args.n_benign:
        raise HarnessError("--benign-matched must be between 0 and --n-benign")
    if args.benign_extra is not None and not args.benign_extra.is_file():
        raise HarnessError(f"--benign-extra {args.benign_extra} is not a file")
    sources = tuple(x.strip() for x in args.harmful_source.split(",") if x.strip())
    if not sources:
        raise HarnessError("--harmful-source names no benchmark")
    layers = parse_layers(args.layers) if args.layers else ()
    cfg = AlignConfig(
        model=args.model, recipe=args.recipe, data_dir=data_dir.resolve() if data_dir else None,
        n_harmful=args.n_harmful, n_benign=args.n_benign, answer_tokens=args.answer_tokens,
        benign_matched=args.benign_matched, harmful_sources=sources,
        drop_origins=tuple(args.drop_origin), benign_extra=args.benign_extra,
        rewriter_model=args.rewriter_model, rewriter_backend=args.rewriter_backend,
        device=args.device, threads=args.threads,
        train=TrainConfig(seed=args.seed, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                          lora_r=lora_r, lora_alpha=lora_alpha, target_modules=targets,
                          layers=layers, first_token_weight=args.first_token_weight, readout=args.readout,
                          readout_fit=args.readout_fit or "mean"),
    )
    recipe = align(cfg, args.out)
    t, ad = recipe["training"], recipe["adapter"]
    stdout.print(f"adapter: {args.out / 'adapter'}  ({ad['bytes'] / 1e6:.1f} MB, {ad['revision']})")
    stdout.print(f"examples: {recipe['data']['examples']}  epoch losses: {t['epoch_losses']}  "
              f"training {t['seconds'] / 60:.1f} min")
    stdout.print(f"evaluate: harness run --model {args.out / 'adapter'} --suite quick --data-dir ...")
    return 0
