"""``harness train-classifier``: rebuild the offline refusal classifier's head.

    harness train-classifier --data-dir DATA \\
        --out judges/orbench_judges/artifacts/refusal_head.json --lomo

Loads labelled responses (XSTest human labels, CoCoNot compliant answers, agreeing labels from
the refusal runs, HEx-PHI refusals), embeds them with all-MiniLM-L6-v2 (cached under the user
cache dir, so re-runs take seconds), fits the head and writes it as JSON. ``--lomo`` first
evaluates leave-one-model-out on the XSTest-labelled models and stores the numbers in the
head's metadata. The compliance threshold (``--threshold``, default ``auto``) is chosen by
leave-one-model-out over the XSTest-labelled models; ``--lomo`` then also reports the nested
estimate, where each held-out model's threshold was chosen without its labels. The recipe is
in judges/orbench_judges/artifacts/README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from orbench_harness.console import info, table
from orbench_harness.errors import HarnessError
from orbench_harness.paths import cache_dir, data_dir_from_env
from orbench_judges.classifier.embedding import EmbeddingCache, MiniLMEmbedder
from orbench_judges.classifier.features import FLAGS, VIEWS
from orbench_judges.classifier.refusal_data import load_all
from orbench_judges.classifier.train import Recipe, features, leave_one_model_out, select_threshold, train


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _threshold(value: str) -> float | None:
    """``auto`` (None: choose by LOMO) or a probability strictly between 0 and 1."""
    if value == "auto":
        return None
    try:
        t = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {value!r}") from None
    if not 0.0 < t < 1.0:
        raise argparse.ArgumentTypeError(f"threshold must be inside (0, 1), got {t}")
    return t


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``train-classifier``."""
    r = Recipe()
    p = sub.add_parser(
        "train-classifier",
        help="train the offline refusal classifier's head",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", type=Path, help="data directory, layout in docs/data.md (env ORBENCH_DATA_DIR)")
    p.add_argument("--out", type=Path, help="head JSON to write (omit to only evaluate)")
    p.add_argument("--sources", type=_csv, default=r.sources, help=f"default {','.join(r.sources)}")
    p.add_argument("--views", type=_csv, default=r.views, help=f"embedded views, default {','.join(r.views)}")
    p.add_argument("--flags", type=_csv, default=r.flags, help=f"string-match flags, default {','.join(r.flags)}")
    p.add_argument("--l2", type=float, default=r.l2, help=f"L2 strength (default {r.l2})")
    p.add_argument("--threshold", type=_threshold, default=None, metavar="auto|P",
                   help="compliance threshold on p(full_compliance); auto (default) picks it by LOMO")
    p.add_argument("--lomo", action="store_true", help="evaluate leave-one-model-out (plain and nested) first")
    p.add_argument("--strict", action="store_true", help="LOMO also drops the held-out model's family")
    p.add_argument("--threads", type=int, default=2, help="torch threads for embedding (default 2)")
    p.add_argument("--cache", type=Path, help="embedding cache file (default in the user cache dir)")
    p.add_argument("--json", action="store_true", help="print the LOMO numbers as JSON")
    p.add_argument("--no-short-refusal", action="store_true",
                   help="head without the judge's terse-refusal rule (in its evaluation and at run time)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Train (and optionally evaluate) the head."""
    data_dir = args.data_dir or data_dir_from_env()
    if data_dir is None:
        raise HarnessError("no data directory: pass --data-dir or set ORBENCH_DATA_DIR")
    bad = [v for v in args.views if v not in VIEWS] + [f for f in args.flags if f not in FLAGS]
    if bad:
        raise HarnessError(f"unknown view or flag {bad[0]!r} (views: {', '.join(VIEWS)}; flags: {', '.join(FLAGS)})")
    if not args.out and not args.lomo:
        raise HarnessError("nothing to do: pass --out FILE, --lomo, or both")
    recipe = Recipe(tuple(args.sources), tuple(args.views), tuple(args.flags), args.l2,
                    short_refusal=not args.no_short_refusal)
    examples = load_all(data_dir, recipe.sources)
    info(f"{len(examples)} labelled examples from {', '.join(recipe.sources)}")
    embedder = MiniLMEmbedder(max_length=recipe.max_length, threads=args.threads)
    cache = EmbeddingCache(args.cache or cache_dir() / "embeddings" / "minilm-l6-v2.npz", embedder)
    try:
        x = features(examples, cache.embed, recipe)
    finally:
        cache.save()
    threshold = args.threshold
    if threshold is None:
        threshold = select_threshold(examples, x, recipe, strict=args.strict)
        info(f"threshold {threshold} chosen by leave-one-model-out over {', '.join(map(str, recipe.thresholds))}")
    meta: dict[str, object] = {}
    if args.lomo:
        results = {"lomo": leave_one_model_out(examples, x, recipe, strict=args.strict, threshold=threshold)}
        if args.threshold is None:
            results["lomo_nested"] = leave_one_model_out(examples, x, recipe, strict=args.strict, nested=True)
        meta.update({key: result.to_json() for key, result in results.items()})
        if args.json:
            print(json.dumps(meta, indent=2))
        else:
            family = " (family held out too)" if args.strict else ""
            for result in results.values():
                how = "nested threshold" if result.nested else f"threshold {threshold}"
                rows = [[m, a.n, result.thresholds.get(m, ""), f"{a.binary_accuracy:.4f}", f"{a.kappa:.3f}",
                         f"{a.three_class_accuracy:.3f}"]
                        for m, a in [*result.per_model.items(), ("pooled", result.pooled)]]
                table(f"leave-one-model-out, {how}{family}",
                      ["held-out model", "n", "threshold", "binary acc", "kappa", "3-class acc"], rows)
    if args.out:
        head = train(examples, x, recipe, threshold=threshold, meta=meta)
        head.save(args.out)
        info(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0
