"""Built-in backends (a plugin module). Their modules import torch, transformers and vLLM
only when a model is loaded, so registering them here stays light."""

from __future__ import annotations

from collections.abc import Mapping

from orbench_harness.backends.hf import HFBackend
from orbench_harness.backends.openai_backend import OpenAIBackend
from orbench_harness.backends.vllm_backend import VLLMBackend
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.protocols import Backend


def _hf(args: Mapping[str, str]) -> Backend:
    """Options: device=cpu|cuda|cuda:N (default: cuda when present), threads=N (torch CPU
    threads; 1 is fastest on a busy shared CPU)."""
    return HFBackend.from_args(args)


def _vllm(args: Mapping[str, str]) -> Backend:
    """Options: tensor_parallel_size=N, gpu_memory_utilization=0.9, max_model_len=N,
    dtype=auto|bfloat16|float16 (default: the run's --dtype)."""
    return VLLMBackend(args)


def _openai(args: Mapping[str, str]) -> Backend:
    """Options: base_url (default $OPENAI_BASE_URL, else OpenAI), model_revision=TAG,
    concurrency=4, requests_per_minute=N (0: no cap), timeout=120, max_retries=6, max_wait=300,
    backoff=1.0, api_key_env=OPENAI_API_KEY."""
    return OpenAIBackend(args)


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
    register(
        "openai",
        _openai,
        summary="a model served behind an OpenAI-compatible API (vllm serve, llama.cpp, a provider)",
        capabilities=(),
    )
