"""MT-Bench single-answer grading: the contract between the benchmark and an LLM judge.

The benchmark (``benchmarks/mt_bench.py``) asks ``ctx.judge`` for a 1-10 score per turn when the
judge implements :class:`Grader`. A judge plugin builds its request with
:func:`grading_messages` and reads the reply with :func:`parse_rating`, so the rubric and the
parsing rule live in one place and a judge's cache version can include :data:`PROMPT_VERSION`.

The decision rules follow FastChat's single-answer grading (lm-sys/FastChat @ 0e6d3e4b,
``fastchat/llm_judge/data/judge_prompts.jsonl``: ``single-v1``, ``single-math-v1`` and their
``-multi-turn`` variants; Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot
Arena", 2023): the judge explains first and then rates 1-10 as ``[[N]]``; general questions
are judged on helpfulness, relevance, accuracy, depth, creativity and detail; questions with a
reference answer (math, reasoning, coding) are judged on correctness against the reference;
on the second turn only the reply to the second question is graded. The prompt texts below are
written in this project's own words.

Parsing is stricter than FastChat's (which also accepts a single-bracket ``[N]`` and takes the
first match): only ``[[N]]`` counts, several *different* ``[[N]]`` values or a value outside
1-10 make the output unparsed, and an unparsed output is counted, never guessed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

SYSTEM = (
    "You are an impartial grader of answers written by AI assistants. You judge content, not "
    "length or style, and you follow the output format exactly."
)

GENERAL_RULES = (
    "Grade how well the assistant's answer serves the user's question. Consider whether it is "
    "helpful, stays on topic, is factually correct, goes into appropriate depth, shows "
    "creativity where the task invites it, and gives enough detail. Start with a brief "
    "explanation of your judgement and stay objective. Finish with a score from 1 (very poor) "
    "to 10 (excellent) written as the number inside double square brackets, for example: "
    "Score: [[6]]"
)

REFERENCE_RULES = (
    "Grade whether the assistant's answer is correct and helpful. A reference answer is "
    "provided: first compare the assistant's answer with it, point out every mistake and say "
    "what the correct statement would be. Stay objective. Finish with a score from 1 (very "
    "poor) to 10 (excellent) written as the number inside double square brackets, for example: "
    "Score: [[6]]"
)

LAST_TURN_RULE = (
    "The conversation below has more than one user turn. Grade only the assistant's reply to "
    "the final user turn; the earlier turns are there for context."
)


@dataclass(frozen=True, slots=True)
class Turn:
    """One question of a conversation with the assistant's answer (and a reference, if any)."""

    question: str
    answer: str
    reference: str | None = None


@runtime_checkable
class Grader(Protocol):
    """What a judge implements to score MT-Bench answers (the ``llm`` judge does).

    ``grade`` returns the 1-10 rating, or None when the judge's output could not be parsed
    (counted by the benchmark as unparsed, never replaced by a guess). Transport failures
    should raise (e.g. ``JudgeUnavailable``) so that nothing is cached. A grader may define an
    integer attribute ``grade_concurrency``: that many ``grade`` calls then run in parallel
    threads (default 1, one at a time). ``name`` and ``version`` (from the Judge protocol) are
    part of the cache key of every grade.
    """

    name: str
    version: str

    def grade(
        self,
        question: str,
        answer: str,
        reference: str | None = None,
        turn: int = 1,
        history: Sequence[Turn] = (),
    ) -> float | None:
        """Rate ``answer`` to ``question`` (turn ``turn``; ``history`` = the earlier turns)."""
        ...


def _block(title: str, text: str) -> str:
    return f"<<{title}>>\n{text}\n<<end of {title}>>"


def _transcript(turns: Sequence[Turn], *, use_reference: bool) -> str:
    parts = []
    for i, t in enumerate(turns, start=1):
        reply = (t.reference or "") if use_reference else t.answer
        who = "Reference" if use_reference else "Assistant"
        parts.append(f"User (turn {i}):\n{t.question}\n\n{who} (turn {i}):\n{reply}")
    return "\n\n".join(parts)


def grading_messages(
    question: str,
    answer: str,
    *,
    reference: str | None = None,
    history: Sequence[Turn] = (),
) -> list[dict[str, str]]:
    """Chat messages (system + user) asking a judge to grade one turn.

    With a ``reference`` the correctness rubric is used (and the references of earlier turns,
    when known, are shown too); with ``history`` the whole conversation is shown and only the
    last reply is graded.
    """
    rules = REFERENCE_RULES if reference is not None else GENERAL_RULES
    turns = [*history, Turn(question, answer, reference)]
    sections = [rules]
    if history:
        sections.append(LAST_TURN_RULE)
    if reference is not None:
        if history:
            sections.append(_block("reference conversation", _transcript(turns, use_reference=True)))
        else:
            sections.append(_block("reference answer", reference))
    if history:
        sections.append(_block("conversation", _transcript(turns, use_reference=False)))
    else:
        sections.append(_block("question", question))
        sections.append(_block("assistant's answer", answer))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(sections)}]


RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")


def parse_rating(text: str) -> float | None:
    """The ``[[N]]`` rating in a judge's output, or None when absent, ambiguous or out of 1-10."""
    values = {float(m) for m in RATING.findall(text)}
    if len(values) != 1:
        return None
    (value,) = values
    return value if 1.0 <= value <= 10.0 else None


PROMPT_VERSION = hashlib.sha256(
    "\0".join((SYSTEM, GENERAL_RULES, REFERENCE_RULES, LAST_TURN_RULE, RATING.pattern)).encode()
).hexdigest()[:12]
