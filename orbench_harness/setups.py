"""Named setups: a paper's method options, per model, on top of the harness's own defaults.

``harness run --setup actor-paper`` configures ACTOR and its six baselines as the ACTOR paper
(Dabas et al., ICML 2025, arXiv 2507.04250) ran them on its three models; the harness's
defaults, chosen for CPU-sized runs and measured on the organism, are left as they are, and
``docs/paper-setup.md`` sets the two side by side with a source for every paper value.

What a setup cannot ship (GPT-4o's reference answers, Meta's system-prompt text, the official
SafeDecoding adapter) is a *need*: the user passes it with ``--setup-input KEY=VALUE``; a need
that is absent is reported as one line naming it, and the run stops before loading weights.
It is never replaced by something else. Where the harness has no mechanism for a paper
setting (DRO's LlamaGuard labels, for one), the setup says so in ``differs``, which the dry
run prints and run.json records.

Setups are data: option names and values as ``--method-arg`` strings, so the core imports no
plugin; a method that rejects one fails the way a user's ``--method-arg`` would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orbench_harness.errors import HarnessError


@dataclass(frozen=True, slots=True)
class Need:
    """An input the setup cannot ship; ``what`` is the one line printed when it is absent."""

    key: str
    kind: Literal["file", "dir"]
    what: str


@dataclass(frozen=True, slots=True)
class Fill:
    """A method option whose value comes from a need (``transform`` maps the input to it)."""

    option: str
    need: str
    transform: Callable[[str], str] = str


@dataclass(frozen=True, slots=True)
class MethodSetup:
    """One method's options under a setup, the options filled from needs, and the ways it still
    differs from the paper (said aloud, never hidden)."""

    args: Mapping[str, str] = field(default_factory=dict)
    fills: tuple[Fill, ...] = ()
    differs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Setup:
    """A named setup: the models it covers and, per model, every method's settings."""

    name: str
    summary: str
    needs: Mapping[str, Need]
    per_model: Mapping[str, Mapping[str, MethodSetup]]


@dataclass(frozen=True, slots=True)
class ResolvedSetup:
    """A setup applied to one model and a list of methods, with the user's inputs."""

    name: str
    model: str
    method_args: Mapping[str, Mapping[str, str]]
    missing: tuple[str, ...]
    differs: Mapping[str, tuple[str, ...]]
    inputs: Mapping[str, str]
    unfilled: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # method -> option -> need

    def args_for(self, method: str, user_args: Mapping[str, str]) -> dict[str, str]:
        """The setup's options for ``method`` with the user's ``--method-arg`` values on top."""
        return {**self.method_args.get(method, {}), **user_args}

    def record(self) -> dict[str, Any]:
        """What run.json keeps of the setup."""
        return {"name": self.name, "model": self.model, "inputs": dict(self.inputs),
                "differs": {m: list(d) for m, d in self.differs.items() if d}}


def first_sentences(text: str, n: int = 3) -> str:
    """The first ``n`` sentences of ``text`` (split after . ! or ? followed by white space):
    Self-CD's reference puts the first three of Llama-2's default system prompt in the turn."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p.strip()]
    if len(parts) < n:
        raise HarnessError(f"the system-prompt file holds {len(parts)} sentence(s); {n} are needed")
    return " ".join(parts[:n])


def _read(path: str) -> str:
    return Path(path).expanduser().read_text(encoding="utf-8").strip()


def _first_three(path: str) -> str:
    return first_sentences(_read(path), 3)


def _resolved_path(path: str) -> str:
    return str(Path(path).expanduser().resolve())


# -- the ACTOR paper ------------------------------------------------------------------------

# UltraChat's labelled evaluation file has exactly seven classes of 30 questions (the others
# hold 80, 80 and 15): the paper's "30 from each of 7 categories" is these seven.
ULTRACHAT_SEVEN = ("Commonsense-Easy|Commonsense-Moderate|World Knowledge-Easy|World Knowledge-Difficult|"
                   "Professional Knowledge-Physics|Ability Math|Ability Reasoning")
# The paper's target layers in its own (hidden-state) numbering, as 0-based blocks: 13, 17, 14
# -> 12, 16, 13 (the actor plugin's MODEL_DEFAULTS hold the same; a test keeps them equal).
_ACTOR = {"llama-2-7b-chat": ("0.0015", "12"), "gemma-7b-it": ("0.003", "16"), "llama-2-13b-chat": ("0.0004", "13")}
_POOLS = {"data": "paper", "n_harmful": "330", "harmful_pool": "hexphi@all", "n_benign": "210",
          "benign_classes": ULTRACHAT_SEVEN, "n_pseudo": "100", "pseudo_sources": "xstest,scope,orbench-hard,phtest"}

ACTOR_PAPER_NEEDS: dict[str, Need] = {
    "sft-references": Need("sft-references", "file",
                           "sft: GPT-4o's reference answers to the training prompts, a reference-answer file "
                           "(write one with --method sft --method-arg reference=openai reference_model=gpt-4o "
                           "save_references=PATH)"),
    "llama2-system-prompt": Need("llama2-system-prompt", "file",
                                 "self-cd, dro: a text file holding Llama-2's default system prompt (Meta's "
                                 "text, which the harness does not ship)"),
    "safedecoding-expert": Need("safedecoding-expert", "dir",
                                "safe-decoding: the official Llama-2 expert adapter directory "
                                "(uw-nsl/SafeDecoding: lora_modules/llama2)"),
}


def _actor_paper_methods(model: str) -> dict[str, MethodSetup]:
    alpha, layer = _ACTOR[model]
    llama = model.startswith("llama-2")
    sd_fills = (Fill("expert_adapter", "safedecoding-expert", _resolved_path),) if model == "llama-2-7b-chat" else ()
    sd_differs = () if sd_fills else (
        "no official expert for this model: the expert is built from its own refusals under the harness's "
        "refusal prompt, filtered by XSTest's prefixes instead of GPT-4",)
    scans_layers = {"llama-2-7b-chat": {"layers": "10-19", "cls_layers": "10-31"},
                    "llama-2-13b-chat": {"layers": "10-19", "cls_layers": "10-19"}}.get(model, {})
    return {
        "none": MethodSetup(),
        "actor": MethodSetup(
            {"alpha": alpha, "layer": layer, "lr": "1e-5", "epochs": "3", "n_anchors": "64", "sign": "magnitude",
             "projection": "raw", "positions": "last", **_POOLS},
            differs=("batch size 8 and AdamW without weight decay: the paper gives neither",)),
        "sft": MethodSetup(
            {"reference": "file", "lr": "1e-3", "epochs": "3", "drop_refusals": "false", **_POOLS},
            fills=(Fill("reference_file", "sft-references", _resolved_path),),
            differs=("LoRA rank 16 on every linear layer: the paper says lr 1e-3 and 3 epochs only",)),
        "safe-decoding": MethodSetup({"alpha": "3", "first_m": "2", "num_common_tokens": "5"},
                                     fills=sd_fills, differs=sd_differs),
        "self-cd": MethodSetup(
            {"ratio": "2.5", "placement": "user"},
            fills=(Fill("system_prompt", "llama2-system-prompt", _first_three),),
            differs=("the safety text and the question are separated by a blank line (the release: a space)",
                     *(() if llama else ("the Llama-2 text is used on Gemma too: the reference has no Gemma "
                                         "prompt",)))),
        "dro": MethodSetup(
            {"n_harmful": "100", "n_harmless": "100", "n_samples": "25", "label_tokens": "300", "epochs": "40",
             "batch_size": "50", "lr": "1e-3", "pca_dim": "4"},
            fills=(Fill("system_prompt", "llama2-system-prompt", _read),),
            differs=("compliance labels from the keywords judge alone: the release adds LlamaGuard, a length rule "
                     "and 200 tokens for harmless queries, which the harness does not implement",
                     "harmful and harmless queries are not wording-matched as the release's are")),
        "scans": MethodSetup(
            {"harmful_anchors": "hexphi@all", "n_anchors": "64", "alpha": "3.5", "threshold": "0.75",
             "data": "paper", **scans_layers},
            differs=("greedy decoding without the release's repetition penalty 1.1",)),
        "surgical": MethodSetup(
            {"ortho_lambda": "1.0", "ablation_coeff": "1.0", "kl_threshold": "0.2", "prune_layers": "0.2",
             "n_train": "128", "n_val": "32", "seed": "1", **({"prompt_suffix": " "} if llama else {})},
            differs=("pools are the benchmarks' train splits (OR-Bench-Hard's holds 25, the release samples "
                     "128 + 32 from its own split of the 1,319)",)),
    }


SETUPS: dict[str, Setup] = {
    "actor-paper": Setup(
        "actor-paper",
        "ACTOR and the six baselines as the ACTOR paper ran them on its three models",
        ACTOR_PAPER_NEEDS,
        {model: _actor_paper_methods(model) for model in _ACTOR},
    ),
}


def resolve_setup(name: str, model: str, methods: Sequence[str], inputs: Mapping[str, str]) -> ResolvedSetup:
    """The setup's options for ``model`` and each of ``methods``; absent needs become one line
    each in ``missing`` (nothing is filled for them), unknown inputs are errors."""
    if name not in SETUPS:
        raise HarnessError(f"unknown setup {name!r} (setups: {', '.join(SETUPS)})")
    setup = SETUPS[name]
    if model not in setup.per_model:
        raise HarnessError(f"setup {name!r} covers the models {', '.join(setup.per_model)}, not {model!r}")
    unknown = sorted(set(inputs) - set(setup.needs))
    if unknown:
        raise HarnessError(f"setup {name!r} takes no input {', '.join(unknown)} (inputs: {', '.join(setup.needs)})")
    table = setup.per_model[model]
    args: dict[str, dict[str, str]] = {}
    missing: dict[str, str] = {}
    differs: dict[str, tuple[str, ...]] = {}
    unfilled: dict[str, dict[str, str]] = {}
    for method in methods:
        if method not in table:
            raise HarnessError(f"setup {name!r} has no settings for method {method!r} (it covers {', '.join(table)})")
        ms = table[method]
        args[method] = dict(ms.args)
        differs[method] = ms.differs
        for fill in ms.fills:
            need = setup.needs[fill.need]
            value = inputs.get(fill.need)
            if value is None:
                missing[need.key] = f"missing --setup-input {need.key}=PATH: {need.what}"
                unfilled.setdefault(method, {})[fill.option] = need.key
                continue
            args[method][fill.option] = _filled(need, value, fill)
    return ResolvedSetup(name, model, args, tuple(missing.values()), differs, dict(inputs), unfilled)


def _filled(need: Need, value: str, fill: Fill) -> str:
    path = Path(value).expanduser()
    if need.kind == "file" and not path.is_file():
        raise HarnessError(f"--setup-input {need.key}: {value} is not a file")
    if need.kind == "dir" and not path.is_dir():
        raise HarnessError(f"--setup-input {need.key}: {value} is not a directory")
    try:
        return fill.transform(value)
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"--setup-input {need.key}: cannot read {value}: {e}") from None
