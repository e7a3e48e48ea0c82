"""Batches that back off when the accelerator runs out of memory.

Generation, log-probabilities and hidden states all run a model over chunks of inputs whose
memory grows with the chunk. The chunk size that fits depends on the GPU, the model, the
precision and the longest input, none of which the user should have to guess: a chunk that
raises torch's out-of-memory error is retried in halves, and the smaller size is kept for the
rest (callers that sort longest first meet it at the start, not six hours in). One item that
cannot fit is a one-line error naming the fixes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from orbench_harness.console import warn
from orbench_harness.errors import HarnessError

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
            if not isinstance(e, torch.OutOfMemoryError) and "out of memory" not in str(e):
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
