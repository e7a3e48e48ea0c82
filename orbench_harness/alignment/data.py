"""Training data for the alignment recipes: which prompts, which answers, which tokens count.

- Harmful requests come from the ``harmful-train`` benchmark (HarmBench standard behaviours,
  TDC 2023, MaliciousInstruct, decontaminated against every scored harmful set), never from
  AdvBench, HEx-PHI or JailbreakBench, which the organism is evaluated on. Each is paired with
  one of the refusals in ``refusals.py``.
- Benign requests are drawn from Alpaca's *train* file (``alpaca`` benchmark, split ``train``)
  and paired with the base model's own greedy answers. Answering with the model's own words
  keeps the fine-tune from teaching new content or style: the only thing the benign half
  teaches is "keep answering as before", so utility (MMLU, perplexity) moves as little as
  possible. The answers are generated once and cached in the output directory
  (``own_answers.jsonl``, keyed by prompt, model and length), so a rerun or a second recipe
  in the same directory does not regenerate them.
- The loss is masked to the answer tokens: the model learns what to say after a prompt, not to
  predict prompts (which would teach it the harmful requests' wording).

Everything is a pure function of the data files and the seed: prompts are sorted by id and then
drawn with ``random.Random(seed)``.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from orbench_harness.alignment.refusals import refusal_for
from orbench_harness.console import progress
from orbench_harness.data import DataSource
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.supervised import IGNORE, Encoded
from orbench_harness.registry import Registry
from orbench_harness.types import GenParams, Prompt, Sample

Kind = Literal["harmful", "benign", "trigger"]


@dataclass(frozen=True, slots=True)
class Example:
    """One training conversation: a user request and the answer to learn."""

    id: str
    kind: Kind
    prompt: str
    answer: str
    complete: bool = True  # the answer ended (append EOS) rather than being cut at a length


def benchmark_samples(name: str, data_dir: Path | None, split: str = "train") -> list[Sample]:
    """A benchmark's samples through the plugin registry (the same files runs read)."""
    bench: Any = Registry().create("benchmarks", name, DataSource(data_dir))
    try:
        samples: list[Sample] = bench.samples(split, seed=0)
    except Exception as e:  # DataError and friends: name the flag to fix
        raise HarnessError(f"alignment data: {e} (pass --data-dir DIR; docs/data.md gives its layout)") from None
    return samples


def draw(samples: Sequence[Sample], n: int | None, seed: int, salt: str) -> list[Sample]:
    """``n`` samples (all when None) drawn reproducibly: sort by id, then a seeded shuffle."""
    pool = sorted(samples, key=lambda s: s.id)
    random.Random(f"{seed}:{salt}").shuffle(pool)
    return pool if n is None else pool[:n]


WORD = re.compile(r"[a-z][a-z'-]+")


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def wording_weights(harmful: Sequence[Sample], benign: Sequence[Sample], min_count: int = 3) -> dict[str, float]:
    """Words over-represented in the harmful requests: smoothed log document-frequency ratio,
    harmful over benign, for words in at least ``min_count`` harmful requests; positive only.

    These are the words a small model can learn as a refusal shortcut ("step-by-step",
    "detailed", "persuasive", "convince", "script") as well as the harmful content words.
    """
    dh = Counter(w for s in harmful for w in _words(s.prompt))
    db = Counter(w for s in benign for w in _words(s.prompt))
    nh, nb = len(harmful) + 1, len(benign) + 1
    weights = {w: math.log((dh[w] + 0.5) / nh) - math.log((db[w] + 0.5) / nb)
               for w in dh if dh[w] >= min_count}
    return {w: x for w, x in weights.items() if x > 0}


def draw_benign(
    pool: Sequence[Sample], n: int, seed: int, matched: int = 0, harmful: Sequence[Sample] = ()
) -> list[Sample]:
    """``n`` benign requests: the ``matched`` whose wording is closest to the harmful requests'
    (sum of ``wording_weights`` over their distinct words; ties by id), then ``n - matched``
    drawn at random from the rest (``draw``).

    Why: with a random draw the benign half rarely uses the harmful half's phrasing ("Write a
    detailed step-by-step guide", "a persuasive essay to convince"), so the cheapest rule a
    small model can learn is "refuse that phrasing", and plain requests phrased so
    (UltraChat's "Write a detailed blog post about space travel") are refused. Benign requests
    that share the phrasing make the content, not the wording, the thing that decides.
    """
    if not 0 <= matched <= n:
        raise HarnessError(f"benign matched {matched} must be between 0 and --n-benign {n}")
    if matched == 0:
        return draw(pool, n, seed, "benign")
    weights = wording_weights(harmful, pool)
    scored = sorted(pool, key=lambda s: (-sum(weights.get(w, 0.0) for w in _words(s.prompt)), s.id))
    top = scored[:matched]
    taken = {s.id for s in top}
    # The rest in the random draw's own order, so matched=0 and matched>0 share their random part.
    return top + [s for s in draw(pool, None, seed, "benign") if s.id not in taken][: n - matched]


def read_id_list(path: Path) -> list[str]:
    """Sample ids, one per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise HarnessError(f"cannot read id list {path}: {e.strerror}") from None
    ids = [line.split("#", 1)[0].strip() for line in lines]
    return [i for i in ids if i]


def extra_benign(pool: Sequence[Sample], ids: Sequence[str], taken: set[str]) -> list[Sample]:
    """The pool's samples named by ``ids``, in that order, without duplicates or those already
    ``taken`` by the random draw.

    Why: the benign requests a first build *refuses* (mined from the Alpaca train requests it
    never saw; ``probes/mine_refusals.py``) lie on its learned decision line, where a random
    draw seldom puts an example. Adding them tests whether the line, rather than the
    representation, is what keeps plain requests refused. (On the organism it does not: the
    build answers harmful requests too and falls far below the line; docs/results/organism.md.) An id
    the pool lacks is an error: a list mined from another split or file would otherwise shrink
    silently, and a held-out request would be trained on.
    """
    by_id = {s.id: s for s in pool}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise HarnessError(f"id list: {len(unknown)} id(s) are not Alpaca train requests "
                           f"(first: {unknown[0]!r})")
    seen = set(taken)
    out: list[Sample] = []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(by_id[i])
    return out


def harmful_examples(samples: Sequence[Sample], seed: int) -> list[Example]:
    """Harmful requests paired with refusals (the refusal is chosen by id and seed)."""
    return [Example(f"harmful/{s.id}", "harmful", s.prompt, refusal_for(s.id, seed)) for s in samples]


# ---------------------------------------------------------------- the model's own answers


class AnswerCache:
    """Greedy answers of one model, cached in a JSON-lines file (appended as produced)."""

    def __init__(self, path: Path, model_key: str, max_new_tokens: int) -> None:
        self.path = path
        self.tag = {"model": model_key, "max_new_tokens": max_new_tokens}
        self.max_new_tokens = max_new_tokens
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: regenerate that one
                    continue
                if row.get("model") == model_key and row.get("max_new_tokens") == max_new_tokens:
                    self.rows[row["prompt"]] = row

    def answers(
        self,
        prompts: Sequence[str],
        generate: Callable[..., Any],
        *,
        batch_size: int = 16,
        label: str = "own answers",
    ) -> dict[str, tuple[str, bool]]:
        """``prompt -> (answer, complete)`` for every prompt, generating only the missing."""
        todo = list(dict.fromkeys(p for p in prompts if p not in self.rows))
        if todo:
            params = GenParams(max_new_tokens=self.max_new_tokens)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with progress() as prog, self.path.open("a", encoding="utf-8") as f:
                task = prog.add_task(label, total=len(todo))

                def on_batch(idx: list[int], comps: list[Any]) -> None:
                    for i, c in zip(idx, comps, strict=True):
                        row = {"prompt": todo[i], "answer": c.text,
                               "complete": c.finish_reason == "stop", **self.tag}
                        self.rows[todo[i]] = row
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    f.flush()
                    prog.advance(task, len(idx))

                generate([Prompt.user(p) for p in todo], params, batch_size=batch_size, on_batch=on_batch)
        return {p: (self.rows[p]["answer"], bool(self.rows[p]["complete"])) for p in prompts}


def answered_examples(
    samples: Sequence[Sample], answers: dict[str, tuple[str, bool]], kind: Kind, prefix: str
) -> list[Example]:
    """Prompts paired with cached answers; empty answers are dropped (nothing to learn)."""
    out = []
    for s in samples:
        text, complete = answers[s.prompt]
        if text.strip():
            out.append(Example(f"{prefix}/{s.id}", kind, s.prompt, text, complete))
    return out


# ---------------------------------------------------------------- tokens


def encode(handle: Any, ex: Example, max_answer_tokens: int) -> Encoded:
    """Chat-template prompt (no loss) + answer tokens (+ EOS when the answer ended)."""
    prompt_ids = list(handle.encode_prompt(Prompt.user(ex.prompt)))
    answer_ids = list(handle.encode(ex.answer))[:max_answer_tokens]
    eos = handle.tokenizer.eos_token_id
    if ex.complete and len(answer_ids) < max_answer_tokens and eos is not None:
        answer_ids.append(int(eos))
    ids = prompt_ids + answer_ids
    labels = [IGNORE] * len(prompt_ids) + answer_ids
    return Encoded(ex.id, tuple(ids), tuple(labels))


def write_examples(path: Path, examples: Sequence[Example]) -> None:
    """The assembled training set, for inspection and for recipe.json's data hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(asdict(ex), ensure_ascii=False) + "\n")
