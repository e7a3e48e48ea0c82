"""Refusal-direction utilities shared by SCANS and Surgical (difference-of-means methods).

What lives here, and why it is shared rather than per method:

- ``eoi_length``: how many tokens the chat template puts after the user's message (the
  "post-instruction" or end-of-instruction tokens: ``[/INST]`` for Llama-2,
  ``<|im_end|>\\n<|im_start|>assistant\\n`` for ChatML). Refusal-direction code reads activations
  at these positions (docs/methods.md, Refusal direction; RD is ``andyrdt/refusal_direction``,
  ``RD : pipeline/model_utils/*``: one hard-coded ``eoi`` string per model family); we compute
  it from the template so any model works.
- ``block_acts``: block inputs or outputs at given (negative) token positions, batched and
  left-padded, read with hooks so "the output of block l" is exactly what a steering hook on
  block l sees (``hidden_states[-1]`` of a transformers model is after the final norm).
- ``block_inputs``: block inputs from ``output_hidden_states`` (no hooks; Surgical's weights mode
  runs on backends without hooks).
- refusal score and KL divergence on last-position logits (``RD : pipeline/submodules/
  select_direction.py``: log-odds of the refusal tokens; KL of baseline against intervened).
- directional ablation, as hooks (``RD : pipeline/utils/hook_utils.py``: block-input pre-hook,
  attention output and MLP output of every layer) or as the equivalent weight
  orthogonalisation (``RD : pipeline/model_utils/llama2_model.py``: embedding, attention output
  and MLP down projections), restoring the weights (and weight tying) afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.activations import StopForward
from orbench_harness.scratch import writing
from orbench_harness.types import Prompt, Sample

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

Hook = tuple[str, Callable[..., Any]]
_SENTINEL = "Q"


def eoi_length(hf: HFModel) -> int:
    """Number of template tokens after the user's message in a rendered prompt.

    The template is rendered around a one-letter message; the tokens whose text starts at or
    after the message's end are the post-instruction tokens. Tokenising the tail on its own
    can merge differently from the tail in context, so the count is checked against the full
    encoding and falls back to character offsets when they disagree.
    """
    text = hf.render(Prompt.user(_SENTINEL))
    end = text.rfind(_SENTINEL) + len(_SENTINEL)
    full = hf.encode(text)
    tail = hf.encode(text[end:])
    if tail and full[-len(tail):] == tail:
        return len(tail)
    enc = hf.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    n = sum(1 for start, _ in enc["offset_mapping"] if start >= end)
    if n < 1:
        raise HarnessError("cannot locate the post-instruction tokens of this chat template")
    return n


def unit(v: torch.Tensor) -> torch.Tensor:
    """``v / |v|`` (float32)."""
    v = v.float()
    out: torch.Tensor = v / v.norm().clamp(min=1e-12)
    return out


def project_out(x: torch.Tensor, d: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """``x - coeff * (x . d) d`` along the last axis, for a unit vector ``d``."""
    d = d.to(x.device, x.dtype)
    out: torch.Tensor = x - coeff * (x @ d).unsqueeze(-1) * d
    return out


def _hs(output: Any) -> torch.Tensor:
    h: torch.Tensor = output[0] if isinstance(output, tuple) else output
    return h


def block_acts(
    hf: HFModel, rows: Sequence[list[int]], layers: Sequence[int], positions: Sequence[int], *,
    where: Literal["input", "output"] = "output", batch_size: int = 16,
) -> torch.Tensor:
    """Activations at blocks ``layers`` and left-padded positions ``positions`` (negative
    indices from the end), ``[n, len(layers), len(positions), d]`` in float32 on the CPU.
    The forward pass stops after the deepest requested block."""
    import torch

    stop = max(layers)
    got: dict[int, torch.Tensor] = {}

    def grab(layer: int, h: torch.Tensor) -> None:
        got[layer] = h[:, list(positions), :].detach().float().cpu()
        if layer == stop:
            raise StopForward

    def make(layer: int) -> Callable[..., None]:
        if where == "input":
            return lambda mod, args: grab(layer, args[0])
        return lambda mod, args, output: grab(layer, _hs(output))

    pairs = [(hf.layer_name(i), make(i)) for i in layers]

    def run(start: int, stop: int) -> torch.Tensor:
        got.clear()
        ids, mask = hf.left_pad(list(rows[start:stop]))
        hooks = hf.hooks(pre=pairs) if where == "input" else hf.hooks(forward=pairs)
        with torch.no_grad(), hooks, contextlib.suppress(StopForward):
            hf.forward(ids, mask, use_cache=False)
        return torch.stack([got[i] for i in layers], dim=1)

    return torch.cat([t for _, _, t in hf.batches([len(r) for r in rows], batch_size, run, "reading the states of")])


def block_inputs(hf: HFModel, rows: Sequence[list[int]], positions: Sequence[int],
                 batch_size: int = 16) -> torch.Tensor:
    """Inputs of every block (``hidden_states[l]``, l < n) at ``positions`` without hooks,
    ``[n, n_layers, len(positions), d]``."""
    import torch

    n = int(hf.model.config.num_hidden_layers)

    def run(start: int, stop: int) -> torch.Tensor:
        ids, mask = hf.left_pad(list(rows[start:stop]))
        with torch.no_grad():
            hs = hf.forward(ids, mask, use_cache=False, output_hidden_states=True).hidden_states
        return torch.stack([h[:, list(positions), :].float().cpu() for h in hs[:n]], dim=1)

    return torch.cat([t for _, _, t in hf.batches([len(r) for r in rows], batch_size, run, "reading the states of")])


def last_logits(hf: HFModel, rows: Sequence[list[int]], batch_size: int = 32) -> torch.Tensor:
    """Next-token logits after each prompt, ``[n, vocab]`` float64 on the CPU."""
    import torch

    def run(start: int, stop: int) -> torch.Tensor:
        ids, mask = hf.left_pad(list(rows[start:stop]))
        with torch.no_grad():
            logits: torch.Tensor = hf.forward(ids, mask, use_cache=False, logits_to_keep=1).logits
        return logits[:, -1, :].double().cpu()

    return torch.cat([t for _, _, t in hf.batches([len(r) for r in rows], batch_size, run, "scoring")])


def refusal_token_ids(hf: HFModel, phrases: Sequence[str]) -> list[int]:
    """The first token of each refusal opener, deduplicated (RD hard-codes these per model:
    Llama-2 ``[306]`` = "I", Gemma "I", Qwen "I"/"As"; we derive them from the tokenizer)."""
    ids: list[int] = []
    for phrase in phrases:
        toks = hf.encode(phrase)
        if toks and toks[0] not in ids:
            ids.append(toks[0])
    if not ids:
        raise HarnessError("no refusal tokens: every refusal phrase encodes to nothing")
    return ids


def refusal_scores(logits: torch.Tensor, refusal_ids: Sequence[int], eps: float = 1e-8) -> torch.Tensor:
    """Per row, log p(refusal token) - log p(any other token) of the next token."""
    import torch

    probs = torch.softmax(logits.double(), dim=-1)
    p = probs[:, list(refusal_ids)].sum(-1)
    return torch.log(p + eps) - torch.log(1 - p + eps)


def kl_divergence(base: torch.Tensor, new: torch.Tensor, eps: float = 1e-6) -> float:
    """Mean KL(base || new) of next-token distributions given as logits ``[n, vocab]``."""
    import torch

    p = torch.softmax(base.double(), dim=-1)
    q = torch.softmax(new.double(), dim=-1)
    return float((p * (torch.log(p + eps) - torch.log(q + eps))).sum(-1).mean())


def _child(hf: HFModel, layer: int, names: Sequence[str]) -> str:
    block = hf.layers[layer]
    for name in names:
        parts = name.split(".")
        mod: Any = block
        for part in parts:
            mod = getattr(mod, part, None)
            if mod is None:
                break
        if mod is not None:
            return f"{hf.layer_name(layer)}.{name}"
    raise HarnessError(f"block {layer} of {type(hf.model).__name__} has none of {', '.join(names)}")


ATTN = ("self_attn", "attn", "attention")
MLP = ("mlp", "feed_forward")
ATTN_OUT = ("self_attn.o_proj", "attention.o_proj")
MLP_OUT = ("mlp.down_proj", "feed_forward.down_proj")


def ablation_hooks(hf: HFModel, d: torch.Tensor, coeff: float = 1.0) -> tuple[list[Hook], list[Hook]]:
    """(forward, pre) hooks removing ``coeff`` times the ``d`` component everywhere: at every
    block's input, attention output and MLP output, all positions (generated ones included)."""
    def pre(mod: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if not args:
            raise HarnessError("a decoder block received its hidden states by keyword; cannot ablate")
        return (project_out(args[0], d, coeff), *args[1:])

    def post(mod: Any, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (project_out(output[0], d, coeff), *output[1:])
        return project_out(output, d, coeff)

    n = len(hf.layers)
    forward = [(_child(hf, i, names), post) for i in range(n) for names in (ATTN, MLP)]
    return forward, [(hf.layer_name(i), pre) for i in range(n)]


@contextlib.contextmanager
def orthogonalized(hf: HFModel, d: torch.Tensor, coeff: float = 1.0) -> Iterator[None]:
    """Weights that never write ``d`` into the residual stream: the embedding rows and every
    matrix writing to the stream (attention out, MLP down) lose ``coeff`` times their ``d``
    component. Tied input/output embeddings are untied for the duration (the unembedding must
    keep reading ``d``); everything, tying included, is restored on exit."""
    import torch

    model = hf.model
    emb = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is emb.weight
    mods = dict(model.named_modules())
    writers = [mods[_child(hf, i, names)] for i in range(len(hf.layers)) for names in (ATTN_OUT, MLP_OUT)]
    saved: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    original_head = head.weight if tied else None
    try:
        with torch.no_grad():
            if tied:
                head.weight = torch.nn.Parameter(emb.weight.detach().clone(), requires_grad=False)
            dd = d.to(emb.weight.device, emb.weight.dtype)
            saved.append((emb.weight, emb.weight.detach().clone()))
            emb.weight.copy_(project_out(emb.weight, dd, coeff))  # rows are d_model vectors
            for lin in writers:
                w = lin.weight  # [d_model, d_in]: the output lives along dim 0
                saved.append((w, w.detach().clone()))
                w.copy_(w - coeff * torch.outer(dd, dd @ w))
                if getattr(lin, "bias", None) is not None:
                    saved.append((lin.bias, lin.bias.detach().clone()))
                    lin.bias.copy_(project_out(lin.bias, dd, coeff))
        yield
    finally:
        with torch.no_grad():
            for param, value in saved:
                param.copy_(value)
            if tied and original_head is not None:
                head.weight = original_head


def split_pool(pool: Sequence[Sample], n_train: int, n_val: int,
               rng: random.Random) -> tuple[list[Sample], list[Sample]]:
    """A seeded train/val split; a pool smaller than ``n_train + n_val`` keeps the same ratio."""
    items = list(pool)
    rng.shuffle(items)
    if len(items) < n_train + n_val:
        n_val = max(1, round(len(items) * n_val / (n_train + n_val))) if len(items) > 1 else 0
        n_train = len(items) - n_val
    return items[:n_train], items[n_train : n_train + n_val]


def digest(*groups: Sequence[Sample]) -> str:
    """sha256 of the prompts of every group (order matters), for fingerprints."""
    blob = json.dumps([[s.prompt for s in g] for g in groups])
    return hashlib.sha256(blob.encode()).hexdigest()


def save_artifact(directory: Path, stem: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Tensors (safetensors) then meta (JSON), each written atomically; meta marks completion."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{stem}.safetensors.tmp"
    with writing(directory / f"{stem}.safetensors"):
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, directory / f"{stem}.safetensors")
    tmp_meta = directory / f".{stem}.json.tmp"
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, directory / f"{stem}.json")


def load_artifact(directory: Path, stem: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """A finished artifact or None."""
    from safetensors.torch import load_file

    tensors, meta = directory / f"{stem}.safetensors", directory / f"{stem}.json"
    if not (tensors.is_file() and meta.is_file()):
        return None
    return load_file(str(tensors)), json.loads(meta.read_text())
