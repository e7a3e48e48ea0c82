"""MT-Bench: rating parsing, the grading prompt, the loud skip without a grader, and the
two-turn flow on the tiny model with a grader defined here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbench_benchmarks.mt_bench import NEED_REFERENCE, SKIPPED, MTBench
from orbench_harness.backends.hf import HFModel
from orbench_harness.cache import Cache, PrefixedKV
from orbench_harness.data import DataSource
from orbench_harness.errors import DataError
from orbench_harness.grading import Grader, Turn, grading_messages, parse_rating
from orbench_harness.protocols import EvalContext, Judge
from orbench_harness.registry import Registry
from orbench_harness.runner import run
from orbench_harness.spec import RunSpec
from orbench_harness.types import GenParams, JudgeItem, Message, Prompt, Verdict
from orbench_judges.strmatch import StrMatchJudge

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest
NO_BRACKETS = st.text(st.characters(blacklist_characters="[]"), max_size=60)
RATINGS = st.one_of(st.integers(1, 10).map(str),
                    st.tuples(st.integers(1, 9), st.integers(0, 9)).map(lambda t: f"{t[0]}.{t[1]}"))


@given(before=NO_BRACKETS, after=NO_BRACKETS, rating=RATINGS, repeat=st.booleans())
def test_a_single_double_bracket_rating_is_read(before: str, after: str, rating: str, repeat: bool) -> None:
    text = f"{before}Rating: [[{rating}]]{after}" + (f" again [[{rating}]]" if repeat else "")
    assert parse_rating(text) == float(rating)


@given(text=NO_BRACKETS)
def test_no_rating_is_unparsed(text: str) -> None:
    assert parse_rating(text) is None
    assert parse_rating(text + "[7]") is None  # single brackets do not count
    assert parse_rating(text + "[[rating]]") is None


@given(a=st.integers(1, 10), b=st.integers(1, 10), out=st.integers(11, 1000))
def test_conflicting_or_out_of_range_ratings_are_unparsed(a: int, b: int, out: int) -> None:
    both = parse_rating(f"[[{a}]] or maybe [[{b}]]")
    assert both == (float(a) if a == b else None)
    assert parse_rating(f"Rating: [[{out}]]") is None
    assert parse_rating("Rating: [[0]]") is None


def test_parse_agrees_with_fastchat_on_real_gpt4_judgments(shared_datasets: Path) -> None:
    path = shared_datasets / "mt-bench" / "mt_bench" / "model_judgment" / "gpt-4_single-origin.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 330
    for r in rows:
        expected = None if r["score"] == -1 else float(r["score"])
        assert parse_rating(r["judgment"]) == expected, r["question_id"]


def test_grading_messages_show_what_the_rules_need() -> None:
    plain = grading_messages("Q1?", "A1.")
    assert [m["role"] for m in plain] == ["system", "user"]
    body = plain[1]["content"]
    assert "Q1?" in body and "A1." in body and "[[" in body and "reference" not in body.lower()
    second = grading_messages("Q2?", "A2.", reference="R2", history=[Turn("Q1?", "A1.", "R1")])[1]["content"]
    for part in ("Q1?", "A1.", "Q2?", "A2.", "R1", "R2", "final user turn"):
        assert part in second, part
    assert second.index("A1.") < second.index("A2.")


# -- the benchmark ------------------------------------------------------------------------


def make_ctx(tmp_path: Path, judge: Any, limit: int | None = 8) -> EvalContext:
    kv = PrefixedKV(Cache(tmp_path / "kv.sqlite"), {"test": "mt-bench"})
    return EvalContext(seed=0, limit=limit, batch_size=4, kv=kv, key_prefix={}, judge=judge)


class NoGeneration:
    """A policy that must not be used."""

    def generate(self, prompts: Sequence[Prompt], params: GenParams, **kw: Any) -> list[Any]:
        raise AssertionError("generated although no grader is configured")


def test_real_questions_load_with_references(shared_datasets: Path) -> None:
    bench = Registry().create("benchmarks", "mt-bench", DataSource(shared_datasets))
    qs = bench.questions()
    assert bench.size() == 80 == len(qs) and len(bench.data_files()) == 2
    with_ref = {q.category for q in qs if q.references}
    assert with_ref == set(NEED_REFERENCE) and sum(1 for q in qs if q.references) == 30
    eight = bench.questions(8, seed=0)
    assert len({q.category for q in eight}) == 8  # stratified: one per category
    picks = {frozenset(q.category for q in bench.questions(3, seed=s)) for s in range(6)}
    assert all(len(p) == 3 for p in picks) and len(picks) > 1  # seed decides the tied categories
    assert bench.samples("train") == []


def test_without_data_dir_it_says_where_the_data_comes_from() -> None:
    with pytest.raises(DataError, match=r"not on the hub.*FastChat"):
        MTBench(DataSource(None)).questions()


@pytest.mark.parametrize("judge", [None, StrMatchJudge()])
def test_skipped_loudly_without_a_grader(shared_datasets: Path, tmp_path: Path, judge: Judge | None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert not isinstance(judge, Grader)
    got = MTBench(DataSource(shared_datasets)).evaluate(NoGeneration(), make_ctx(tmp_path, judge))
    assert got == {"skipped": SKIPPED, "n": 0}
    assert "mt-bench skipped" in capsys.readouterr().err


class RecordingGrader:
    """Rates turn 1 with 3 and turn 2 with 6, except one unparsable turn-2 grade."""

    name = "recording"
    version = "1"

    def __init__(self, unparsable_id: str) -> None:
        self.calls: list[dict[str, Any]] = []
        self.unparsable = unparsable_id

    def preflight(self) -> None:
        """Nothing to check."""

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        return [Verdict(None) for _ in items]

    def grade(self, question: str, answer: str, reference: str | None = None, turn: int = 1,
              history: Sequence[Turn] = ()) -> float | None:
        self.calls.append({"question": question, "answer": answer, "reference": reference,
                           "turn": turn, "history": tuple(history)})
        if turn == 2 and history[0].question == self.unparsable:
            return None
        return 3.0 * turn


def test_two_turn_flow_grades_each_turn(shared_datasets: Path, hf: HFModel, tmp_path: Path) -> None:
    bench = MTBench(DataSource(shared_datasets), max_new_tokens=6)
    qs = bench.questions(8, seed=0)
    grader = RecordingGrader(unparsable_id=qs[0].turns[0])
    assert isinstance(grader, Grader)
    got = bench.evaluate(hf, make_ctx(tmp_path, grader))
    assert got == {"score_turn1": 3.0, "score_turn2": 6.0, "score": pytest.approx((8 * 3 + 7 * 6) / 15, abs=1e-4),
                   "unparsed": 1, "n": 8}
    params = GenParams(max_new_tokens=6)
    by_q = {(c["turn"], c["question"]): c for c in grader.calls}
    assert len(by_q) == 16
    for q in qs:
        first = hf.generate([Prompt.user(q.turns[0])], params)[0].text
        conv = Prompt((Message("user", q.turns[0]), Message("assistant", first), Message("user", q.turns[1])))
        second = hf.generate([conv], params)[0].text
        c1, c2 = by_q[(1, q.turns[0])], by_q[(2, q.turns[1])]
        assert c1["answer"] == first and c1["history"] == ()
        assert c2["answer"] == second and c2["history"] == (Turn(q.turns[0], first, c1["reference"]),)
        if q.category in NEED_REFERENCE:
            assert q.references is not None and (c1["reference"], c2["reference"]) == q.references
        else:
            assert c1["reference"] is None and c2["reference"] is None
    again = RecordingGrader(unparsable_id=qs[0].turns[0])
    assert bench.evaluate(NoGeneration(), make_ctx(tmp_path, again)) == got
    assert again.calls == []  # answers and grades both from the cache


def test_runner_records_the_skip_and_scores_the_others(shared_datasets: Path, tiny_model_dir: Path,
                                                        tmp_path: Path) -> None:
    spec = RunSpec(model=str(tiny_model_dir), benchmarks=("mmlu", "wikitext2", "mt-bench"),
                   data_dir=shared_datasets, limit=2, batch_size=4)
    res = run(spec, tmp_path / "run")["benchmarks"]
    assert res["mt-bench"]["skipped"] == SKIPPED and res["mt-bench"]["n"] == 0
    assert res["mmlu"]["n"] == 2 and 0 <= res["mmlu"]["accuracy"] <= 100
    assert res["wikitext2"]["n_windows"] == 2 and res["wikitext2"]["perplexity"] > 1
    assert all(res[b]["kind"] == "capability" for b in ("mmlu", "wikitext2", "mt-bench"))
