"""Generation throughput: the harness vs a plain one-at-a-time loop vs one raw batched call.

    python bench/generation.py [--n 64] [--max-new-tokens 64] [--batch-size 16]

All three generate greedily for the same XSTest prompts with the embedded SmolLM2-135M, each
in its own subprocess (so peak memory is per variant). Tokens/s counts generated tokens up to
EOS. Targets (issue 9): harness >= 4x the loop and >= 0.9x the single batched call.
The raw batched call takes all ``--n`` prompts at once; ``--batch-size`` sets the harness's
batches, so ``--batch-size 64`` (with ``--n 64``) is the like-for-like comparison, and the
default 16 shows what four smaller, length-sorted batches cost on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import DATA, peak_rss_mb, run_isolated
from orbench_harness.backends.hf import HFBackend
from orbench_harness.data import DataSource
from orbench_harness.models import smollm2_spec
from orbench_harness.registry import Registry
from orbench_harness.types import GenParams, Prompt


def _prompts(n: int) -> list[str]:
    bench = Registry().create("benchmarks", "xstest", DataSource(DATA))
    return [s.prompt for s in bench.samples("test")[:n]]


def _worker(variant: str, n: int, max_new: int, batch_size: int) -> None:
    import torch

    model = HFBackend(device="cpu").load(smollm2_spec())
    prompts = [Prompt.user(p) for p in _prompts(n)]
    tok, hf = model.tokenizer, model.model
    eos = model._eos_ids
    t0 = time.perf_counter()
    new_tokens = 0
    if variant == "harness":
        comps = model.generate(prompts, GenParams(max_new_tokens=max_new), batch_size=batch_size)
        new_tokens = sum(c.n_new_tokens for c in comps)
    else:
        texts = [model.render(p) for p in prompts]
        groups = [[t] for t in texts] if variant == "loop" else [texts]
        tok.padding_side = "left"
        for group in groups:
            enc = tok(group, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = hf.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id,
                                  eos_token_id=eos)
            for row in out[:, enc["input_ids"].shape[1]:].tolist():
                stop = next((i for i, t in enumerate(row) if t in eos), len(row))
                new_tokens += stop
    seconds = time.perf_counter() - t0
    print(json.dumps({"variant": variant, "seconds": seconds, "new_tokens": new_tokens,
                      "tokens_per_s": new_tokens / seconds, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--variants", default="loop,batched,harness",
                    help="which to run (the loop takes minutes; its ratio is printed only when it ran)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        _worker(a.worker, a.n, a.max_new_tokens, a.batch_size)
        return
    res = {}
    variants = [v for v in ("loop", "batched", "harness") if v in a.variants.split(",")]
    if "harness" not in variants:
        raise SystemExit("--variants must include harness")
    for variant in variants:
        res[variant] = run_isolated(__file__, "--worker", variant, "--n", str(a.n), "--max-new-tokens",
                                    str(a.max_new_tokens), "--batch-size", str(a.batch_size))
        r = res[variant]
        print(f"{variant:8s} {r['new_tokens']:6d} tokens in {r['seconds']:7.1f}s = {r['tokens_per_s']:7.1f} tok/s"
              f"   peak RSS {r['peak_rss_mb']:.0f} MiB")
    h = res["harness"]["tokens_per_s"]
    parts = [f"harness/{v} {h / res[v]['tokens_per_s']:.2f} (target >= {t})"
             for v, t in (("loop", 4), ("batched", 0.9)) if v in res]
    print("ratio " + "   ".join(parts))


if __name__ == "__main__":
    main()
