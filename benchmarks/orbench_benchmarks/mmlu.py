"""``mmlu`` / ``mmlu-5shot``: MMLU (Hendrycks et al., ICLR 2021), scored by answer log-likelihood.

57 subjects, 14,042 test questions. Data:

- local: ``<data-dir>/mmlu/test/<subject>_test.csv`` and ``dev/<subject>_dev.csv`` (header
  ``question,choice0,choice1,choice2,choice3,answer``; answer is the index 0-3), the layout of
  a data directory (docs/data.md). All 57 subjects must be present.
- hub: ``cais/mmlu``, config ``all``, splits ``test`` and ``dev`` (columns question, subject,
  choices, answer), revision ``c30699e8356da336a370243923dbaf21066bb9fe`` (a pin found in
  third-party evaluation code; not checked from here, which has no hub access).

Prompt (lm-evaluation-harness's ``mmlu`` task, which follows the paper's format): ``The
following are multiple choice questions (with answers) about <subject>.\\n\\n`` then, for
5-shot, the first five dev questions of the subject each ending ``Answer: X`` and separated by a
blank line, then the question with its four lettered choices and ``Answer:``. The prediction is
the letter whose continuation ``" A"`` .. ``" D"`` has the highest log-probability (summed over
its tokens). Context and continuation are tokenised separately and concatenated, so the letter
is scored as the token a model sees after ``Answer:``; a context too long for the model keeps
its end.

Raw text, not the chat template, for chat models too: lm-eval scores MMLU on raw text; the
Surgical baseline's code runs lm-eval MMLU 5-shot with its ablation hooks active
(docs/methods.md, Surgical), and the ACTOR paper's Llama-2-7b-chat figure (46.81) is in line
with lm-eval's raw-text 5-shot score for that model, so ``mmlu-5shot`` is the variant to compare
with the paper. The method's intervention is still active: the policy scoring the text is the
one the method returned (its weights, hooks or adapters), only no chat wrapper is added. Plugin
authors who want the chat-formatted variant can build ``MMLU(data, chat=True)``; the prompt then
becomes one user turn and the continuations are ``"A"`` .. ``"D"`` after the assistant prefix.

``ctx.limit`` is a number of questions: a seeded sample stratified by subject (each subject's
share kept, largest remainders first). Results are percentages, overall (micro-average) and per
category with the paper's subject-to-category mapping (``CATEGORIES``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orbench_benchmarks import mmlu_served as served
from orbench_harness.benchkit import HubSource, hub_rows, rows_sha256
from orbench_harness.catalog import Register
from orbench_harness.data import DataSource, data_file, read_csv
from orbench_harness.errors import DataError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.protocols import EvalContext, Policy, ScoringPolicy, Split
from orbench_harness.types import BenchmarkKind, DataFile, Prompt, Sample

HUB_ID = "cais/mmlu"
HUB_REVISION = "c30699e8356da336a370243923dbaf21066bb9fe"
PUBLISHED_SIZE = 14042
LETTERS = ("A", "B", "C", "D")
FORMAT_VERSION = "lm-eval-mmlu-1"

# Hendrycks et al.'s grouping (hendrycks/test, categories.py): each subject has a subcategory,
# and subcategories form four categories. Written out here per category.
CATEGORIES: Mapping[str, tuple[str, ...]] = {
    "stem": (
        "abstract_algebra", "astronomy", "college_biology", "college_chemistry",
        "college_computer_science", "college_mathematics", "college_physics",
        "computer_security", "conceptual_physics", "electrical_engineering",
        "elementary_mathematics", "high_school_biology", "high_school_chemistry",
        "high_school_computer_science", "high_school_mathematics", "high_school_physics",
        "high_school_statistics", "machine_learning",
    ),
    "humanities": (
        "formal_logic", "high_school_european_history", "high_school_us_history",
        "high_school_world_history", "international_law", "jurisprudence", "logical_fallacies",
        "moral_disputes", "moral_scenarios", "philosophy", "prehistory", "professional_law",
        "world_religions",
    ),
    "social_sciences": (
        "econometrics", "high_school_geography", "high_school_government_and_politics",
        "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology",
        "human_sexuality", "professional_psychology", "public_relations", "security_studies",
        "sociology", "us_foreign_policy",
    ),
    "other": (
        "anatomy", "business_ethics", "clinical_knowledge", "college_medicine", "global_facts",
        "human_aging", "management", "marketing", "medical_genetics", "miscellaneous",
        "nutrition", "professional_accounting", "professional_medicine", "virology",
    ),
}  # fmt: skip
SUBJECT_CATEGORY: Mapping[str, str] = {s: c for c, subjects in CATEGORIES.items() for s in subjects}
COLUMNS = ("question", "choice0", "choice1", "choice2", "choice3", "answer")


@dataclass(frozen=True, slots=True)
class Question:
    """One MMLU item; ``index`` is its 0-based position in its subject's file."""

    subject: str
    index: int
    question: str
    choices: tuple[str, str, str, str]
    answer: int

    @property
    def id(self) -> str:
        """``subject/index``: stable across the local files and the hub."""
        return f"{self.subject}/{self.index}"


def format_question(q: Question, *, with_answer: bool) -> str:
    """The question, its lettered choices and ``Answer:`` (plus `` X`` for a few-shot example)."""
    lines = [q.question.strip(), *(f"{ltr}. {c}" for ltr, c in zip(LETTERS, q.choices, strict=True))]
    text = "\n".join(lines) + "\nAnswer:"
    return text + f" {LETTERS[q.answer]}" if with_answer else text


def build_prompt(q: Question, shots: Sequence[Question] = ()) -> str:
    """The full prompt: header, the few-shot examples, then the question ending ``Answer:``."""
    header = f"The following are multiple choice questions (with answers) about {q.subject.replace('_', ' ')}.\n\n"
    parts = [format_question(s, with_answer=True) for s in shots]
    return header + "\n\n".join([*parts, format_question(q, with_answer=False)])


def _parse_answer(origin: str, row: int, value: Any) -> int:
    try:
        answer = int(str(value).strip())
    except ValueError:
        answer = -1
    if answer not in range(4):
        raise DataError(f"{origin}: row {row}: column 'answer' must be 0-3, got {value!r}")
    return answer


def _question(origin: str, row: int, subject: str, index: int, text: Any, choices: Sequence[Any],
              answer: Any) -> Question:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{origin}: row {row}: empty prompt in column 'question'")
    if len(choices) != 4:
        raise DataError(f"{origin}: row {row}: expected 4 choices, got {len(choices)}")
    c0, c1, c2, c3 = (str(c) for c in choices)
    return Question(subject, index, text, (c0, c1, c2, c3), _parse_answer(origin, row, answer))


def read_local(root: Path, split: str) -> tuple[dict[str, list[Question]], list[DataFile]]:
    """Every subject's file of a split (``test`` or ``dev``), validated, with hashes."""
    by_subject: dict[str, list[Question]] = {}
    files: list[DataFile] = []
    for subject in sorted(SUBJECT_CATEGORY):
        path = root / "mmlu" / split / f"{subject}_{split}.csv"
        if not path.is_file():
            raise DataError(f"mmlu: {path} not found (all 57 subjects are needed)")
        rows = read_csv(path, required=COLUMNS)
        by_subject[subject] = [
            _question(str(path), i + 1, subject, i, r["question"],
                      [r[f"choice{k}"] for k in range(4)], r["answer"])
            for i, r in enumerate(rows)
        ]
        files.append(data_file(path))
    return by_subject, files


def read_hub(split: str) -> tuple[dict[str, list[Question]], list[DataFile]]:
    """The pinned hub copy of a split, grouped by subject in row order."""
    src = HubSource(HUB_ID, HUB_REVISION, split=split, config="all")
    rows = hub_rows(src)
    by_subject: dict[str, list[Question]] = {s: [] for s in sorted(SUBJECT_CATEGORY)}
    for i, r in enumerate(rows, start=1):
        subject = str(r.get("subject", ""))
        if subject not in by_subject:
            raise DataError(f"{src.label}: row {i}: unknown subject {subject!r}")
        group = by_subject[subject]
        group.append(_question(src.label, i, subject, len(group), r.get("question"),
                               list(r.get("choices") or []), r.get("answer")))
    return by_subject, [DataFile(src.label, rows_sha256(rows))]


T = TypeVar("T")


def stratified(items: Sequence[T], limit: int | None, seed: int, *, group: Callable[[T], str],
               ident: Callable[[T], str], salt: str = "mmlu") -> list[T]:
    """A seeded sample of ``limit`` items keeping each group's share (largest remainder first).

    Within a group, items are ranked by a hash of (salt, seed, id), so the draw depends neither
    on file order nor on Python's ``random``; the result keeps the input order. Which groups get
    the leftover items when remainders tie is also decided by a seeded hash.
    """
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[T]] = {}
    for it in items:
        groups.setdefault(group(it), []).append(it)
    exact = {g: max(0, limit) * len(v) / len(items) for g, v in groups.items()}
    quota = {g: int(v) for g, v in exact.items()}

    def rank_of(key: str) -> str:
        return hashlib.sha256(f"{salt}\0{seed}\0{key}".encode()).hexdigest()

    # largest remainders first; ties (groups of equal size) broken by a seeded hash
    by_remainder = sorted(groups, key=lambda g: (-(exact[g] - quota[g]), rank_of(f"group:{g}")))
    for g in by_remainder[: max(0, limit) - sum(quota.values())]:
        quota[g] += 1

    def rank(it: T) -> str:
        return rank_of(ident(it))

    chosen = {ident(it) for g, v in groups.items() for it in sorted(v, key=rank)[: quota[g]]}
    return [it for it in items if ident(it) in chosen]


def accuracy_metrics(outcomes: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """Percent correct overall and per category from (subject, correct) pairs; None if empty."""

    def pct(xs: list[bool]) -> float | None:
        return round(100.0 * sum(xs) / len(xs), 4) if xs else None

    out: dict[str, Any] = {"accuracy": pct([ok for _, ok in outcomes])}
    for cat in CATEGORIES:
        out[f"accuracy_{cat}"] = pct([ok for s, ok in outcomes if SUBJECT_CATEGORY[s] == cat])
    out["n"] = len(outcomes)
    return out


@dataclass
class MMLU:
    """MMLU with ``shots`` dev examples per prompt, raw text unless ``chat``."""

    data: DataSource
    shots: int = 0
    chat: bool = False
    name: str = "mmlu"
    kind: BenchmarkKind = "capability"
    metric: str = "accuracy"
    _loaded: tuple[list[Question], dict[str, list[Question]], list[DataFile]] | None = field(
        default=None, init=False, repr=False
    )

    def _load(self) -> tuple[list[Question], dict[str, list[Question]], list[DataFile]]:
        if self._loaded is None:
            root = self.data.data_dir
            if root is not None and (root / "mmlu" / "test").is_dir():
                test, files = read_local(root, "test")
                dev, dev_files = read_local(root, "dev") if self.shots else ({}, [])
            else:
                try:
                    test, files = read_hub("test")
                    dev, dev_files = read_hub("dev") if self.shots else ({}, [])
                except DataError as e:
                    where = f"{root / 'mmlu' / 'test'} not found" if root else "no --data-dir"
                    raise DataError(f"mmlu: {where} and {e}; provide mmlu/test and mmlu/dev "
                                    "under --data-dir") from None
            for subject, rows in dev.items():
                if len(rows) < self.shots:
                    raise DataError(f"mmlu: dev split of {subject} has {len(rows)} rows, "
                                    f"{self.shots} shots needed")
            questions = [q for s in sorted(test) for q in test[s]]
            self._loaded = (questions, dev, [*files, *dev_files])
        return self._loaded

    def questions(self, limit: int | None = None, seed: int = 0) -> list[Question]:
        """All test questions, or a stratified seeded sample of ``limit``."""
        return stratified(self._load()[0], limit, seed, group=lambda q: q.subject, ident=lambda q: q.id)

    def prompt_text(self, q: Question) -> str:
        """The text scored for ``q`` (before any chat template)."""
        return build_prompt(q, self._load()[1].get(q.subject, [])[: self.shots])

    def samples(self, split: Split = "test", *, limit: int | None = None, seed: int = 0) -> list[Sample]:
        """Questions as samples (prompt = scored text); MMLU has no training split for methods."""
        if split == "train":
            return []
        return [Sample(q.id, self.prompt_text(q), "comply", {"subject": q.subject, "answer": q.answer})
                for q in self.questions(limit, seed)]

    def data_files(self) -> list[DataFile]:
        """The CSV files (or hub tables) read, with sha256."""
        return list(self._load()[2])

    def size(self) -> int:
        """Test questions: counted locally when the files are there, else the published size."""
        root = self.data.data_dir
        if root is not None and (root / "mmlu" / "test").is_dir():
            return len(self._load()[0])
        return PUBLISHED_SIZE

    def context(self, policy: ScoringPolicy, q: Question) -> tuple[str, tuple[str, ...]]:
        """The context string and the four continuations, raw or chat-formatted."""
        text = self.prompt_text(q)
        if self.chat:
            return policy.render(Prompt.user(text)), LETTERS
        return text, tuple(f" {ltr}" for ltr in LETTERS)

    def score(self, policy: ScoringPolicy, questions: Sequence[Question], ctx: EvalContext) -> list[list[float]]:
        """Per question, the log-likelihood of each of the four answers (cached per question)."""
        variant = f"{self.shots}shot/{'chat' if self.chat else 'raw'}/{FORMAT_VERSION}"
        contexts = [self.context(policy, q) for q in questions]
        keys = [f"{q.id}/{variant}/{_digest(c, conts)}"
                for q, (c, conts) in zip(questions, contexts, strict=True)]
        out: list[list[float] | None] = []
        for key in keys:
            hit = ctx.kv.get(key)
            out.append([float(x) for x in hit["logprobs"]] if isinstance(hit, dict) else None)
        todo = [i for i, v in enumerate(out) if v is None]
        done = len(questions) - len(todo)
        ctx.progress(done, len(questions))
        encoded = {i: policy.encode(contexts[i][0]) for i in todo}
        todo.sort(key=lambda i: len(encoded[i]))  # similar lengths share a batch: less padding
        step = max(1, ctx.batch_size)
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            seqs: list[list[int]] = []
            spans: list[int] = []
            for i in chunk:
                conts = [policy.encode(c) for c in contexts[i][1]]
                budget = policy.max_length - max(len(c) for c in conts)
                ctx_ids = encoded[i][-budget:] if budget > 0 else []
                for c in conts:
                    seqs.append(ctx_ids + c)
                    spans.append(len(c))
            lps = policy.token_logprobs(seqs)
            for j, i in enumerate(chunk):
                scores = [sum(lps[4 * j + k][-spans[4 * j + k]:]) for k in range(4)]
                ctx.kv.put(keys[i], {"logprobs": scores})
                out[i] = scores
            done += len(chunk)
            ctx.progress(done, len(questions))
        return [v for v in out if v is not None]

    # a served model (no tokens, no logits) is scored too, by ``mmlu_served``'s protocols
    scores_served = True

    def evaluate(self, policy: ScoringPolicy, ctx: EvalContext) -> dict[str, Any]:
        """Accuracy (percent) overall and per category, plus ``n``."""
        questions = self.questions(ctx.limit, ctx.seed)
        if not isinstance(policy, ScoringPolicy):
            return self.evaluate_served(policy, questions, ctx)
        scores = self.score(policy, questions, ctx)
        outcomes = [(q.subject, _argmax(s) == q.answer) for q, s in zip(questions, scores, strict=True)]
        return accuracy_metrics(outcomes)


    def evaluate_served(self, policy: Policy, questions: Sequence[Question], ctx: EvalContext) -> dict[str, Any]:
        """Accuracy of a served model, with the protocol that measured it (``mmlu_served``)."""
        texts = [self.prompt_text(q) for q in questions]
        variant = f"{self.shots}shot/raw/{FORMAT_VERSION}"
        keys = [f"{q.id}/{variant}/{_digest(t, ())}" for q, t in zip(questions, texts, strict=True)]
        picks, protocol, why = served.predict(policy, texts, keys, ctx)
        out = accuracy_metrics([(q.subject, p == q.answer) for q, p in zip(questions, picks, strict=True)])
        out["protocol"] = protocol
        if protocol == "generated-letter":
            out["unparsed"] = sum(p is None for p in picks)
            out["protocol_reason"] = why
        else:
            out["no_letter"] = sum(p is None for p in picks)
        return out


def _argmax(xs: Sequence[float]) -> int:
    """Index of the largest value (the first on ties, as lm-eval's ``np.argmax``)."""
    return max(range(len(xs)), key=xs.__getitem__)


def _digest(context: str, continuations: Sequence[str]) -> str:
    """A short hash of exactly what is scored, so edited data or prompts never hit stale cache."""
    return hashlib.sha256("\0".join((context, *continuations)).encode()).hexdigest()[:16]


def create(data: DataSource) -> MMLU:
    """Factory for ``mmlu`` (0-shot)."""
    return MMLU(data, shots=0, name="mmlu")


def create_5shot(data: DataSource) -> MMLU:
    """Factory for ``mmlu-5shot`` (the first five dev questions of each subject)."""
    return MMLU(data, shots=5, name="mmlu-5shot")


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register the 0-shot and 5-shot variants."""
    hub = [HubSource(HUB_ID, HUB_REVISION, split=s, config="all").label for s in ("test", "dev")]
    info: dict[str, Any] = {"kind": "capability", "metric": "accuracy", "size": PUBLISHED_SIZE,
                            "local": ["mmlu/test/*_test.csv", "mmlu/dev/*_dev.csv"], "hub": hub}
    register("mmlu", create, summary="MMLU 57 subjects, 0-shot, answer log-likelihood", **info)
    register("mmlu-5shot", create_5shot, summary="MMLU 57 subjects, 5-shot from dev", **info)
