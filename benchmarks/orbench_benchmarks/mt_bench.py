"""``mt-bench``: MT-Bench's 80 two-turn questions, each turn graded 1-10 by an LLM judge.

Data (local only): MT-Bench is not published on the hub as a dataset; its files live in
lm-sys/FastChat under ``fastchat/llm_judge/data/mt_bench/`` (``question.jsonl``: question_id,
category, turns; ``reference_answer/gpt-4.jsonl``: GPT-4's reference answers). Copy that folder
to ``<data-dir>/mt-bench/mt_bench/`` (docs/data.md).

Protocol (Zheng et al., 2023; FastChat @ 0e6d3e4b ``gen_model_answer.py`` and
``gen_judgment.py``): the policy answers the first question, then the second with the first
exchange in the conversation; each answer is graded with FastChat's single-answer rules
(``benchmarks/_mt_bench_prompts.py``). Questions of the categories that FastChat grades against
a reference (math, reasoning, coding) are given GPT-4's reference answers. Differences from
FastChat: decoding is greedy (temperature 0) for every category, where FastChat samples writing
and roleplay at 0.7 and stem/humanities at 0.1, so runs are reproducible and cacheable; no
system prompt is added. ``max_new_tokens`` defaults to FastChat's 1024.

Grading goes through ``ctx.judge`` when it implements ``Grader`` (the ``llm`` judge does).
Without one the benchmark is skipped loudly: ``{"skipped": "...", "n": 0}``, never scored by a
guess. Scores: mean rating of turn 1, of turn 2, and over all graded turns (FastChat's overall
score); ``unparsed`` counts judge outputs without a usable ``[[N]]`` rating, which are left out
of the means.

``ctx.limit`` is a number of questions: a seeded sample stratified by category (so 8 takes one
per category). Answers are cached per question and turn (keyed by the conversation and the
generation settings) and grades per judge name, version and rubric version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orbench_benchmarks.mmlu import stratified
from orbench_harness.catalog import Register
from orbench_harness.console import warn
from orbench_harness.data import DataSource, data_file, read_jsonl
from orbench_harness.errors import DataError
from orbench_harness.grading import PROMPT_VERSION, Grader, Turn
from orbench_harness.hookspecs import hookimpl
from orbench_harness.protocols import EvalContext, Policy, Split
from orbench_harness.types import BenchmarkKind, DataFile, GenParams, Message, Prompt, Sample

__all__ = ["Grader", "MTBench", "MTQuestion", "Turn", "create"]

QUESTIONS = "mt-bench/mt_bench/question.jsonl"
REFERENCES = "mt-bench/mt_bench/reference_answer/gpt-4.jsonl"
NEED_REFERENCE = ("math", "reasoning", "coding")  # FastChat's NEED_REF_CATS
SKIPPED = "no LLM judge configured (use --judge llm)"
SIZE = 80


@dataclass(frozen=True, slots=True)
class MTQuestion:
    """One two-turn question; ``references`` only for the reference-graded categories."""

    id: str
    category: str
    turns: tuple[str, str]
    references: tuple[str, str] | None = None


def _pair(origin: str, row: int, value: Any, what: str) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(t, str) for t in value)):
        raise DataError(f"{origin}: row {row}: {what} must be a list of two strings")
    return value[0], value[1]


def read_questions(root: Path) -> list[MTQuestion]:
    """Questions with references attached; every reference category must have one."""
    qpath, rpath = root / QUESTIONS, root / REFERENCES
    refs: dict[str, tuple[str, str]] = {}
    for i, r in enumerate(read_jsonl(rpath, required=("question_id", "choices")), start=1):
        choices = r["choices"]
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
            raise DataError(f"{rpath}: row {i}: column 'choices' must be a list of objects")
        refs[str(r["question_id"])] = _pair(str(rpath), i, choices[0].get("turns"), "choices[0].turns")
    out: list[MTQuestion] = []
    seen: set[str] = set()
    for i, r in enumerate(read_jsonl(qpath, required=("question_id", "category", "turns")), start=1):
        qid = str(r["question_id"])
        if qid in seen:
            raise DataError(f"{qpath}: row {i}: duplicate id {qid!r} in column 'question_id'")
        seen.add(qid)
        turns = _pair(str(qpath), i, r["turns"], "column 'turns'")
        if not all(t.strip() for t in turns):
            raise DataError(f"{qpath}: row {i}: empty prompt in column 'turns'")
        ref = None
        if r["category"] in NEED_REFERENCE:
            if qid not in refs:
                raise DataError(f"{rpath}: no reference answer for question {qid} ({r['category']})")
            ref = refs[qid]
        out.append(MTQuestion(qid, str(r["category"]), turns, ref))
    return out


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


@dataclass
class MTBench:
    """MT-Bench generation and judge grading."""

    data: DataSource
    max_new_tokens: int = 1024
    name: str = "mt-bench"
    kind: BenchmarkKind = "capability"
    metric: str = "score"
    _loaded: tuple[list[MTQuestion], list[DataFile]] | None = field(default=None, init=False, repr=False)

    def _load(self) -> tuple[list[MTQuestion], list[DataFile]]:
        if self._loaded is None:
            root = self.data.data_dir
            if root is None or not (root / QUESTIONS).is_file():
                where = f"{root / QUESTIONS} not found" if root else "no --data-dir given"
                raise DataError(
                    f"mt-bench: {where}; MT-Bench is not on the hub as a dataset: copy "
                    "fastchat/llm_judge/data/mt_bench/ from lm-sys/FastChat to "
                    "<data-dir>/mt-bench/mt_bench/"
                )
            self._loaded = (read_questions(root), [data_file(root / QUESTIONS), data_file(root / REFERENCES)])
        return self._loaded

    def questions(self, limit: int | None = None, seed: int = 0) -> list[MTQuestion]:
        """All questions, or a seeded sample of ``limit`` stratified by category."""
        return stratified(self._load()[0], limit, seed, group=lambda q: q.category,
                          ident=lambda q: q.id, salt="mt-bench")

    def samples(self, split: Split = "test", *, limit: int | None = None, seed: int = 0) -> list[Sample]:
        """First turns as samples (for listing and inspection); nothing for training."""
        if split == "train":
            return []
        return [Sample(q.id, q.turns[0], "comply", {"category": q.category})
                for q in self.questions(limit, seed)]

    def data_files(self) -> list[DataFile]:
        """question.jsonl and the reference answers, with sha256."""
        return list(self._load()[1])

    def size(self) -> int:
        """Questions: counted when the data is there, else the published 80."""
        root = self.data.data_dir
        return len(self._load()[0]) if root is not None and (root / QUESTIONS).is_file() else SIZE

    def evaluate(self, policy: Policy, ctx: EvalContext) -> dict[str, Any]:
        """Two generated turns per question, each graded by the judge; skipped without one."""
        grader = ctx.judge if isinstance(ctx.judge, Grader) else None
        if grader is None:
            judge = getattr(ctx.judge, "name", None)
            warn(f"mt-bench skipped: {SKIPPED}" + (f"; judge {judge!r} cannot grade" if judge else ""))
            return {"skipped": SKIPPED, "n": 0}
        qs = self.questions(ctx.limit, ctx.seed)
        params = GenParams(max_new_tokens=self.max_new_tokens, temperature=0.0, seed=ctx.seed)
        total = 4 * len(qs)
        done = [0]

        def tick(k: int) -> None:
            done[0] += k
            ctx.progress(done[0], total)

        first = self._generate(policy, [Prompt.user(q.turns[0]) for q in qs], params, ctx, tick)
        second_prompts = [
            Prompt((Message("user", q.turns[0]), Message("assistant", a), Message("user", q.turns[1])))
            for q, a in zip(qs, first, strict=True)
        ]
        second = self._generate(policy, second_prompts, params, ctx, tick)
        jobs: list[tuple[int, Turn, Sequence[Turn]]] = []
        for q, a1, a2 in zip(qs, first, second, strict=True):
            r1, r2 = q.references if q.references else (None, None)
            t1 = Turn(q.turns[0], a1, r1)
            jobs.append((1, t1, ()))
            jobs.append((2, Turn(q.turns[1], a2, r2), (t1,)))
        keys = [
            f"grade/{grader.name}@{grader.version}/{PROMPT_VERSION}/{q.id}/t{turn}/"
            + _hash([asdict(t), [asdict(h) for h in hist]])
            for q, (turn, t, hist) in zip([q for q in qs for _ in (1, 2)], jobs, strict=True)
        ]
        ratings = self._grade(grader, jobs, keys, ctx, tick)
        by_turn: dict[int, list[float]] = {1: [], 2: []}
        for (turn, _, _), rating in zip(jobs, ratings, strict=True):
            if rating is not None:
                by_turn[turn].append(rating)
        return {
            "score_turn1": _mean(by_turn[1]),
            "score_turn2": _mean(by_turn[2]),
            "score": _mean(by_turn[1] + by_turn[2]),
            "unparsed": sum(1 for r in ratings if r is None),
            "n": len(qs),
        }

    def _generate(self, policy: Policy, prompts: list[Prompt], params: GenParams, ctx: EvalContext,
                  tick: Callable[[int], None]) -> list[str]:
        """Answers in order, from the cache where possible (one key per conversation)."""
        keys = [f"answer/{_hash({'messages': p.to_json(), 'params': asdict(params)})}" for p in prompts]
        out: list[str | None] = []
        for key in keys:
            hit = ctx.kv.get(key)
            out.append(str(hit["text"]) if isinstance(hit, dict) else None)
        todo = [i for i, v in enumerate(out) if v is None]
        tick(len(prompts) - len(todo))
        if todo:
            def on_batch(idx: list[int], comps: list[Any]) -> None:
                for j, c in zip(idx, comps, strict=True):
                    ctx.kv.put(keys[todo[j]], {"text": c.text})
                    out[todo[j]] = c.text
                tick(len(idx))

            comps = policy.generate([prompts[i] for i in todo], params, batch_size=ctx.batch_size,
                                    on_batch=on_batch)
            for j, c in enumerate(comps):  # policies that ignore on_batch
                if out[todo[j]] is None:
                    ctx.kv.put(keys[todo[j]], {"text": c.text})
                    out[todo[j]] = c.text
        return [v if v is not None else "" for v in out]

    def _grade(self, grader: Grader, jobs: list[tuple[int, Turn, Sequence[Turn]]], keys: list[str],
               ctx: EvalContext, tick: Callable[[int], None]) -> list[float | None]:
        """Ratings in job order; cached per key, computed with the grader's concurrency."""
        out: list[float | None] = [None] * len(jobs)
        todo: list[int] = []
        for i, key in enumerate(keys):
            hit = ctx.kv.get(key)
            if isinstance(hit, dict):
                out[i] = None if hit["rating"] is None else float(hit["rating"])
            else:
                todo.append(i)
        tick(len(jobs) - len(todo))

        def one(i: int) -> float | None:
            turn, t, hist = jobs[i]
            return grader.grade(t.question, t.answer, t.reference, turn, hist)

        workers = max(1, int(getattr(grader, "grade_concurrency", 1) or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, rating in zip(todo, pool.map(one, todo), strict=True):
                value = None if rating is None else float(rating)
                ctx.kv.put(keys[i], {"rating": value})
                out[i] = value
                tick(1)
        return out


def create(data: DataSource) -> MTBench:
    """Factory: greedy decoding, 1024 new tokens per turn."""
    return MTBench(data)


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``mt-bench``."""
    register(
        "mt-bench", create, summary="MT-Bench 80 two-turn questions, 1-10 by an LLM judge",
        aliases=("mtbench",), kind="capability", metric="score", size=SIZE,
        local=[QUESTIONS, REFERENCES], hub=[],
    )
