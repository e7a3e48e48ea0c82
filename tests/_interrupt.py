"""A Ctrl-C right after a training loop's first epoch checkpoint, for the resume tests."""

from __future__ import annotations

import itertools
from types import ModuleType
from typing import Any

import pytest


def interrupt_after_first_checkpoint(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
    """Make ``module._checkpoint`` save once and then raise KeyboardInterrupt (later calls save
    normally); ``monkeypatch.undo()`` or a fresh ``monkeypatch.setattr`` restores it."""
    real = module._checkpoint
    counter = itertools.count(1)

    def checkpoint_then_interrupt(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        if next(counter) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(module, "_checkpoint", checkpoint_then_interrupt)
