"""The device the model tests load the tiny model on.

The CPU unless ``ORBENCH_TEST_DEVICE`` names another (``cuda``): on a GPU box,
``ORBENCH_TEST_DEVICE=cuda python -m pytest`` runs every method, judge and capability test on
the accelerator, which is where device-placement and precision faults live (a tensor left on
the CPU, a float32 buffer beside bfloat16 weights). CLI-level tests need no switch: the ``hf``
backend picks CUDA by itself when one is present.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orbench_harness.backends.hf import HFModel
    from orbench_harness.types import ModelSpec

DEVICE = os.environ.get("ORBENCH_TEST_DEVICE", "cpu")


def load(spec: ModelSpec) -> HFModel:
    """``spec`` loaded on ``DEVICE``, in float32 where it says ``auto``: the tests compare
    against float32 arithmetic, and ``auto`` means bfloat16 on a GPU (the precision tests ask
    for 16 bits explicitly)."""
    from orbench_harness.backends.hf import HFBackend

    if spec.dtype == "auto":
        spec = dataclasses.replace(spec, dtype="float32")
    return HFBackend(device=DEVICE).load(spec)
