"""Built-in backends (a plugin module). Their modules import torch, transformers and vLLM
only when a model is loaded, so registering them here stays light."""

from __future__ import annotations

from collections.abc import Mapping

from orbench_harness.backends.hf import HFBackend
from orbench_harness.backends.vllm_backend import VLLMBackend
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.protocols import Backend


def _hf(args: Mapping[str, str]) -> Backend:
    return HFBackend.from_args(args)


def _vllm(args: Mapping[str, str]) -> Backend:
    return VLLMBackend(args)


@hookimpl
def orbench_register_backends(register: Register) -> None:
    """Register ``hf`` (transformers) and ``vllm`` (generation only)."""
    register(
        "hf",
        _hf,
        summary="transformers on CPU or CUDA: weights, hooks, logits, training",
        aliases=("transformers",),
        capabilities=("weights", "hooks", "logits", "training"),
    )
    register(
        "vllm",
        _vllm,
        summary="vLLM on CUDA: fast generation for weight-level methods (export them first)",
        capabilities=("weights",),
    )
