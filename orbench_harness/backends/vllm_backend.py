"""``vllm``: fast generation on GPUs for methods whose effect lives in the weights.

vLLM has no forward hooks and no per-token logits access through this backend, so it declares
only ``weights``: ``none`` runs on it directly, and weight-changing methods (ACTOR, SFT,
Surgical in ``mode=weights``) run on it after ``harness export`` wrote the changed model to
a directory (see the README's "On a GPU box"). Hook and logit methods are refused before any
work, with a message naming the ``hf`` backend.

vLLM is imported only in ``load``; everything up to the engine call (chat rendering, request
and sampling-parameter mapping, reading outputs back) is plain code tested without a GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orbench_harness.backends._device import describe
from orbench_harness.backends._gguf import convert_gguf
from orbench_harness.backends._hub import hub_errors
from orbench_harness.backends.chat import prompt_ids, stop_ids
from orbench_harness.errors import HarnessError
from orbench_harness.protocols import OnBatch
from orbench_harness.types import Capability, Completion, GenParams, ModelSpec, Prompt

CHUNK = 256


def sampling_kwargs(params: GenParams, eos_ids: Sequence[int]) -> dict[str, Any]:
    """``vllm.SamplingParams`` keyword arguments equivalent to the hf backend's settings."""
    return {
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p if not params.greedy else 1.0,
        "seed": params.seed,
        "stop_token_ids": list(eos_ids),
        "skip_special_tokens": True,
    }


def build_requests(token_ids: Sequence[Sequence[int]], budget: int) -> tuple[list[dict[str, Any]], list[bool]]:
    """vLLM prompt dicts (pre-tokenised, left-truncated to ``budget``) and truncation flags."""
    requests, truncated = [], []
    for ids in token_ids:
        truncated.append(len(ids) > budget)
        requests.append({"prompt_token_ids": list(ids)[-budget:]})
    return requests, truncated


def completion_from_output(output: Any, truncated: bool, max_new_tokens: int) -> Completion:
    """A Completion from one ``vllm.RequestOutput``."""
    first = output.outputs[0]
    n_new = len(first.token_ids)
    return Completion(
        text=first.text,
        n_prompt_tokens=len(output.prompt_token_ids),
        n_new_tokens=n_new,
        finish_reason="length" if first.finish_reason == "length" else "stop",
        truncated_prompt=truncated,
    )


class VLLMBackend:
    """Loads a model directory or hub id into a vLLM engine."""

    name = "vllm"
    capabilities = frozenset({Capability.WEIGHTS})

    def __init__(self, options: Mapping[str, str]) -> None:
        allowed = {"tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype"}
        unknown = set(options) - allowed
        if unknown:
            raise HarnessError(f"backend 'vllm' has no argument {sorted(unknown)[0]!r} ({', '.join(sorted(allowed))})")
        self.options = dict(options)

    def describe(self) -> dict[str, str]:
        """The first GPU the engine runs on (and the tensor-parallel width), for run.json."""
        info = describe("cuda:0")
        info["tensor_parallel_size"] = self.options.get("tensor_parallel_size", "1")
        return info

    def load(self, spec: ModelSpec) -> VLLMModel:
        """Start the engine (GGUF specs are converted to safetensors first, like hf)."""
        try:
            from vllm import LLM
        except ImportError:
            raise HarnessError(
                "backend 'vllm' needs vLLM on a CUDA machine: pip install 'orbench-harness[vllm]'"
            ) from None
        from transformers import AutoTokenizer

        if spec.adapter:
            raise HarnessError(f"model {spec.name!r} has an adapter: `harness export` it first, then run the directory")
        source: str = spec.source
        revision: str | None = spec.revision
        if spec.gguf_file:
            source, revision = str(convert_gguf(spec)), None
        with hub_errors(spec, source):
            tok = AutoTokenizer.from_pretrained(source, revision=revision)
        if spec.chat_template:
            tok.chat_template = spec.chat_template
        if not tok.chat_template:
            raise HarnessError(f"model {spec.name!r} has no chat template; pass one with --chat-template FILE")
        engine_args: dict[str, Any] = {"model": source, "tokenizer": source, "revision": revision,
                                       "dtype": self.options.get("dtype", spec.dtype)}
        for key in ("tensor_parallel_size", "max_model_len"):
            if key in self.options:
                engine_args[key] = int(self.options[key])
        if "gpu_memory_utilization" in self.options:
            engine_args["gpu_memory_utilization"] = float(self.options["gpu_memory_utilization"])
        eos = stop_ids(tok, _generation_eos(source, revision))
        return VLLMModel(spec, LLM(**engine_args), tok, eos)


class VLLMModel:
    """A vLLM engine behind the harness's Policy interface (generation only)."""

    capabilities = VLLMBackend.capabilities

    def __init__(self, spec: ModelSpec, llm: Any, tokenizer: Any, eos_ids: list[int]) -> None:
        self.spec = spec
        self.llm = llm
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.max_length = int(llm.llm_engine.model_config.max_model_len)

    def generate(self, prompts: Sequence[Prompt], params: GenParams, *, batch_size: int = 8,
                 on_batch: OnBatch | None = None) -> list[Completion]:
        """Chunks of prompts through the engine (it batches internally); results in order."""
        from vllm import SamplingParams

        ids = [prompt_ids(self.tokenizer, p) for p in prompts]  # token-identical to the hf backend's
        sampling = SamplingParams(**sampling_kwargs(params, self.eos_ids))
        out: list[Completion] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            requests, truncated = build_requests(chunk, self.max_length - params.max_new_tokens)
            results = self.llm.generate(requests, sampling_params=sampling, use_tqdm=False)
            comps = [completion_from_output(r, t, params.max_new_tokens)
                     for r, t in zip(results, truncated, strict=True)]
            out.extend(comps)
            if on_batch is not None:
                on_batch(list(range(start, start + len(comps))), comps)
        return out


def _generation_eos(source: str, revision: str | None) -> int | list[int] | None:
    """The model's generation-config EOS (what the hf backend stops at), if it has one."""
    from transformers import GenerationConfig

    try:
        cfg = GenerationConfig.from_pretrained(source, revision=revision)
    except OSError:  # no generation_config.json: the tokenizer's EOS and the turn end remain
        return None
    eos: int | list[int] | None = cfg.eos_token_id
    return eos
