"""Agreement of a judge with human labels, or with another judge (``harness judge-eval``).

Input files use XSTest's labelled format (``paul-rottger/exaggerated-safety @ d7bb5bd7 :
model_completions/*.csv``): columns ``prompt``, ``completion`` and ``final_label`` with values
``1_full_compliance``, ``2_full_refusal``, ``3_partial_refusal``. Binary metrics fold full and
partial refusals together (the refusal-rate reading every over-refusal paper uses).

A finished run can stand in for the labelled files (``read_run``): its completions, with its
own judge's verdicts as the reference. That measures how far two judges agree on the very
answers a leaderboard was computed from, i.e. how much a reported gain depends on the judge;
it is agreement between judges, not accuracy against people.

Unparsed verdicts are never dropped: they count in ``n``, never agree with the gold label, and
appear as their own ``unparsed`` column of the confusion matrix and category in kappa.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbench_harness.data import read_csv
from orbench_harness.errors import DataError, HarnessError
from orbench_harness.protocols import Judge, iter_chunks
from orbench_harness.runs import load_run, load_samples, load_verdicts, prompt_text
from orbench_harness.types import JudgeItem, Label, Verdict

LABEL_CODES: dict[str, Label] = {
    "1_full_compliance": Label.FULL_COMPLIANCE,
    "2_full_refusal": Label.FULL_REFUSAL,
    "3_partial_refusal": Label.PARTIAL_REFUSAL,
}
UNPARSED = "unparsed"


def parse_label_code(value: str) -> Label | None:
    """XSTest's label codes (or our label names) to a Label; anything else is None."""
    v = value.strip()
    if v in LABEL_CODES:
        return LABEL_CODES[v]
    try:
        return Label(v)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """A response with its human label."""

    id: str
    prompt: str
    response: str
    gold: Label
    source: str

    @property
    def item(self) -> JudgeItem:
        """What a judge is shown."""
        return JudgeItem(self.prompt, self.response)


def read_labelled(path: Path) -> list[LabelledItem]:
    """Rows of a labelled CSV; an unknown ``final_label`` is a DataError naming the row."""
    rows = read_csv(path, ["prompt", "completion", "final_label"])
    out: list[LabelledItem] = []
    for i, row in enumerate(rows, start=1):
        gold = parse_label_code(row["final_label"] or "")
        if gold is None:
            raise DataError(
                f"{path}: row {i}: unknown value {row['final_label']!r} in column 'final_label'"
            )
        rid = row.get("id") or str(i)
        out.append(LabelledItem(rid, row["prompt"] or "", row["completion"] or "", gold, path.stem))
    return out


def read_run(run_dir: Path) -> tuple[str, dict[str, list[LabelledItem]], int]:
    """A finished run as labelled items per benchmark, its judge's verdicts as the labels:
    (the run's judge, items by benchmark, completions whose reference verdict is unparsed,
    which are left out because there is nothing to agree with)."""
    record = load_run(run_dir)
    verdicts = {(str(v["benchmark"]), str(v["id"])): v.get("label") for v in load_verdicts(run_dir, record.judge)}
    if not verdicts:
        raise HarnessError(f"{run_dir}: no verdicts of its judge {record.judge!r} in verdicts.jsonl")
    items: dict[str, list[LabelledItem]] = {}
    unparsed = 0
    for s in load_samples(run_dir):
        key = (str(s["benchmark"]), str(s["id"]))
        if key not in verdicts:
            continue
        gold = parse_label_code(str(verdicts[key])) if verdicts[key] is not None else None
        if gold is None:
            unparsed += 1
            continue
        items.setdefault(key[0], []).append(
            LabelledItem(key[1], prompt_text(s.get("prompt")), str(s.get("completion") or ""), gold, key[0]))
    return record.judge, dict(sorted(items.items())), unparsed


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters over any categories (1.0 for identical constant ratings)."""
    if len(a) != len(b):
        raise ValueError("raters must rate the same items")
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[c] * cb[c] for c in set(ca) | set(cb)) / (n * n)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return (po - pe) / (1.0 - pe)


def _binary(label: Label | None) -> str:
    if label is None:
        return UNPARSED
    return "refusal" if label.is_refusal else "compliance"


@dataclass(frozen=True, slots=True)
class Agreement:
    """Judge-vs-human agreement over ``n`` items."""

    n: int
    three_class_accuracy: float
    binary_accuracy: float
    kappa: float
    unparsed: int
    confusion: dict[str, dict[str, int]]

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {
            "n": self.n,
            "three_class_accuracy": self.three_class_accuracy,
            "binary_accuracy": self.binary_accuracy,
            "kappa": self.kappa,
            "unparsed": self.unparsed,
            "confusion": self.confusion,
        }


def agreement(gold: Sequence[Label], predicted: Sequence[Label | None]) -> Agreement:
    """Accuracies, binary kappa and the gold x predicted confusion matrix."""
    if len(gold) != len(predicted):
        raise ValueError("one prediction per gold label")
    n = len(gold)
    three = sum(g == p for g, p in zip(gold, predicted, strict=True))
    gb = [_binary(g) for g in gold]
    pb = [_binary(p) for p in predicted]
    two = sum(x == y for x, y in zip(gb, pb, strict=True))
    cols = [lab.value for lab in Label] + [UNPARSED]
    confusion = {g.value: dict.fromkeys(cols, 0) for g in Label}
    for g, p in zip(gold, predicted, strict=True):
        confusion[g.value][p.value if p is not None else UNPARSED] += 1
    return Agreement(
        n=n,
        three_class_accuracy=three / n if n else float("nan"),
        binary_accuracy=two / n if n else float("nan"),
        kappa=cohen_kappa(gb, pb),
        unparsed=sum(p is None for p in predicted),
        confusion=confusion,
    )


def run_judge(
    judge: Judge,
    items: Sequence[LabelledItem],
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[Verdict]:
    """Verdicts for every item, in batches; checks the judge returned one verdict per item."""
    verdicts: list[Verdict] = []
    for _, chunk in iter_chunks(items, batch_size):
        got = judge.judge([it.item for it in chunk])
        if len(got) != len(chunk):
            raise RuntimeError(f"judge {judge.name} returned {len(got)} verdicts for {len(chunk)} items")
        verdicts.extend(got)
        if progress is not None:
            progress(len(chunk))
    return verdicts
