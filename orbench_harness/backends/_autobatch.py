"""``--batch-size auto`` for the ``hf`` backend: the largest useful generation batch, measured.

The batch that fits and the batch that is fastest are different questions. On a GPU, memory
bounds it (the key/value cache grows with rows x tokens); on a CPU, throughput stops rising
long before memory runs out, and past that point a larger batch only makes more rows wait for
the batch's longest answer. So: a cap from the free memory for the longest prompt plus the new
tokens (``_batching.row_bytes``), then sizes doubled from 4 while a short fixed generation gets
``_batching.GAIN`` times faster per row. The answer is kept in the cache directory per model,
precision, device and thread count, so the probe (seconds) is paid once, not per run; the
out-of-memory back-off of ``_batching.in_batches`` still covers what the estimate misses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from orbench_harness.backends._batching import (
    available_cpu_bytes,
    remember_size,
    remembered_size,
    row_bytes,
    search_batch_size,
)
from orbench_harness.backends._device import describe
from orbench_harness.types import ModelSpec, Prompt

if TYPE_CHECKING:
    import torch

MAX_AUTO = 256
PROBE_TOKENS = 8
SMALL = 8  # runs of at most this many prompts are one batch (the former default size)


class HFModel(Protocol):
    """What the measurement uses of ``hf.HFModel`` (a Protocol: ``hf`` imports this module)."""

    spec: ModelSpec
    model: Any
    tokenizer: Any
    device: str
    _eos_ids: list[int]

    def encode_prompt(self, prompt: Prompt) -> list[int]: ...

    def left_pad(self, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def _release_memory(self) -> None: ...


def auto_batch_size(hf: HFModel, prompts: Sequence[Prompt], max_new_tokens: int) -> int:
    """``--batch-size auto``: the generation batch size for these prompts, chosen by
    measurement (``_batching.search_batch_size``) under what the free memory holds for the
    longest prompt plus ``max_new_tokens``. The measured size is kept per model, precision,
    device and thread count, so only the first run on them pays the probe (seconds)."""
    import torch

    lengths = sorted(len(hf.encode_prompt(p)) for p in prompts) or [32]
    elt = torch.finfo(hf.model.dtype).bits // 8
    per_row = row_bytes(hf.model.config, lengths[-1] + max_new_tokens, elt)
    free = (torch.cuda.mem_get_info(hf.device)[0] if hf.device.startswith("cuda")
            else available_cpu_bytes())
    fits = MAX_AUTO if free is None else max(1, min(MAX_AUTO, int(0.8 * free) // per_row))
    facts = measured_on(hf)
    cap = min(fits, len(lengths))
    if cap <= SMALL:  # one batch: nothing to choose between (and nothing worth measuring)
        return cap
    known = remembered_size(facts)
    if known is not None and (not known[1] or known[0] >= cap):
        return max(1, min(known[0], cap))
    size, rates = _measure(hf, lengths[len(lengths) // 2], cap)
    # stopped below the cap: throughput, true for later runs too; at the cap: a lower bound
    remember_size(facts, size, rates, at_least=size >= cap)
    return max(1, min(size, cap))


def measured_on(hf: HFModel) -> dict[str, Any]:
    """What a measured size holds for: the model, its precision, the device and torch's threads."""
    import torch

    return {"model": hf.spec.key, "device": describe(hf.device, torch.get_num_threads()),
            "dtype": str(hf.model.dtype)}


def _measure(hf: HFModel, prompt_tokens: int, cap: int) -> tuple[int, dict[int, float]]:
    """``search_batch_size`` over a fixed generation of ``PROBE_TOKENS`` tokens from rows of
    ``prompt_tokens`` (the median prompt's length, within 8 to 512) tokens."""
    import torch

    plen = max(8, min(prompt_tokens, 512))
    base = hf.encode_prompt(Prompt.user("Tell me about the history of the printing press."))
    row = (base * (plen // max(len(base), 1) + 1))[-plen:]

    def probe(size: int) -> float:
        ids, mask = hf.left_pad([row] * size)
        t0 = time.perf_counter()
        with torch.inference_mode():
            hf.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=PROBE_TOKENS,
                              min_new_tokens=PROBE_TOKENS, do_sample=False,
                              pad_token_id=hf.tokenizer.pad_token_id, eos_token_id=hf._eos_ids)
        if hf.device.startswith("cuda"):
            torch.cuda.synchronize(hf.device)
        return time.perf_counter() - t0

    probe(1)  # warm-up: the first call pays one-off setup that would flatter the sizes after it
    # from the former fixed default up: a probe slowed by other work on the machine may stop
    # the search early, and should never leave the user below what they had before
    size, rates = search_batch_size(probe, cap, start=SMALL, release=hf._release_memory)
    return size, {k: v * PROBE_TOKENS for k, v in rates.items()}  # rows/s -> tokens/s
