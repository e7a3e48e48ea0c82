"""The embedded model served by llama.cpp (``--backend openai``) vs loaded by transformers (``hf``).

    python bench/openai_vs_hf.py [--n 64] [--max-new-tokens 64] [--threads 1] [--concurrency 1]

The same ``--n`` XSTest prompts (the demo sets where the shared datasets are absent), greedy,
``--max-new-tokens`` each, through both backends of the harness:

- ``openai``: ``llama_cpp.server`` on loopback serving the SmolLM2 GGUF as shipped (Q4_1), each
  prompt one chat request through ``OpenAIBackend`` (``--concurrency`` threads);
- ``hf``: the same GGUF dequantised to float32 by the ``hf`` backend, batched as ``harness run``
  batches it (``--batch-size auto``).

Both get ``--threads`` CPU threads. Printed: generated tokens per second of each (tokens as each
side counts them: the server's usage, the tokenizer's ids up to the stop token), the ratio
openai/hf, and agreement of the answers as ratios: identical text, the same first five words,
and the same verdict of the ``strmatch`` judge. The two are not the same arithmetic (4-bit
blocks in llama.cpp, float32 after dequantisation in transformers), so answers may drift apart
after a few tokens; the verdict agreement says whether that changes what is scored. The
server's start (loading the GGUF) is timed apart and not in its tokens/s. Needs
``llama-cpp-python[server]`` (``./install.sh --with-llama-cpp``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _llamacpp
from bench._common import DATA
from orbench_harness.backends.hf import HFBackend
from orbench_harness.backends.openai_backend import OpenAIBackend
from orbench_harness.data import DataSource
from orbench_harness.models import smollm2_spec
from orbench_harness.registry import Registry
from orbench_harness.types import Completion, GenParams, JudgeItem, Prompt


def prompts(n: int) -> tuple[str, list[str]]:
    """The first ``n`` XSTest prompts, or the demo sets' when the datasets are absent."""
    reg = Registry()
    if (DATA / "xstest").exists():
        return "xstest", [s.prompt for s in reg.create("benchmarks", "xstest", DataSource(DATA)).samples("test")][:n]
    texts = [s.prompt for name in reg.expand_benchmarks(("demo",))
             for s in reg.create("benchmarks", name, DataSource(None)).samples("test")]
    return "demo", texts[:n]


def timed(fn: Any) -> tuple[list[Completion], float]:
    t0 = time.perf_counter()
    comps: list[Completion] = fn()
    return comps, time.perf_counter() - t0


def first_words(text: str, k: int = 5) -> list[str]:
    return text.lower().split()[:k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for each side")
    ap.add_argument("--concurrency", type=int, default=1, help="requests in flight to the server")
    args = ap.parse_args()
    if not _llamacpp.available():
        raise SystemExit(_llamacpp.MISSING)
    source, texts = prompts(args.n)
    chats = [Prompt.user(t) for t in texts]
    params = GenParams(max_new_tokens=args.max_new_tokens)

    log = Path(tempfile.mkdtemp(prefix="orbench-bench-")) / "llama-server.log"
    t0 = time.perf_counter()
    with _llamacpp.serving(log, threads=args.threads) as server:
        start_s = time.perf_counter() - t0
        backend = OpenAIBackend({"base_url": server.url, "concurrency": str(args.concurrency)})
        served = backend.load(backend.identify(backend.resolve_model(_llamacpp.ALIAS)))
        api, api_s = timed(lambda: served.generate(chats, params))

    hf_backend = HFBackend(device="cpu", threads=args.threads)
    model = hf_backend.load(smollm2_spec())
    size = model.auto_batch_size(chats, args.max_new_tokens)
    local, hf_s = timed(lambda: model.generate(chats, params, batch_size=size))

    judge = Registry().create("judges", "strmatch", {})
    v_api = judge.judge([JudgeItem(t, c.text) for t, c in zip(texts, api, strict=True)])
    v_hf = judge.judge([JudgeItem(t, c.text) for t, c in zip(texts, local, strict=True)])
    n = len(texts)
    tok_api, tok_hf = sum(c.n_new_tokens for c in api), sum(c.n_new_tokens for c in local)
    res = {
        "prompts": f"{source} x{n}", "max_new_tokens": args.max_new_tokens, "threads": args.threads,
        "openai_tokens": tok_api, "openai_seconds": round(api_s, 2), "openai_tok_s": round(tok_api / api_s, 1),
        "server_start_seconds": round(start_s, 2),
        "hf_tokens": tok_hf, "hf_seconds": round(hf_s, 2), "hf_tok_s": round(tok_hf / hf_s, 1), "hf_batch_size": size,
        "throughput_ratio_openai_over_hf": round((tok_api / api_s) / (tok_hf / hf_s), 3),
        "same_text": round(sum(a.text.strip() == b.text.strip() for a, b in zip(api, local, strict=True)) / n, 3),
        "same_first_5_words": round(sum(first_words(a.text) == first_words(b.text)
                                        for a, b in zip(api, local, strict=True)) / n, 3),
        "same_strmatch_verdict": round(sum(a.label == b.label for a, b in zip(v_api, v_hf, strict=True)) / n, 3),
    }
    print(f"openai (llama.cpp, Q4_1): {res['openai_tok_s']} tok/s   hf (float32): {res['hf_tok_s']} tok/s   "
          f"ratio openai/hf {res['throughput_ratio_openai_over_hf']}x")
    print(f"agreement over {n} prompts: same text {res['same_text']}, same first 5 words "
          f"{res['same_first_5_words']}, same strmatch verdict {res['same_strmatch_verdict']}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
