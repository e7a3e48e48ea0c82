"""User-facing errors: the CLI prints them as one line and exits with code 2.

Anything else that escapes is a bug in the harness or a plugin and keeps its traceback.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class HarnessError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class UnknownNameError(HarnessError):
    """An unknown method, judge, benchmark, model, backend or reporter name."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        listing = f" (known: {', '.join(known)})" if len(known) <= 12 else ""
        super().__init__(f"unknown {kind} {name!r}{hint}{listing}")
        self.kind = kind
        self.name = name
        self.suggestions = close


class DataError(HarnessError):
    """A benchmark file is missing or malformed; the message names file, row and column."""


class CapabilityError(HarnessError):
    """A method needs something the chosen backend cannot do."""


class JudgeUnavailable(HarnessError):
    """A judge's backend (an API endpoint, a model) could not be reached or kept failing."""


class TrainingDiverged(HarnessError):
    """A training loss became NaN or infinite: the trained weights would be noise."""


def finite_loss(value: float, where: str, *, dtype: str, device: str, what: str = "the training loss") -> float:
    """``value`` when finite; otherwise stop the training, naming the place and the precision.

    Without this, a NaN step poisons the trained weights, the artifact is cached as if it were
    good, and every later run scores the broken model (on an H200 in bfloat16, ACTOR's NaN loss
    gave empty answers everywhere, which a string-match judge counts as 100% compliance). The
    checkpoints of earlier epochs stay, so a run resumes from the last finite one.
    """
    if math.isfinite(value):
        return value
    raise TrainingDiverged(
        f"{where}: {what} became {value} ({dtype} on {device}); this epoch was not saved. "
        "Load the model with --dtype float32, or lower the learning rate"
    )


class TrainingOutOfMemory(HarnessError):
    """A training step did not fit in the device's memory."""


@contextmanager
def training_memory(where: str, device: str, fix: str) -> Iterator[None]:
    """Turn torch's out-of-memory error inside a training loop into a one-line error.

    Inference backs off by itself (``backends/_batching.py``). Training cannot: its batch size
    is part of the method's fingerprint, so a smaller one is another experiment, and the user
    must choose it. ``fix`` names the option. The torch error is recognised by its class name
    and message, so this module imports nothing heavy.
    """
    try:
        yield
    except RuntimeError as e:
        text = str(e)
        if type(e).__name__ != "OutOfMemoryError" and "out of memory" not in text \
                and "can't allocate memory" not in text:
            raise
        raise TrainingOutOfMemory(f"{where}: out of memory on {device} while training; {fix}") from None
