"""``self-cd``: Self-Contrastive Decoding (Shi et al., ACL 2024, "Navigating the OverKill").

Source: ``InvokerStark/OverKill @ 9551a7ff7b2cb18d178e64fb5cc95e4684311b3b : SelfCD.py``, as
described in docs/methods.md, Self-CD. Each prompt is rendered twice: *with* a system
prompt that stresses safety and *without* it. At every step the next-token logits of both are
combined as ``z = z_with - ratio * (z_with - z_without)`` (ratio 2.5), i.e. the model moves
away from what the safety emphasis adds, which the paper reads as the model's over-attention to
harmful-looking words; greedy decoding, stopping at EOS. No training.

Where this implementation departs from the released file, and why:
- Both renderings come from the model's chat template (the safety text as a system message,
  merged in front of an existing one), not from hand-written ``[INST]`` strings; the released
  file's unfilled ``{system}`` placeholder, missing ``args`` argument and ``AutoModel`` (no LM
  head) loading are defects we do not reproduce. A template that rejects or drops system
  messages (Gemma) gets the text in front of the first user message (``placement=auto``).
- The safety text is our own wording in the spirit of Llama-2's default system prompt
  (``system_prompt=...`` replaces it).
- Batched: both streams are left-padded batches with their own KV cache, advanced one token
  per step (the released code runs batch size 1 and recomputes the whole sequence each step).
  The combined logits are the same up to float rounding; the tests check it against two full
  uncached forward passes.
- ``temperature > 0`` samples from the combined logits (temperature, top-p); the paper is
  greedy only, and so is the harness default.
- Scoring (MMLU, perplexity): ``token_logprobs`` applies the same combination wherever the two
  streams' contexts align, i.e. for a sequence that begins with the chat template's opening
  (everything the template renders before the user's text) the with-stream is that opening
  rendered with the safety text followed by the same tokens, and every token of the user's
  text and the answer is scored by log-softmax(z). Tokens of the template opening itself, and
  any sequence that is not a chat rendering (WikiText-2's raw text), are scored by the plain
  model: the method defines no "with safety prompt" version of raw text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from orbench_harness.backends.chat import supports_system
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodargs import fingerprint, parse_config
from orbench_harness.methodkit.activations import HFDelegate, require_hf
from orbench_harness.methodkit.decoding import (
    CachedStream,
    choose,
    eos_tensor,
    generate_batched,
    make_generator,
    take_step,
)
from orbench_harness.methodkit.safety_text import SAFETY_PROMPT, with_safety
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, OnBatch, Policy
from orbench_harness.types import Capability, Completion, GenParams, Prompt

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

VERSION = 1


# Two user texts that share no first character: the common prefix of their renderings is the
# template's opening (everything before the user's text).
_PROBES = ("Alpha probe question?", "Zulu other text.")


@dataclass(frozen=True, slots=True)
class SelfCDConfig:
    """Self-CD's options; all of them are part of the fingerprint."""

    ratio: float = 2.5
    """Contrast strength: logits z_with - ratio (z_with - z_without). Paper: 2.5."""
    system_prompt: str = SAFETY_PROMPT
    """Safety-stressing text of the second rendering (our wording by default)."""
    placement: Literal["auto", "system", "user"] = "auto"
    """Where the safety text goes: system message, or in front of the first user message; auto uses
    a system message where the chat template has one.
    """

    def __post_init__(self) -> None:
        if not self.system_prompt.strip():
            raise ValueError("system_prompt must not be empty")


def combine(z_with: torch.Tensor, z_without: torch.Tensor, ratio: float) -> torch.Tensor:
    """Self-CD's contrast: ``z_with - ratio * (z_with - z_without)``."""
    return z_with - ratio * (z_with - z_without)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> list[int]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return list(a[:n])


class SelfCDPolicy(HFDelegate):
    """The model decoding contrastively; the scoring methods apply the same contrast."""

    def __init__(self, hf: HFModel, cfg: SelfCDConfig) -> None:
        self.hf = hf
        self.cfg = cfg
        self._where: Literal["system", "user"] | None = None
        self._heads: tuple[list[int], list[int]] | None = None

    # -- rendering -----------------------------------------------------------------------
    def placement(self) -> Literal["system", "user"]:
        """Where the safety text goes: the system role if the template renders it, else the user turn."""
        if self._where is None:
            if self.cfg.placement != "auto":
                self._where = self.cfg.placement
            else:
                self._where = "system" if supports_system(self.hf.tokenizer) else "user"
        return self._where

    def render_with(self, prompt: Prompt) -> str:
        """The "with safety emphasis" rendering."""
        return self.hf.render(with_safety(prompt, self.cfg.system_prompt, self.placement()))

    # -- generation ----------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[Prompt], params: GenParams, *, batch_size: int = 8, on_batch: OnBatch | None = None
    ) -> list[Completion]:
        """Contrastive decoding of every prompt (completions report the without-prompt length)."""
        items = [(self.hf.encode_prompt(p), self.hf.encode(self.render_with(p))) for p in prompts]

        def decode(batch: list[tuple[list[int], ...]], p: GenParams, start: int) -> list[list[int]]:
            return contrast_ids(self.hf, [b[1] for b in batch], [b[0] for b in batch], self.cfg.ratio, p, start)

        return generate_batched(self.hf, items, params, decode, batch_size=batch_size, on_batch=on_batch)

    # -- scoring -------------------------------------------------------------------------
    def heads(self) -> tuple[list[int], list[int]]:
        """Token ids of the template's opening without and with the safety text ([] if the
        template does not render the two as <opening> + the same tokens)."""
        if self._heads is None:
            wo = [self.hf.encode_prompt(Prompt.user(t)) for t in _PROBES]
            w = [self.hf.encode(self.render_with(Prompt.user(t))) for t in _PROBES]
            head_wo, head_w = _common_prefix(*wo), _common_prefix(*w)
            aligned = all(a[len(head_wo):] == b[len(head_w):] for a, b in zip(wo, w, strict=True))
            self._heads = (head_wo, head_w) if aligned and head_wo else ([], [])
        return self._heads

    def token_logprobs(self, sequences: Sequence[Sequence[int]], batch_size: int = 8) -> list[list[float]]:
        """log p(t_i | t_<i) under the contrast where the streams align, the plain model elsewhere."""
        import torch

        head_wo, head_w = self.heads()
        n0 = len(head_wo)

        def is_chat(s: Sequence[int]) -> bool:
            return bool(n0) and len(s) > n0 and list(s[:n0]) == head_wo and \
                len(s) - n0 + len(head_w) <= self.max_length

        out: list[list[float] | None] = [None] * len(sequences)
        plain = [i for i, s in enumerate(sequences) if not is_chat(s)]
        for i, lp in zip(plain, self.hf.token_logprobs([sequences[i] for i in plain], batch_size), strict=True):
            out[i] = lp
        chat = [i for i, s in enumerate(sequences) if is_chat(s)]
        shift = len(head_w) - n0

        def run(a: int, b: int) -> list[list[float]]:
            rows_wo = [list(sequences[i]) for i in chat[a:b]]
            z_wo = _full_logits(self.hf, rows_wo)
            z_w = _full_logits(self.hf, [head_w + r[n0:] for r in rows_wo])
            scored = []
            for j, row in enumerate(rows_wo):
                n = len(row)
                target = torch.tensor(row[1:], device=z_wo.device)
                z = z_wo[j, : n - 1].clone()  # position p predicts token p + 1
                aligned = slice(n0 - 1, n - 1)
                z[aligned] = combine(z_w[j, n0 - 1 + shift : n - 1 + shift], z_wo[j, aligned], self.cfg.ratio)
                scored.append(torch.log_softmax(z, dim=-1).gather(-1, target[:, None]).squeeze(-1).tolist())
            return scored

        # each chunk runs two streams, so the back-off sees the longer (with-safety) row's length
        lengths = [len(sequences[i]) + max(0, shift) for i in chat]
        for start, _, part in self.hf.batches(lengths, batch_size, run, "scoring the two streams of"):
            for i, lp in zip(chat[start:], part, strict=False):
                out[i] = lp
        return [lp for lp in out if lp is not None]


def _full_logits(hf: HFModel, rows: Sequence[list[int]]) -> torch.Tensor:
    """Logits at every position of right-padded rows (no cache), float32."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), hf.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = torch.tensor(r)
        mask[j, : len(r)] = 1
    with torch.inference_mode():
        logits: torch.Tensor = hf.model(input_ids=ids.to(hf.device), attention_mask=mask.to(hf.device)).logits
    return logits.float()


def contrast_ids(
    hf: HFModel,
    rows_with: Sequence[list[int]],
    rows_without: Sequence[list[int]],
    ratio: float,
    params: GenParams,
    start: int = 0,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> list[list[int]]:
    """New token ids per row (EOS included when reached); ``on_step(step, z)`` sees the combined
    logits each token is chosen from."""
    import torch

    w, wo = CachedStream(hf, rows_with), CachedStream(hf, rows_without)
    eos = eos_tensor(hf)
    gen = make_generator(hf, params, start)
    done = torch.zeros(len(rows_with), dtype=torch.bool, device=w.logits.device)
    out: list[list[int]] = [[] for _ in rows_with]
    for step in range(params.max_new_tokens):
        z = combine(w.logits, wo.logits, ratio)
        if on_step is not None:
            on_step(step, z)
        tok = choose(z, params, gen)
        tok, done = take_step(tok, done, out, eos, hf.tokenizer.pad_token_id)
        if bool(done.all()) or step == params.max_new_tokens - 1:
            break
        w.push(tok)
        wo.push(tok)
    return out


class SelfCD:
    """Self-CD as a harness method: logits only, nothing to prepare."""

    name = "self-cd"
    requires = frozenset({Capability.LOGITS})

    def __init__(self, cfg: SelfCDConfig) -> None:
        self.cfg = cfg

    def fingerprint(self) -> str:
        """Config (ratio, safety text, placement) + implementation version."""
        return fingerprint(self.name, VERSION, self.cfg)

    def prepare(self, model: ModelHandle, ctx: MethodContext) -> None:
        """Nothing to train."""
        require_hf(model, self.name)

    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """A contrastive-decoding policy over the unchanged model."""
        yield SelfCDPolicy(require_hf(model, self.name), self.cfg)


def create(args: Mapping[str, str], env: MethodEnv | None = None) -> SelfCD:
    """Factory: ``--method-arg ratio=2.5 system_prompt='...' placement=auto``."""
    return SelfCD(parse_config(SelfCDConfig, args, method="self-cd"))


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``self-cd``."""
    register("self-cd", create, summary="Self-CD: contrast logits with vs without a safety system prompt",
             aliases=("selfcd",), requires=["logits"])
