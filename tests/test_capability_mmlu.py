"""MMLU: data loading, the category table, stratified limits, and log-likelihood scoring checked
against a direct forward pass of the tiny model."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch

from orbench_benchmarks.mmlu import CATEGORIES, MMLU, SUBJECT_CATEGORY
from orbench_harness.backends.hf import HFModel
from orbench_harness.cache import Cache, PrefixedKV
from orbench_harness.data import DataSource
from orbench_harness.errors import DataError
from orbench_harness.protocols import EvalContext
from orbench_harness.registry import Registry

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest
HEADER = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]


def make_ctx(tmp_path: Path, limit: int | None = None, batch_size: int = 4) -> EvalContext:
    kv = PrefixedKV(Cache(tmp_path / "kv.sqlite"), {"test": "mmlu"})
    return EvalContext(seed=0, limit=limit, batch_size=batch_size, kv=kv, key_prefix={})


@pytest.fixture(scope="module")
def short_mmlu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the shortest real test question of every subject (and the real dev)."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if not (shared / "mmlu").is_dir():
        pytest.skip(f"shared datasets not found at {shared}")
    root = tmp_path_factory.mktemp("mmlu-short")
    (root / "mmlu" / "test").mkdir(parents=True)
    (root / "mmlu" / "dev").symlink_to(shared / "mmlu" / "dev", target_is_directory=True)
    for src in sorted((shared / "mmlu" / "test").glob("*_test.csv")):
        rows = list(csv.DictReader(src.open(encoding="utf-8")))
        rows.sort(key=lambda r: sum(len(r[c]) for c in HEADER))
        with (root / "mmlu" / "test" / src.name).open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=HEADER)
            w.writeheader()
            w.writerows(rows[:1])
    return root


def direct_loglik(raw: tuple[Any, Any], context: str, letters: str = "ABCD",
                  max_len: int = 512) -> list[float]:
    """log p(" X" | context) for each letter from one forward pass over the context alone.

    Each " X" is one token for the tiny tokenizer, so its log-probability is the model's
    next-token distribution after the context: a different computation from the plugin's,
    which scores context + continuation sequences.
    """
    model, tok = raw
    conts = [tok(f" {x}", add_special_tokens=False).input_ids for x in letters]
    assert all(len(c) == 1 for c in conts)
    ctx_ids = tok(context, add_special_tokens=False).input_ids[-(max_len - 1):]
    with torch.no_grad():
        logp = model(torch.tensor([ctx_ids])).logits[0, -1].float().log_softmax(-1)
    return [float(logp[c[0]]) for c in conts]


def handmade_prompt(subject: str, row: dict[str, str]) -> str:
    """The standard MMLU zero-shot prompt, written out independently of the plugin."""
    return (
        f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        f"{row['question'].strip()}\nA. {row['choice0']}\nB. {row['choice1']}\n"
        f"C. {row['choice2']}\nD. {row['choice3']}\nAnswer:"
    )


def test_category_table_covers_the_57_subjects(shared_datasets: Path) -> None:
    files = {p.name.removesuffix("_test.csv") for p in (shared_datasets / "mmlu" / "test").glob("*.csv")}
    assert len(files) == 57 and set(SUBJECT_CATEGORY) == files
    assert sum(len(v) for v in CATEGORIES.values()) == 57  # no subject twice
    assert {c: len(v) for c, v in CATEGORIES.items()} == {
        "stem": 18, "humanities": 13, "social_sciences": 12, "other": 14}
    spot = {"professional_law": "humanities", "econometrics": "social_sciences",
            "high_school_statistics": "stem", "global_facts": "other", "virology": "other",
            "formal_logic": "humanities", "public_relations": "social_sciences",
            "computer_security": "stem", "professional_accounting": "other"}
    assert {s: SUBJECT_CATEGORY[s] for s in spot} == spot


def test_real_data_loads_whole_and_limits_stratify(shared_datasets: Path) -> None:
    reg = Registry()
    bench = reg.create("benchmarks", "mmlu", DataSource(shared_datasets))
    assert bench.kind == "capability" and bench.metric == "accuracy"
    assert bench.size() == 14042 and len(bench.data_files()) == 57
    qs = bench.questions()
    assert len({q.id for q in qs}) == 14042 and all(q.answer in range(4) for q in qs)
    sample = bench.questions(200, seed=0)
    assert len(sample) == 200 and sample == bench.questions(200, seed=0)
    assert sample != bench.questions(200, seed=1)
    per = {s: sum(q.subject == s for q in sample) for s in SUBJECT_CATEGORY}
    for s, k in per.items():  # each subject's share, rounded one way or the other
        share = 200 * sum(q.subject == s for q in qs) / 14042
        assert int(share) <= k <= int(share) + 1, s
    assert bench.questions(20_000) == qs


def test_five_shot_prompt_uses_the_first_five_dev_questions(shared_datasets: Path) -> None:
    bench = Registry().create("benchmarks", "mmlu-5shot", DataSource(shared_datasets))
    q = next(q for q in bench.questions() if q.subject == "anatomy")
    text = bench.prompt_text(q)
    dev = list(csv.DictReader((shared_datasets / "mmlu" / "dev" / "anatomy_dev.csv").open(encoding="utf-8")))
    assert text.startswith("The following are multiple choice questions (with answers) about anatomy.\n\n")
    assert text.count("\nAnswer:") == 6 and text.endswith("\nAnswer:")
    for r in dev:
        assert f"{r['question'].strip()}\n" in text and f"Answer: {'ABCD'[int(r['answer'])]}\n\n" in text
    assert len(bench.data_files()) == 114


def test_accuracy_matches_a_direct_forward_pass(
    short_mmlu: Path, hf: HFModel, raw_model: tuple[Any, Any], tmp_path: Path
) -> None:
    bench = MMLU(DataSource(short_mmlu))
    result = bench.evaluate(hf, make_ctx(tmp_path))
    outcomes: dict[str, list[bool]] = {c: [] for c in CATEGORIES}
    n_compared = 0
    mine = {q.id: s for q, s in zip(bench.questions(), bench.score(hf, bench.questions(),
                                                                 make_ctx(tmp_path)), strict=True)}
    for path in sorted((short_mmlu / "mmlu" / "test").glob("*.csv")):
        subject = path.name.removesuffix("_test.csv")
        for i, row in enumerate(csv.DictReader(path.open(encoding="utf-8"))):
            ctx = handmade_prompt(subject, row)
            ll = direct_loglik(raw_model, ctx)
            assert mine[f"{subject}/{i}"] == pytest.approx(ll, abs=1e-4)
            outcomes[SUBJECT_CATEGORY[subject]].append(ll.index(max(ll)) == int(row["answer"]))
            n_compared += 1
    every = [ok for v in outcomes.values() for ok in v]
    assert result["n"] == n_compared == 57
    assert result["accuracy"] == pytest.approx(100 * sum(every) / len(every), abs=1e-3)
    for cat, oks in outcomes.items():
        assert result[f"accuracy_{cat}"] == pytest.approx(100 * sum(oks) / len(oks), abs=1e-3)


class Counting:
    """Delegates to a policy and counts log-prob calls (to see cache hits)."""

    def __init__(self, inner: HFModel) -> None:
        self.inner = inner
        self.calls = 0
        self.max_length = inner.max_length

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def token_logprobs(self, seqs: Any) -> list[list[float]]:
        self.calls += 1
        return self.inner.token_logprobs(seqs)


def test_limit_and_per_question_cache(shared_datasets: Path, hf: HFModel, tmp_path: Path) -> None:
    bench = MMLU(DataSource(shared_datasets))
    counting = Counting(hf)
    seen: list[tuple[int, int]] = []
    ctx = make_ctx(tmp_path, limit=6, batch_size=4)
    ctx = EvalContext(seed=0, limit=6, batch_size=4, kv=ctx.kv, key_prefix={},
                      progress=lambda d, t: seen.append((d, t)))
    first = bench.evaluate(counting, ctx)
    assert first["n"] == 6 and counting.calls == 2 and seen[-1] == (6, 6)
    again = bench.evaluate(counting, ctx)
    assert again == first and counting.calls == 2  # all six from the cache
    bench.evaluate(counting, EvalContext(seed=0, limit=8, batch_size=8, kv=ctx.kv, key_prefix={}))
    assert counting.calls == 3  # only the questions not seen before, in one batch


def test_five_shot_context_is_cut_from_the_left_to_fit(
    shared_datasets: Path, hf: HFModel, raw_model: tuple[Any, Any], tmp_path: Path
) -> None:
    bench = MMLU(DataSource(shared_datasets), shots=5)
    qs = bench.questions(2, seed=3)
    scores = bench.score(hf, qs, make_ctx(tmp_path))
    for q, s in zip(qs, scores, strict=True):
        text = bench.prompt_text(q)
        assert len(hf.encode(text)) > hf.max_length  # the tiny model's 512 positions
        assert s == pytest.approx(direct_loglik(raw_model, text), abs=1e-4)


def test_missing_subject_is_a_clear_error(short_mmlu: Path, tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "mmlu" / "test").mkdir(parents=True)
    for p in (short_mmlu / "mmlu" / "test").glob("*.csv"):
        if not p.name.startswith("virology"):
            (root / "mmlu" / "test" / p.name).write_bytes(p.read_bytes())
    with pytest.raises(DataError, match=r"virology_test\.csv not found"):
        MMLU(DataSource(root)).questions()
    (root / "mmlu" / "test" / "virology_test.csv").write_text(
        "question,choice0,choice1,choice2,choice3,answer\nQ?,a,b,c,d,4\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 1: column 'answer' must be 0-3"):
        MMLU(DataSource(root)).questions()
