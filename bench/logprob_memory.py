"""Peak memory of scoring: ``HFModel.token_logprobs`` against the plain log-softmax it replaced.

    python bench/logprob_memory.py [--model smollm2-135m] [--dtype bfloat16] [--rows 8]
                                   [--tokens 2000] [--threads N]

Each variant runs in its own subprocess on the CPU: load the model, build ``--rows`` sequences
of ``--tokens`` tokens, then score them as one batch. The naive variant is the textbook one
(``log_softmax`` of the whole batch's logits in float32, then a gather), which holds the logits
plus two float32 copies of batch x length x vocabulary; ours reduces one row at a time
(gather minus log-sum-exp). Measured: the growth of the process's peak resident memory during
scoring over its resident memory before it, and the largest difference between the two
variants' log-probabilities. Scoring must peak above loading for the number to mean anything;
the script says when it did not. Target: ratio naive/ours >= 2 in bfloat16 (the precision a
GPU loads), with the same log-probabilities to 1e-4.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import run_isolated
from orbench_harness.backends.hf import HFBackend
from orbench_harness.models import resolve


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _naive(hf, rows):
    import torch

    ids, mask = hf._pad(rows, left=False)
    with torch.inference_mode():
        logits = hf.model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return [picked[j, : len(r) - 1].tolist() for j, r in enumerate(rows)]


def _worker(variant: str, model: str, dtype: str, n_rows: int, tokens: int, threads: int) -> None:
    import torch

    spec = resolve(model)
    assert spec is not None
    hf = HFBackend(device="cpu", threads=threads or None).load(dataclasses.replace(spec, dtype=dtype))
    text = hf.encode("The sea is wide and the wind is strong, and the stars look down on the ships at night. " * 200)
    rows = [text[j : j + tokens] for j in range(n_rows)]
    before, peak0 = _rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lps = _naive(hf, rows) if variant == "naive" else hf.token_logprobs(rows, batch_size=n_rows)
    peak1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": variant, "growth_mb": peak1 - before, "above_load": peak1 > peak0,
                      "vocab": int(hf.model.config.vocab_size), "threads": torch.get_num_threads(),
                      "lps": lps}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        _worker(a.worker, a.model, a.dtype, a.rows, a.tokens, a.threads)
        return
    args = ["--model", a.model, "--dtype", a.dtype, "--rows", str(a.rows), "--tokens", str(a.tokens),
            "--threads", str(a.threads)]
    res = {v: run_isolated(__file__, "--worker", v, *args) for v in ("naive", "ours")}
    naive, ours = res["naive"], res["ours"]
    pairs = [(x, y) for rn, ro in zip(naive["lps"], ours["lps"], strict=True) for x, y in zip(rn, ro, strict=True)]
    diff = max(abs(x - y) for x, y in pairs)
    worst = max(pairs, key=lambda p: abs(p[0] - p[1]))
    print(f"{a.model} ({a.dtype}, vocabulary {ours['vocab']}), {a.rows} sequences x {a.tokens} tokens, "
          f"{ours['threads']} thread(s)")
    for r in (naive, ours):
        note = "" if r["above_load"] else "  (did not peak above loading: a lower bound)"
        print(f"{r['variant']:6s} peak memory growth while scoring {r['growth_mb']:8.0f} MiB{note}")
    print(f"largest log-prob difference over {len(pairs)} tokens {diff:.2e} (at {worst[0]:.4f})")
    print(f"ratio naive/ours {naive['growth_mb'] / ours['growth_mb']:.2f} (target >= 2 in bfloat16)")


if __name__ == "__main__":
    main()
