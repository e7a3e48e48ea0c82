"""A model loaded by the ``hf`` backend (``hf.HFBackend.load``): generation in batches,
log-probabilities, hidden states and forward hooks, which is everything methods need from the
weights. Kept apart from the loader so each stays a module one can read whole.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from orbench_harness.backends._autobatch import auto_batch_size
from orbench_harness.backends._batching import R, in_batches
from orbench_harness.backends.chat import render, stop_ids
from orbench_harness.errors import HarnessError
from orbench_harness.protocols import OnBatch
from orbench_harness.types import Capability, Completion, GenParams, ModelSpec, Prompt

if TYPE_CHECKING:
    import torch
    from torch import nn

HookFn = Callable[..., Any]
CAPABILITIES = frozenset({Capability.WEIGHTS, Capability.HOOKS, Capability.LOGITS, Capability.TRAINING})


class HFModel:
    """A loaded transformers model: generation, log-probs, hidden states and hooks."""

    capabilities = CAPABILITIES

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, device: str) -> None:
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._eos_ids = _eos_ids(model, tokenizer)

    # -- rendering -----------------------------------------------------------------------
    @property
    def max_length(self) -> int:
        """Context length from the config (falls back to the tokenizer's)."""
        cfg = self.model.config
        n = getattr(cfg, "max_position_embeddings", None) or self.tokenizer.model_max_length
        return int(min(n, 1_000_000))

    def render(self, prompt: Prompt) -> str:
        """The chat template applied, ending with the assistant prefix (``_chat.render``)."""
        return render(self.tokenizer, prompt)

    def encode(self, text: str) -> list[int]:
        """Token ids without added special tokens (templates render their own)."""
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Rendered and tokenised prompt."""
        return self.encode(self.render(prompt))

    # -- generation ----------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Prompt],
        params: GenParams,
        *,
        batch_size: int = 8,
        on_batch: OnBatch | None = None,
    ) -> list[Completion]:
        """Batched generation, length-sorted, left-padded, stopping each row at EOS."""
        encoded = [self.encode_prompt(p) for p in prompts]
        return self.generate_ids(encoded, params, batch_size=batch_size, on_batch=on_batch)

    def generate_ids(
        self,
        encoded: Sequence[list[int]],
        params: GenParams,
        *,
        batch_size: int = 8,
        on_batch: OnBatch | None = None,
    ) -> list[Completion]:
        """Generation from token ids (methods that build their own inputs use this).

        A batch that runs out of accelerator memory is retried in halves, and the smaller size
        is kept for the rest (prompts come longest first, so this happens at the start, not six
        hours in). Batch size is not part of a run's identity: greedy rows do not depend on it.
        """
        import torch

        budget = self.max_length - params.max_new_tokens
        if budget <= 0:
            raise HarnessError(f"--max-new-tokens {params.max_new_tokens} exceeds the context")
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        rows = [encoded[i][-budget:] for i in order]  # keep the end: the question and the template
        truncated = [len(encoded[i]) > budget for i in order]

        def run(start: int, stop: int) -> list[list[int]]:
            if not params.greedy:
                torch.manual_seed(params.seed + start)
            return self._generate_rows(rows[start:stop], params)

        results: list[Completion | None] = [None] * len(encoded)
        for start, stop, new in self.batches([len(r) for r in rows], batch_size, run,
                                             f"generating {params.max_new_tokens} tokens for",
                                             "lower --max-new-tokens, pass a smaller --dtype, or use a larger device",
                                             unit="prompt"):
            idx = order[start:stop]
            comps = [self._completion(r, n, t) for r, n, t in zip(rows[start:stop], new, truncated[start:stop],
                                                                  strict=True)]
            for i, c in zip(idx, comps, strict=True):
                results[i] = c
            if on_batch is not None:
                on_batch(idx, comps)
        return [c for c in results if c is not None]

    def auto_batch_size(self, prompts: Sequence[Prompt], max_new_tokens: int) -> int:
        """``--batch-size auto``: the generation batch size for these prompts, measured once
        per model, precision, device and thread count (``_autobatch.auto_batch_size``)."""
        return auto_batch_size(self, prompts, max_new_tokens)

    def batches(self, lengths: Sequence[int], batch_size: int, run: Callable[[int, int], R], doing: str,
                 fix: str = "pass a smaller --dtype or use a larger device",
                 unit: str = "sequence") -> Iterator[tuple[int, int, R]]:
        """``(start, stop, run(start, stop))`` over chunks of at most ``batch_size`` inputs,
        halving the chunk on out-of-memory (``_batching.in_batches`` on this model's device).
        For plugins' own batched passes, so they back off as generation does."""
        return in_batches(lengths, batch_size, run, device=self.device, doing=doing, fix=fix,
                          release=self._release_memory, unit=unit)

    def _generate_rows(self, rows: list[list[int]], params: GenParams) -> list[list[int]]:
        """New token ids for one left-padded batch."""
        import torch

        input_ids, mask = self.left_pad(rows)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=params.max_new_tokens,
                do_sample=not params.greedy,
                temperature=params.temperature if not params.greedy else None,
                top_p=params.top_p if not params.greedy else None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self._eos_ids,
            )
        new: list[list[int]] = out[:, input_ids.shape[1] :].tolist()
        return new

    def _release_memory(self) -> None:
        """Return the failed batch's cached blocks to the device before a smaller try."""
        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> Any:
        """A forward pass with position ids derived from the mask, so left-padded rows are
        numerically the same as unpadded ones (a plain forward would shift their positions)."""
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return self.model(input_ids=ids, attention_mask=mask, position_ids=pos, **kwargs)

    def left_pad(self, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids and attention mask on the model's device."""
        return self._pad(rows, left=True)

    def right_pad(self, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids and attention mask on the model's device, for forward passes that
        are differentiated. Left-padded, a pad position attends to nothing (every key before it
        is padding). On an H200 in bfloat16, ACTOR trained through such batches had a NaN loss
        from its first epoch on the 135M organism, and a finite one, as on the CPU, once the
        same batches were right-padded (same data and seed). The likely cause is a fused
        attention kernel's backward pass on fully masked rows, whose NaN then reaches every
        weight through the sum over positions; the tiny test model (head size 8) shows it in
        neither layout, so that is inferred, not seen. Right-padded, every position sees at
        least its row's first token. Generation keeps left padding, which it needs."""
        return self._pad(rows, left=False)

    def _pad(self, rows: Sequence[list[int]], *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            if r:
                span = slice(width - len(r), width) if left else slice(0, len(r))
                ids[j, span] = torch.tensor(r)
                mask[j, span] = 1
        return ids.to(self.device), mask.to(self.device)

    def _completion(self, prompt_ids: list[int], new_ids: list[int], truncated: bool) -> Completion:
        stop = next((k for k, t in enumerate(new_ids) if t in self._eos_ids), None)
        kept = new_ids if stop is None else new_ids[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(
            text=text,
            n_prompt_tokens=len(prompt_ids),
            n_new_tokens=len(kept),
            finish_reason="length" if stop is None else "stop",
            truncated_prompt=truncated,
        )

    # -- scoring and internals -----------------------------------------------------------
    def token_logprobs(self, sequences: Sequence[Sequence[int]], batch_size: int = 8) -> list[list[float]]:
        """log p(t_i | t_<i) for i >= 1, per sequence: ``score_batch`` over batches that halve
        on out-of-memory."""
        rows = [list(s) for s in sequences]
        return [lp for _, _, part in self.batches([len(r) for r in rows], batch_size,
                                                  lambda a, b: self.score_batch(rows[a:b]), "scoring")
                for lp in part]

    def score_batch(self, rows: Sequence[list[int]]) -> list[list[float]]:
        """``token_logprobs`` of one right-padded batch, with no back-off: for callers that set
        per-batch state in hooks (SCANS's steering mask) and so must batch themselves, through
        ``batches``. Each row is reduced on its own, in float32, as its token's logit minus the
        row's log-sum-exp: a float32 log-softmax over the whole batch would hold batch x length
        x vocabulary floats twice over (for eight 1,500-token MMLU prompts and Gemma's 256k
        vocabulary, about 25 GB beside the model)."""
        import torch

        ids, mask = self._pad(rows, left=False)
        out = []
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits
            for j, row in enumerate(rows):
                n = max(len(row) - 1, 0)  # a one-token row has nothing to score
                z = logits[j, :n].float()
                picked = z.gather(-1, ids[j, 1 : n + 1, None]).squeeze(-1) - torch.logsumexp(z, dim=-1)
                out.append(picked.tolist())
        return out

    @property
    def layers(self) -> nn.ModuleList:
        """The decoder blocks (the ModuleList whose length is the number of layers)."""
        from torch import nn

        n = self.model.config.num_hidden_layers
        for _, mod in self.model.named_modules():
            if isinstance(mod, nn.ModuleList) and len(mod) == n:
                return mod
        raise HarnessError(f"cannot find the decoder blocks of {type(self.model).__name__}")

    def hidden_states(self, prompts: Sequence[Prompt], batch_size: int = 8) -> torch.Tensor:
        """Residual stream at the last prompt token: [n_prompts, n_layers + 1, d_model], as
        transformers returns it: entry 0 is the embeddings and entry l + 1 block l's output,
        except the last entry, which is the final norm's output; a forward hook's change to a
        block's output shows from the next entry on (transformers 5). To read what a block
        hands on, hook the block (``hooks``, ``layer_name``)."""
        import torch

        rows = [self.encode_prompt(p) for p in prompts]

        def run(start: int, stop: int) -> torch.Tensor:
            ids, mask = self.left_pad(rows[start:stop])
            with torch.inference_mode():
                hs = self.forward(ids, mask, output_hidden_states=True).hidden_states
            return torch.stack([h[:, -1, :] for h in hs], dim=1).float().cpu()

        chunks = [h for _, _, h in self.batches([len(r) for r in rows], batch_size, run, "reading the states of")]
        return torch.cat(chunks, dim=0)

    @contextmanager
    def hooks(
        self, forward: Sequence[tuple[str, HookFn]] = (), pre: Sequence[tuple[str, HookFn]] = ()
    ) -> Iterator[None]:
        """Forward (and pre-forward) hooks by module name, always removed on exit.

        Every name must resolve: an unknown module raises before the body runs, after
        removing any hook already registered (registration happens inside the ``try``).
        """
        modules = dict(self.model.named_modules())
        handles = []
        try:
            for kind, pairs in (("forward", forward), ("pre", pre)):
                for name, fn in pairs:
                    if name not in modules:
                        raise HarnessError(f"hook point {name!r} not found in {type(self.model).__name__}")
                    mod = modules[name]
                    h = mod.register_forward_hook(fn) if kind == "forward" else mod.register_forward_pre_hook(fn)
                    handles.append(h)
            yield
        finally:
            for h in handles:
                h.remove()

    def layer_name(self, index: int) -> str:
        """Qualified module name of decoder block ``index`` (for ``hooks``)."""
        target = self.layers[index]
        for name, mod in self.model.named_modules():
            if mod is target:
                return str(name)
        raise HarnessError(f"layer {index} not found")


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Stop tokens: the generation config's and tokenizer's EOS and the template's turn end."""
    return stop_ids(tokenizer, getattr(model.generation_config, "eos_token_id", None))
