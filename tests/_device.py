"""The device the model tests load the tiny model on.

The CPU unless ``ORBENCH_TEST_DEVICE`` names another (``cuda``): on a GPU box,
``ORBENCH_TEST_DEVICE=cuda python -m pytest`` runs every method, judge and capability test on
the accelerator, which is where device-placement and precision faults live (a tensor left on
the CPU, a float32 buffer beside bfloat16 weights). CLI-level tests need no switch: the ``hf``
backend picks CUDA by itself when one is present.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from orbench_harness.backends.hf import HFBackend

if TYPE_CHECKING:
    from orbench_harness.backends.hf import HFModel
    from orbench_harness.types import ModelSpec

DEVICE = os.environ.get("ORBENCH_TEST_DEVICE", "cpu")


def load(spec: ModelSpec) -> HFModel:
    """``spec`` loaded on ``DEVICE``, in float32 where it says ``auto``: the tests compare
    against float32 arithmetic, and ``auto`` means bfloat16 on a GPU (the precision tests ask
    for 16 bits explicitly)."""
    if spec.dtype == "auto":
        spec = dataclasses.replace(spec, dtype="float32")
    return HFBackend(device=DEVICE).load(spec)


@contextlib.contextmanager
def memory_for_rows(hf: HFModel, max_rows: int) -> Iterator[None]:
    """Make the real model fail as a full accelerator does: torch's ``OutOfMemoryError`` from
    any forward pass over more than ``max_rows`` sequences (token ids or embeddings), so the
    back-off of whatever runs inside is exercised on the CPU."""
    import torch

    def full(_module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        given = [kwargs.get("input_ids"), kwargs.get("inputs_embeds"), *args[:1]]
        x = next((t for t in given if t is not None), None)
        if isinstance(x, torch.Tensor) and x.shape[0] > max_rows:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: {x.shape[0]} rows)")

    # on the decoder, which every pass goes through (DRO reads states from it directly)
    handle = hf.model.get_decoder().register_forward_pre_hook(full, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
