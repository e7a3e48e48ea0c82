"""Batches that back off when the accelerator runs out of memory.

Generation, log-probabilities and hidden states all run a model over chunks of inputs whose
memory grows with the chunk. The chunk size that fits depends on the GPU, the model, the
precision and the longest input, none of which the user should have to guess: a chunk that
raises torch's out-of-memory error is retried in halves, and the smaller size is kept for the
rest (callers that sort longest first meet it at the start, not six hours in). One item that
cannot fit is a one-line error naming the fixes.

``--batch-size auto`` (``search_batch_size``) chooses the generation batch by measurement:
doubling while the measured throughput keeps rising and the rows fit the free memory, once per
model, precision and device (the answer is kept in the cache directory).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from orbench_harness.console import warn
from orbench_harness.errors import HarnessError
from orbench_harness.paths import cache_dir

R = TypeVar("R")


def in_batches(
    lengths: Sequence[int],
    batch_size: int,
    run: Callable[[int, int], R],
    *,
    device: str,
    doing: str,
    fix: str,
    release: Callable[[], None],
    unit: str = "input",
) -> Iterator[tuple[int, int, R]]:
    """Yield ``(start, stop, run(start, stop))`` over consecutive chunks of the items.

    ``lengths`` are the items' token counts (for the messages), ``doing`` says what a chunk
    does ("generating 64 tokens for"), ``fix`` what to change when one item does not fit,
    ``release`` returns the failed chunk's memory before a smaller try, and ``unit`` names an
    item in the messages.
    """
    import torch

    size, start = max(1, batch_size), 0
    while start < len(lengths):
        stop = min(len(lengths), start + size)
        try:
            result = run(start, stop)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not is_oom(e):
                raise
            release()
            longest = max(lengths[start:stop])
            if size == 1:
                raise HarnessError(
                    f"out of memory on {device} {doing} one {unit} of {longest} tokens: {fix}"
                ) from None
            size //= 2
            warn(f"out of memory on {device} {doing} {stop - start} {unit}s of up to {longest} tokens; "
                 f"continuing with batches of {size} (--batch-size {size} avoids the retry)")
            continue
        yield start, stop, result
        start = stop


# A doubled batch is kept only when it is at least this much faster per token: beyond that,
# memory grows for nothing, and on a busy CPU smaller gains are within the measurement's noise.
GAIN = 1.05
SIZES_FILE = "batch-sizes.json"


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is torch's out-of-memory error (or a RuntimeError that says so)."""
    import torch

    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def search_batch_size(probe: Callable[[int], float], cap: int, *, start: int = 4,
                      release: Callable[[], None] = lambda: None) -> tuple[int, dict[int, float]]:
    """The batch size to generate with, and the throughputs measured on the way.

    ``probe(size)`` returns the seconds one fixed unit of work per row takes at ``size`` rows.
    Sizes double from ``start`` up to ``cap`` (what fits the free memory, or the number of
    prompts); the search stops at the first size that is not ``GAIN`` times faster per row than
    the best so far, or that runs out of memory, and returns the best. Each size is timed
    twice and the faster kept: on a machine shared with other work one slow pass would
    otherwise end the search early, and the answer is remembered for later runs.
    """
    size, best, rates = max(1, min(start, cap)), 0, {}
    while True:
        try:
            seconds = min(probe(size), probe(size))
        except (RuntimeError, MemoryError) as e:
            if not (isinstance(e, MemoryError) or is_oom(e)):
                raise
            release()
            break
        rates[size] = size / max(seconds, 1e-9)
        if best and rates[size] < rates[best] * GAIN:
            break
        best = size
        if size >= cap:
            break
        size = min(cap, size * 2)
    return max(best, 1), rates


def row_bytes(config: Any, tokens: int, dtype_bytes: int) -> int:
    """Memory one generating row needs beyond the weights: its key/value cache over ``tokens``
    positions, the prefill's widest activations (the MLP's) and the float32 last-token logits
    the sampler works on. An estimate for the cap of ``search_batch_size``, not a promise:
    the out-of-memory back-off covers the rest."""
    layers = int(getattr(config, "num_hidden_layers", 1))
    heads = int(getattr(config, "num_attention_heads", 1))
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    hidden = int(getattr(config, "hidden_size", 1))
    head_dim = int(getattr(config, "head_dim", None) or hidden // max(heads, 1))
    inter = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    vocab = int(getattr(config, "vocab_size", 1))
    kv = 2 * layers * kv_heads * head_dim * tokens * dtype_bytes
    activations = tokens * (2 * hidden + 2 * inter) * dtype_bytes
    return kv + activations + 3 * vocab * 4


def available_cpu_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sizes_path() -> Path:
    return cache_dir() / SIZES_FILE


def _key(facts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def remembered_size(facts: Mapping[str, Any]) -> tuple[int, bool] | None:
    """The size ``remember_size`` stored for these facts (model, precision, device, threads),
    and whether it was only a lower bound (the search reached its cap, still speeding up)."""
    try:
        entry = json.loads(_sizes_path().read_text(encoding="utf-8")).get(_key(facts))
    except (OSError, ValueError, AttributeError):
        return None
    size = entry.get("size") if isinstance(entry, dict) else None
    if not isinstance(size, int) or size < 1:
        return None
    return size, bool(entry.get("at_least", False))


def remember_size(facts: Mapping[str, Any], size: int, rates: Mapping[int, float], *, at_least: bool = False) -> None:
    """Keep a measured size, so later runs on the same model and device skip the probe
    (``at_least``: the search stopped at its cap, so a run with room for more measures again).
    A cache directory that cannot be written only costs the next run the probe again."""
    path = _sizes_path()
    try:
        table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError):
        table = {}
    if not isinstance(table, dict):
        table = {}
    table[_key(facts)] = {"size": size, "at_least": at_least, "facts": dict(facts),
                          "tokens_per_s": {str(k): round(v, 1) for k, v in rates.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(table, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return
