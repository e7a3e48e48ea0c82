"""``scans``: SCANS, safety-conscious activation steering (Cao et al., AAAI 2025).

As released (``zouyingcao/SCANS @ 9dc20d2f : SCANS_llama.py, utils/llama_wrapper.py,
utils/modeling_utils.py``; described in docs/methods.md, SCANS):

1. Steering vectors: for every block L, ``v_L = normalize(mean(harmful) - mean(harmless))`` of
   the block outputs at the last prompt token of 64 harmful and 64 harmless anchors.
2. Unsafe reference transition vector: each harmful anchor gets the assistant's first word
   " Sure" appended after the rendered prompt; ``u_L`` is the mean over anchors of
   h_L(last prompt token) - h_L(last token).
3. Classification: the query's transition vector (same suffix) has mean cosine with ``u_L``
   over the classification layers; >= ``threshold`` (0.75) means unsafe.
4. Steering: on the steering layers add ``+alpha * v_L`` (unsafe) or ``-alpha * v_L`` (safe) to
   the block output at every position from the last prompt token on, generated tokens
   included (``alpha`` 3.5). With left padding and a KV cache that is: in the prompt's forward
   pass only the last position, then every generated position (always position -1).

Defaults scaled to depth: the paper's layers 10-19 of Llama-2-7B's 32 become
``round(10/32*n) .. round(20/32*n)-1``; classification layers ``round(10/32*n) .. n-1`` (the
released 7B run uses 10..31). ``alpha`` stays 3.5 by default (``alpha_mode=absolute``): an
absolute length, set for Llama-2-7B's residual stream. Residual norms grow with width and
depth (SmolLM2-135M's are ~100-190 at layers 9-18, so 3.5 is a ~2.5% push), hence
``alpha_mode=relative``: ``alpha`` times the anchors' mean residual norm at each steering layer
(stored in the artifact as ``norm``). Likewise ``threshold`` stays 0.75, a value tuned on
Llama-2 (the release lowers it to 0.65-0.70 on some sets); ``calibrate=true`` uses instead the
threshold that best separates the harmful from the harmless anchors (training data only).
The artifact's meta records the anchors' cosines and the accuracy of the threshold used.

Capability benchmarks (``token_logprobs``): as the released ``ppl_eval.py`` does, each sequence
is classified and steered from the end of its instruction on, found as the last occurrence of
the template's post-instruction tokens; a sequence without them (raw WikiText) is classified
as a user message holding its text and steered at every position.

Deviations, and why:
- Anchors: AdvBench is an *evaluation* set in this harness, so harmful anchors come from
  ``harmful-train`` (HarmBench, TDC 2023, MaliciousInstruct, decontaminated against AdvBench)
  and harmless ones from TruthfulQA's train split (``data=paper``, the default with a data
  dir); offline, the demo sets' train splits (``data=demo``).
- The anchors are drawn with a seeded RNG (the release calls ``random.sample`` unseeded, so
  its anchors cannot be reproduced); the seed is part of the fingerprint.
- Positions: "last prompt token" is the last token of the rendered prompt (the end of the
  assistant prefix), for every template; the release uses ``[/INST]``'s last token for
  Llama-2 and the last ``<|im_end|>`` for ChatML models.
- The last block's reading is its output before the final norm (the release's
  ``hidden_states[-1]`` is after it); batched, greedy decoding without the release's
  repetition penalty 1.1 (the harness's generation settings apply to every method).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.methodargs import ADDED_LATER, fingerprint, parse_config
from orbench_harness.methodkit.activations import HFDelegate, require_hf
from orbench_harness.methodkit.directions import (
    Hook,
    block_acts,
    digest,
    eoi_length,
    load_artifact,
    save_artifact,
    unit,
)
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, OnBatch, Policy
from orbench_harness.types import Capability, Completion, GenParams, Prompt, Sample

if TYPE_CHECKING:
    import torch

    from orbench_harness.backends.hf import HFModel

VERSION = 1
STEM = "scans"


def parse_layers(spec: str, n: int, default: range) -> list[int]:
    """``auto`` -> ``default``; ``a-b`` (inclusive) or ``a,b,c``; negative indices count from n."""
    if spec == "auto":
        return list(default)
    out: list[int] = []
    for part in spec.split(","):
        lo, sep, hi = part.strip().partition("-")
        if sep and lo:
            out += range(int(lo) % n, int(hi) % n + 1)
        else:
            out.append(int(part) % n)
    return sorted(set(out))


def default_layers(n: int) -> tuple[range, range]:
    """(steering, classification) layers: the paper's 10-19 and 10-31 of 32, scaled to n."""
    first = round(10 / 32 * n)
    return range(first, max(first + 1, round(20 / 32 * n))), range(first, n)


@dataclass(frozen=True, slots=True)
class ScansConfig:
    """Every option of SCANS; all of it is part of the fingerprint."""

    alpha: float = 3.5
    """Steering strength: -alpha v (safe query) or +alpha v (unsafe) is added to the steered blocks'
    output. Paper: 3.5.
    """
    alpha_mode: Literal["absolute", "relative"] = "absolute"
    """absolute adds a vector of length alpha; relative scales alpha by the anchors' mean residual
    norm at each layer. Paper: absolute.
    """
    threshold: float = 0.75
    """Mean cosine to the reference transition at which a query counts as unsafe. Paper: 0.75."""
    calibrate: bool = False
    """Pick the threshold that best separates the training anchors instead of threshold."""
    layers: str = "auto"
    """Steered layers: auto (10/32 to 20/32 of the depth), a-b or a,b,c. Paper: 10-19 on Llama-2-7B.
    """
    cls_layers: str = "auto"
    """Layers that classify a query: auto (10/32 of the depth to the last), a-b or a,b,c. Paper: 10
    to the last on Llama-2-7B.
    """
    n_anchors: int = 64
    """Prompts in each anchor set (harmful and harmless) that give the steering vectors. Paper: 64.
    """
    suffix: str = " Sure"
    """Text appended after each harmful anchor to measure the unsafe transition. Paper: ' Sure'."""
    data: Literal["auto", "demo", "paper"] = "auto"
    """Training prompts: paper draws the paper's pools from the benchmarks' train splits, demo uses
    the shipped demo set, auto is paper when a data directory is given and demo otherwise.
    """
    batch_size: int = 16
    """Prompts per forward pass while the vectors are computed."""
    harmful_anchors: str = field(default="harmful-train", metadata=ADDED_LATER)
    """Benchmark whose train split gives the harmful anchors with data=paper (name@all: every row
    of a set the run does not score). Source: AdvBench; ACTOR paper's runs: HEx-PHI.
    """

    def __post_init__(self) -> None:
        for spec in (self.layers, self.cls_layers):
            try:
                parse_layers(spec, 1 << 20, range(0))
            except ValueError:
                raise ValueError(f"layers must be 'auto', 'a-b' or 'a,b,c' (got {spec!r})") from None
        if self.n_anchors < 1 or self.batch_size < 1:
            raise ValueError("n_anchors and batch_size must be >= 1")
        if not self.suffix:
            raise ValueError("suffix must not be empty (it defines the transition vector)")


@dataclass(frozen=True, slots=True)
class Anchors:
    """The harmful and harmless anchor prompts and where they came from."""

    harmful: tuple[Sample, ...]
    harmless: tuple[Sample, ...]
    sources: tuple[str, str]


def build_anchors(cfg: ScansConfig, env: MethodEnv) -> Anchors:
    """``n_anchors`` of each class from benchmark train splits, drawn with the run's seed."""
    rng = random.Random(env.seed)
    mode = cfg.data if cfg.data != "auto" else ("paper" if env.data_dir else "demo")
    names = ("demo-harmful", "demo-benign") if mode == "demo" else (cfg.harmful_anchors, "truthfulqa")
    pools = [env.train_samples(n) for n in names]
    picked = [p if cfg.n_anchors >= len(p) else rng.sample(p, cfg.n_anchors) for p in pools]
    return Anchors(tuple(picked[0]), tuple(picked[1]), names)


def accuracy(harmful: Sequence[float], harmless: Sequence[float], threshold: float) -> float:
    """Share of anchors on the right side of ``threshold`` (harmful >=, harmless <)."""
    right = sum(c >= threshold for c in harmful) + sum(c < threshold for c in harmless)
    return round(right / max(1, len(harmful) + len(harmless)), 4)


def calibrate(harmful: Sequence[float], harmless: Sequence[float]) -> float:
    """The threshold (a midpoint between sorted anchor cosines) with the best anchor accuracy;
    the lowest such midpoint on ties."""
    values = sorted({*harmful, *harmless})
    cuts = [(a + b) / 2 for a, b in itertools.pairwise(values)] or values
    return max(cuts, key=lambda t: (accuracy(harmful, harmless, t), -t))


class _Mask:
    """Which positions the steering hooks add to: None = the last position of each call."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None


def steering_hooks(hf: HFModel, v: torch.Tensor, coefs: Mapping[int, float], where: _Mask) -> list[Hook]:
    """Forward hooks adding ``coefs[L] * v[L]`` to block L's output at the chosen positions."""
    def make(layer: int) -> Any:
        vec = coefs[layer] * v[layer].to(hf.device)

        def hook(mod: Any, args: Any, output: Any) -> Any:
            h = output[0] if isinstance(output, tuple) else output
            add = vec.to(h.dtype)
            if where.mask is None:
                h = h.clone()
                h[:, -1, :] += add
            else:
                h = h + where.mask[:, : h.shape[1], None].to(h.dtype) * add
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook

    return [(hf.layer_name(i), make(i)) for i in coefs]


class Scans:
    """SCANS as a harness method (needs forward hooks: the hf backend)."""

    name = "scans"
    requires = frozenset({Capability.HOOKS})

    def __init__(self, cfg: ScansConfig, anchors: Anchors, seed: int = 0) -> None:
        self.cfg = cfg
        self.anchors = anchors
        self.seed = seed

    def fingerprint(self) -> str:
        """Config + anchor digest + seed + version."""
        return fingerprint(self.name, VERSION, self.cfg, seed=self.seed,
                           data=digest(self.anchors.harmful, self.anchors.harmless))

    def layer_sets(self, n: int) -> tuple[list[int], list[int]]:
        """(steering, classification) layers for an ``n``-block model."""
        steer, cls = default_layers(n)
        return parse_layers(self.cfg.layers, n, steer), parse_layers(self.cfg.cls_layers, n, cls)

    def prepare(self, model: ModelHandle, ctx: MethodContext) -> dict[str, Any]:
        """Steering vectors ``v``, reference transition vectors ``u`` and the anchors' mean
        residual norm ``norm`` for every block (cached under ``ctx.artifact_dir``)."""
        import torch

        hf = require_hf(model, self.name)
        cached = load_artifact(ctx.artifact_dir, STEM)
        if cached is not None:
            ctx.log(f"scans: vectors found in {ctx.artifact_dir}")
            return {**cached[0], "meta": cached[1]}
        n = int(hf.model.config.num_hidden_layers)
        bs = self.cfg.batch_size
        harm = [hf.encode_prompt(s.as_prompt()) for s in self.anchors.harmful]
        safe = [hf.encode_prompt(s.as_prompt()) for s in self.anchors.harmless]
        a_harm = block_acts(hf, harm, range(n), [-1], batch_size=bs)[:, :, 0]
        a_safe = block_acts(hf, safe, range(n), [-1], batch_size=bs)[:, :, 0]
        diff = a_harm.mean(0) - a_safe.mean(0)
        art: dict[str, Any] = {
            "v": torch.stack([unit(diff[i]) for i in range(n)]),
            "u": self.transitions(hf, harm, range(n)).mean(0),
            "norm": torch.cat([a_harm, a_safe]).norm(dim=-1).mean(0),
        }
        steer, cls = self.layer_sets(n)
        cos_h, cos_s = self.cosines(hf, harm, art["u"], cls), self.cosines(hf, safe, art["u"], cls)
        best = calibrate(cos_h.tolist(), cos_s.tolist())
        threshold = best if self.cfg.calibrate else self.cfg.threshold
        meta: dict[str, Any] = {
            "layers": steer, "cls_layers": cls, "n_layers": n, "anchor_sources": list(self.anchors.sources),
            "n_anchors": [len(harm), len(safe)], "diff_norm": [round(float(x), 4) for x in diff.norm(dim=-1)],
            "anchor_cosine_harmful": [round(float(c), 4) for c in cos_h],
            "anchor_cosine_harmless": [round(float(c), 4) for c in cos_s],
            "calibrated_threshold": best, "threshold": threshold,
            "anchor_accuracy": accuracy(cos_h.tolist(), cos_s.tolist(), threshold),
        }
        save_artifact(ctx.artifact_dir, STEM, art, meta)
        mean_norm = float(art["norm"][steer].mean())
        ctx.log(f"scans: steering layers {steer[0]}-{steer[-1]} (mean residual norm {mean_norm:.1f}); "
                f"threshold {threshold:.3f} classifies {meta['anchor_accuracy']:.0%} of the anchors correctly")
        return {**art, "meta": meta}

    def transitions(self, hf: HFModel, rows: Sequence[list[int]], layers: Sequence[int]) -> torch.Tensor:
        """h(last prompt token) - h(last suffix token) per row and layer, ``[n, len(layers), d]``."""
        suffix = hf.encode(self.cfg.suffix)
        acts = block_acts(hf, [r + suffix for r in rows], layers, [-(len(suffix) + 1), -1],
                          batch_size=self.cfg.batch_size)
        return acts[:, :, 0] - acts[:, :, 1]

    def cosines(self, hf: HFModel, rows: Sequence[list[int]], u: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """Mean cosine, over ``layers``, of each row's transition vector with ``u``."""
        import torch

        t = self.transitions(hf, rows, layers)
        cos = torch.nn.functional.cosine_similarity(t, u[list(layers)].unsqueeze(0), dim=-1)
        return torch.nan_to_num(cos).mean(dim=1)

    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """A policy that classifies each query and steers it; no hook outlives a call."""
        yield ScansPolicy(self, require_hf(model, self.name), artifact)


class ScansPolicy(HFDelegate):
    """Generation and scoring with per-query classification and steering."""

    def __init__(self, method: Scans, hf: HFModel, artifact: Mapping[str, Any]) -> None:
        self.method = method
        self.hf = hf
        self.v: torch.Tensor = artifact["v"]
        self.u: torch.Tensor = artifact["u"]
        self.steer, self.cls = method.layer_sets(int(hf.model.config.num_hidden_layers))
        cfg = method.cfg
        self.threshold = float(artifact["meta"]["calibrated_threshold"]) if cfg.calibrate else cfg.threshold
        self.scale = {i: cfg.alpha * (float(artifact["norm"][i]) if cfg.alpha_mode == "relative" else 1.0)
                      for i in self.steer}
        self.labels: list[bool] = []  # unsafe flags of the last generate call (for logs and tests)
        self._cls_cache: dict[tuple[int, ...], bool] = {}
        self._eoi: list[int] | None = None

    def classify(self, rows: Sequence[list[int]]) -> list[bool]:
        """Unsafe flags (mean transition cosine >= threshold), memoised per prompt."""
        todo = list(dict.fromkeys(tuple(r) for r in rows if tuple(r) not in self._cls_cache))
        if todo:
            cos = self.method.cosines(self.hf, [list(r) for r in todo], self.u, self.cls)
            for r, c in zip(todo, cos.tolist(), strict=True):
                self._cls_cache[r] = c >= self.threshold
        return [self._cls_cache[tuple(r)] for r in rows]

    def coefs(self, unsafe: bool) -> dict[int, float]:
        """Per steering layer, the signed length of the added vector."""
        return {i: a if unsafe else -a for i, a in self.scale.items()}

    def generate(self, prompts: Sequence[Prompt], params: GenParams, *, batch_size: int = 8,
                 on_batch: OnBatch | None = None) -> list[Completion]:
        """Classify every prompt, then generate each class with its steering sign."""
        rows = [self.hf.encode_prompt(p) for p in prompts]
        self.labels = self.classify(rows)
        results: list[Completion | None] = [None] * len(rows)
        for unsafe in (False, True):
            idx = [i for i, f in enumerate(self.labels) if f == unsafe]
            if not idx:
                continue

            def relay(sub: list[int], comps: list[Completion], idx: list[int] = idx) -> None:
                if on_batch is not None:
                    on_batch([idx[j] for j in sub], comps)

            with self.hf.hooks(forward=steering_hooks(self.hf, self.v, self.coefs(unsafe), _Mask())):
                comps = self.hf.generate_ids([rows[i] for i in idx], params, batch_size=batch_size, on_batch=relay)
            for i, c in zip(idx, comps, strict=True):
                results[i] = c
        return [c for c in results if c is not None]

    def instruction_end(self, seq: Sequence[int]) -> int:
        """Index of the last prompt token (end of the last post-instruction block), or -1."""
        if self._eoi is None:
            k = eoi_length(self.hf)
            self._eoi = self.hf.encode_prompt(Prompt.user("Q"))[-k:]
        m = len(self._eoi)
        for i in range(len(seq) - m, -1, -1):
            if list(seq[i : i + m]) == self._eoi:
                return i + m - 1
        return -1

    def token_logprobs(self, sequences: Sequence[Sequence[int]], batch_size: int = 8) -> list[list[float]]:
        """log p(t_i | t_<i) with each sequence classified and steered from its instruction end."""
        import torch

        ends = [self.instruction_end(s) for s in sequences]
        queries = [list(s[: e + 1]) if e >= 0 else self.hf.encode_prompt(Prompt.user(self.hf.tokenizer.decode(s)))
                   for s, e in zip(sequences, ends, strict=True)]
        flags = self.classify(queries)
        out: list[list[float] | None] = [None] * len(sequences)
        for unsafe in (False, True):
            idx = [i for i, f in enumerate(flags) if f == unsafe]
            where = _Mask()

            def run(start: int, stop: int, idx: list[int] = idx, where: _Mask = where) -> list[list[float]]:
                chunk = idx[start:stop]  # the steering mask must match the batch exactly
                width = max(len(sequences[i]) for i in chunk)
                mask = torch.zeros((len(chunk), width), device=self.hf.device)
                for j, i in enumerate(chunk):
                    mask[j, max(0, ends[i]) :] = 1.0
                where.mask = mask
                return self.hf.score_batch([list(sequences[i]) for i in chunk])

            with self.hf.hooks(forward=steering_hooks(self.hf, self.v, self.coefs(unsafe), where)):
                for start, stop, lps in self.hf.batches([len(sequences[i]) for i in idx], batch_size, run, "scoring"):
                    for i, lp in zip(idx[start:stop], lps, strict=True):
                        out[i] = lp
        return [x if x is not None else [] for x in out]


def create(args: Mapping[str, str], env: MethodEnv) -> Scans:
    """Factory: options from ``--method-arg``; anchors from train splits, seeded."""
    cfg = parse_config(ScansConfig, args, method="scans")
    return Scans(cfg, build_anchors(cfg, env), env.seed)


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``scans``."""
    register("scans", create, summary="SCANS: refusal-direction steering gated by a hidden-state safety check",
             requires=["hooks"])
