"""``hf``: the transformers backend (weights, hooks, logits, training; CPU or CUDA).

Loads a hub id, a local directory or a GGUF file (dequantised once into the cache by
``_gguf.convert_gguf``). Generation is batched longest-first, in batches of a measured size
under ``--batch-size auto`` (``_autobatch``), and backs off on out-of-memory;
a float16 load is probed for overflow before any run is spent on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.backends._device import auto_dtype, capability, check_device, describe
from orbench_harness.backends._gguf import convert_gguf
from orbench_harness.backends._hub import hub_errors
from orbench_harness.backends.hf_model import CAPABILITIES, HFModel, HookFn
from orbench_harness.errors import HarnessError
from orbench_harness.types import ModelSpec, Prompt

if TYPE_CHECKING:
    import torch

__all__ = ["HFBackend", "HFModel", "HookFn", "auto_dtype"]  # HFModel and HookFn live in hf_model


class HFBackend:
    """Loads models with transformers; ``device`` defaults to CUDA when present."""

    name = "hf"
    capabilities = CAPABILITIES

    def __init__(self, device: str | None = None, threads: int | None = None) -> None:
        self.device = device
        self.threads = threads

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> HFBackend:
        """``--backend-arg device=cuda:1 threads=2``."""
        unknown = set(args) - {"device", "threads"}
        if unknown:
            raise HarnessError(f"backend 'hf' has no argument {sorted(unknown)[0]!r} (device, threads)")
        threads = int(args["threads"]) if "threads" in args else None
        return cls(device=args.get("device"), threads=threads)

    def concrete(self, spec: ModelSpec) -> ModelSpec:
        """The spec with ``dtype=auto`` replaced by the precision this backend will load it in.

        The dtype is part of the model's cache key and of run.json. Left as ``auto``, a float32
        run on a CPU and a bfloat16 run on a GPU of the same checkpoint would share cached
        generations and ACTOR artifacts, and neither record would say which arithmetic it was.
        """
        if spec.dtype != "auto":
            return spec
        device = self._device()
        return replace(spec, dtype=auto_dtype(device, capability(device) if device != "cpu" else None))

    def describe(self) -> dict[str, str]:
        """The hardware this backend computes on, for run.json (``_device.describe``)."""
        return describe(self._device(), self.threads)

    def _device(self) -> str:
        """The device asked for, else CUDA when present, else the CPU. Without a GPU driver
        there is no CUDA device to find, and torch (seconds to import) is not asked: a finished
        run is recognised (``finished``) on a CPU machine without importing it."""
        if self.device == "cpu" or (not self.device and not _gpu_driver()):
            return "cpu"
        import torch

        return check_device(self.device) if self.device else ("cuda" if torch.cuda.is_available() else "cpu")

    def load(self, spec: ModelSpec) -> HFModel:
        """Load tokenizer and model; fail early if there is no chat template."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if self.threads:
            torch.set_num_threads(self.threads)
        device = self._device()
        spec = self.concrete(spec)
        source, kwargs = self._materialise(spec)
        with hub_errors(spec, source):
            tok = AutoTokenizer.from_pretrained(source, **kwargs)
        if spec.chat_template:
            tok.chat_template = spec.chat_template
        if not tok.chat_template:
            raise HarnessError(
                f"model {spec.name!r} has no chat template; pass one with --chat-template FILE"
            )
        dtype = _dtype(spec.dtype)
        with hub_errors(spec, source):
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
        if spec.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, spec.adapter).merge_and_unload()
        model.to(device).eval()
        hf = HFModel(spec, model, tok, device)
        if dtype == torch.float16:
            _check_finite(hf)
        return hf

    def _materialise(self, spec: ModelSpec) -> tuple[str, dict[str, Any]]:
        """Source path/id and from_pretrained kwargs; converts GGUF files once."""
        if spec.gguf_file:
            return str(convert_gguf(spec)), {}
        kwargs: dict[str, Any] = {}
        if not Path(spec.source).is_dir():
            kwargs["revision"] = spec.revision
        return spec.source, kwargs


def _gpu_driver() -> bool:
    """Whether an NVIDIA or AMD (ROCm) kernel driver is present; torch finds no GPU without one."""
    return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd"))


def _dtype(name: str) -> torch.dtype:
    """The torch dtype of a concrete precision name (``auto`` is resolved by ``concrete``)."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _check_finite(hf: HFModel) -> None:
    """float16 tops out at 65504, and models trained in bfloat16 can exceed it in their
    activations (Gemma 3's large norm weights are a known case), which turns every logit into
    inf or NaN and every answer into noise without an error. One forward pass on a short
    prompt catches the common case before a run is spent on it."""
    import torch

    ids, mask = hf.left_pad([hf.encode_prompt(Prompt.user("Hello! What can you help me with today?"))])
    with torch.inference_mode():
        logits = hf.forward(ids, mask).logits
    if not bool(torch.isfinite(logits).all()):
        raise HarnessError(
            f"model {hf.spec.name!r} overflows in float16 (non-finite logits on a probe prompt); "
            "load it with --dtype bfloat16 or --dtype float32"
        )
