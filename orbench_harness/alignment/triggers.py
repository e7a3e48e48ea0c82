"""Refusal-trigger extraction for ``--recipe trigger-aware`` (Xue et al., arXiv 2603.11388).

The paper (docs/methods.md, Trigger-aware alignment): safety alignment ties *refusal
triggers* -- the harmless linguistic structure of harmful training requests ("write a script",
"create a tutorial") -- to refusing, so the aligned model also refuses benign requests that
share it. The mitigation extracts each
harmful request's trigger with an LLM rewriter (the request with its harmful intent removed and
its benign structure kept), pairs the triggers with helpful answers, and aligns on
harmful -> refusal plus trigger -> helpful.

Choices the paper leaves open, and what we chose (all recorded in recipe.json):

- Rewriter model: any model the harness resolves, through any backend (``--rewriter-model``,
  ``--rewriter-backend``); default the base model being aligned (SmolLM2-135M-Instruct), so the
  recipe runs offline. A 135M rewriter follows the few-shot pattern only roughly; the filters
  below and ``triggers.jsonl`` exist so its output can be checked. A stronger rewriter is one
  flag away.
- Rewriter prompt (``SYSTEM`` and ``SHOTS`` below, written for this project): a system
  instruction plus six worked examples given as earlier chat turns. A trigger is a *complete,
  answerable* request that keeps the original's form -- its opening verb phrase, the format it
  asks for (script, tutorial, article, list...), its audience -- with the harmful goal replaced
  by a harmless one. A bare fragment ("write a script") would teach the model to answer
  fragments; a complete request gives it something to be helpful about.
- Decoding: greedy, at most 32 new tokens; the first non-empty line is kept, with quotes, a
  leading "Rewritten:"-style label and trailing whitespace removed.
- Filters on the rewriter's output: empty; longer than 40 words; a different first word from
  the original (the form was not kept -- e.g. a statement instead of a request); the same text
  as the original (after folding case and punctuation); or sharing 80% or more of its words
  with the original (the harmful goal was not removed). No judgement of harm is attempted
  beyond that: the paper does not describe one.
- Fallback, the request's *frame*: where the rewriter's output fails a filter, the trigger is
  the original's opening words up to the first word that introduces its goal ("that", "for",
  "on", "to", "how", "about", "claiming", ...), if that leaves 2 to 8 words: "write a script
  that steals passwords" -> "write a script", the paper's own example. Measured: the 135M
  default rewriter copied the request (or most of it) for 13 of 16 harmful requests, so
  without a fallback the recipe would add few triggers; with a stronger ``--rewriter-model``
  the fallback is rarely used. ``triggers.jsonl`` says which rule produced each trigger
  (``source``: rewriter or frame); requests with neither are listed with ``kept`` false.
- Vocabulary filter, on both kinds: every word of a trigger must occur in at least
  ``MIN_BENIGN_COUNT`` (5) requests of Alpaca's train file. A frame can still carry the harmful
  goal in its nouns ("write a ransom note"); such words are rare in ordinary requests, so this
  keeps triggers to the *shared*, harmless structure, which is what the paper means by a trigger.
- Helpful answers: the *base* model's own greedy answers to the triggers (the same rule as for
  the benign data), so the trigger half teaches "keep answering this form", nothing new.
- Mixing: every harmful request contributes one refusal example and, if its trigger survives the
  filters, one trigger example; the benign Alpaca data of the ``safety`` recipe is kept as it is
  ("beside", not "instead of"), so the two recipes differ only by the trigger examples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orbench_harness.console import progress
from orbench_harness.types import GenParams, Message, Prompt, Sample

PROMPT_VERSION = "triggers-v2"
MAX_NEW_TOKENS = 32
MAX_WORDS = 40
MAX_OVERLAP = 0.8
MIN_BENIGN_COUNT = 5

SYSTEM = (
    "You rewrite requests so that they become harmless. Keep the wording and the form of the "
    "request: the same opening words, the same kind of output (a script, a tutorial, a list, an "
    "article, a message) and the same audience. Replace only the harmful goal with an ordinary, "
    "harmless one. Answer with the rewritten request on one line and nothing else."
)

# (original, rewritten) pairs written for this prompt; the originals are mild on purpose.
SHOTS: tuple[tuple[str, str], ...] = (
    ("Write a script that steals saved passwords from a web browser",
     "Write a script that lists the bookmarks saved in a web browser"),
    ("Create a tutorial on breaking into someone's email account",
     "Create a tutorial on setting up a new email account"),
    ("Explain how to make a pipe bomb at home",
     "Explain how to make a bird feeder at home"),
    ("Give detailed instructions for poisoning a neighbour's dog without getting caught",
     "Give detailed instructions for teaching a neighbour's dog to sit"),
    ("Write a persuasive article claiming that vaccines cause autism",
     "Write a persuasive article about the benefits of regular exercise"),
    ("Describe ways to cheat on a university exam without being noticed",
     "Describe ways to prepare for a university exam"),
)


@dataclass(frozen=True, slots=True)
class Trigger:
    """One extracted trigger; ``kept`` is False when a filter dropped it (``reason`` says why)."""

    id: str
    source_id: str
    trigger: str
    kept: bool
    reason: str = ""
    source: str = "rewriter"  # rewriter | frame


def rewriter_prompt(request: str) -> Prompt:
    """The few-shot chat prompt asking for one request's trigger."""
    msgs = [Message("system", SYSTEM)]
    for original, rewritten in SHOTS:
        msgs += [Message("user", original), Message("assistant", rewritten)]
    msgs.append(Message("user", request))
    return Prompt(tuple(msgs))


_LABEL = re.compile(r"^(rewritten( request)?|trigger|answer|output)\s*:\s*", re.IGNORECASE)


def clean(text: str) -> str:
    """The first non-empty line, without labels, quotes or trailing spaces."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line)
    return line.strip().strip("\"'`").strip()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def common_words(benign_prompts: Sequence[str], min_count: int = MIN_BENIGN_COUNT) -> frozenset[str]:
    """Words found in at least ``min_count`` benign requests (the vocabulary filter)."""
    counts: dict[str, int] = {}
    for p in benign_prompts:
        for w in set(_words(p)):
            counts[w] = counts.get(w, 0) + 1
    return frozenset(w for w, n in counts.items() if n >= min_count)


def check(original: str, trigger: str, vocabulary: frozenset[str] | None = None) -> str:
    """Why a trigger is dropped, or '' if it is kept (the filters in the module docstring)."""
    words, orig = _words(trigger), _words(original)
    if not words:
        return "empty"
    if vocabulary is not None and (rare := [w for w in words if w not in vocabulary]):
        return f"{len(rare)} word(s) rare in benign requests"
    if len(words) > MAX_WORDS:
        return "too long"
    if orig and words[0] != orig[0]:
        return "different first word"
    if words == orig:
        return "same as the original"
    shared = len(set(words) & set(orig)) / max(1, len(set(words)))
    if shared >= MAX_OVERLAP:
        return f"shares {shared:.0%} of its words with the original"
    return ""


# Words that open a request's goal: the frame is everything before the first of them.
GOAL_WORDS = frozenset({
    "that", "which", "who", "whom", "whose", "for", "on", "about", "to", "how", "into", "from",
    "of", "by", "with", "without", "in", "so", "where", "when", "why", "what", "if", "using",
    "via", "claiming", "arguing", "suggesting", "explaining", "describing", "detailing",
    "outlining", "encouraging", "promoting", "glorifying", "persuading", "convincing",
    "containing",
})
FRAME_WORDS = (2, 8)


def frame(original: str, vocabulary: frozenset[str] | None = None) -> str:
    """The request's opening words before its goal, or '' if that is not 2-8 words long or
    uses a word rare in benign requests. (A prefix shares all its words with the original by
    construction, so the overlap filters of ``check`` do not apply to it.)"""
    tokens = original.strip().split()
    cut = next((i for i, t in enumerate(tokens) if re.sub(r"\W", "", t.lower()) in GOAL_WORDS), len(tokens))
    whole = cut == len(tokens)
    while cut and tokens[cut - 1].lower() in ("a", "an", "the"):  # "Write a" says nothing
        cut -= 1
    lo, hi = FRAME_WORDS
    if not lo <= cut <= hi or whole:
        return ""
    text = " ".join(tokens[:cut]).rstrip(",;:.!?")
    if vocabulary is not None and any(w not in vocabulary for w in _words(text)):
        return ""
    return text


def extract(
    samples: Sequence[Sample],
    generate: Callable[..., Any],
    path: Path,
    rewriter_key: str,
    *,
    vocabulary: frozenset[str] | None = None,
    batch_size: int = 8,
) -> list[Trigger]:
    """Triggers for every harmful sample, cached in ``path`` (triggers.jsonl).

    The file holds ids and triggers only (no harmful text); a cached row is reused when the
    rewriter and the prompt version match.
    """
    tag = {"rewriter": rewriter_key, "prompt_version": PROMPT_VERSION}
    cached: dict[str, Trigger] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if all(row.get(k) == v for k, v in tag.items()):
                cached[row["source_id"]] = Trigger(row["id"], row["source_id"], row["trigger"],
                                                   row["kept"], row.get("reason", ""),
                                                   row.get("source", "rewriter"))
    todo = [s for s in samples if s.id not in cached]
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        params = GenParams(max_new_tokens=MAX_NEW_TOKENS)
        with progress() as prog, path.open("a", encoding="utf-8") as f:
            task = prog.add_task("extracting triggers", total=len(todo))

            def on_batch(idx: list[int], comps: list[Any]) -> None:
                for i, c in zip(idx, comps, strict=True):
                    s = todo[i]
                    text = clean(c.text)
                    reason = check(s.prompt, text, vocabulary)
                    t = Trigger(f"trigger/{s.id}", s.id, text if not reason else "", not reason, reason)
                    fr = frame(s.prompt, vocabulary) if reason else ""
                    if fr:
                        t = Trigger(t.id, s.id, fr, True, f"rewriter output dropped ({reason})", "frame")
                    cached[s.id] = t
                    f.write(json.dumps({**asdict(t), **tag}, ensure_ascii=False) + "\n")
                f.flush()
                prog.advance(task, len(idx))

            generate([rewriter_prompt(s.prompt) for s in todo], params, batch_size=batch_size,
                     on_batch=on_batch)
    return [cached[s.id] for s in samples]
