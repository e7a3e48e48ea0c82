"""``orbench-borderline``: 10,000 OR-Bench-80k look-alike prompts, a large pseudo-harmful pool.

ACTOR's pseudo-harmful training queries come from the scored sets' train splits, 25 each
(XSTest, SCOPE, OR-Bench-Hard; PHTest is hub-only here), so it sees 75 look-alikes. Whether
that is too few for a trained block to learn what separates a look-alike from a harmful request
is a question of data, and this pool answers it: OR-Bench-80k (Cui et al., ICML 2025) is the
set OR-Bench-Hard-1K was selected from (the prompts most models refused), so its prompts are
look-alikes of the same kind, a hundred times as many. Usable as an ACTOR pool
(``--method-arg pseudo_sources=...,orbench-borderline``) and by ``probes/separability.py``
(``--add-lookalikes orbench-borderline:N``). Scored by compliance rate, but training-only: it is in no suite.

Source: local only, ``or-bench/or-bench-80k-subsets/borderline_train_instructions_10000.json``
(a JSON list of ``{"query": ...}``; 10,000 rows, 9,878 distinct; CC-BY-4.0), the
file ``AlphaLab-USTC/AlphaSteer @ 20d65b68 : data/instructions/train_val/`` drew from OR-Bench-80k.
The hub holds the whole 80k (``bench-llm/or-bench`` config ``or-bench-80k``), not this draw, so
the two would not be the same pool; provide the file. Ids are 1-based row numbers.

Decontamination: 1,028 of the file's distinct prompts are OR-Bench-Hard-1K prompts verbatim
(all of ``borderline_val.json``'s 291 are), so OR-Bench-Hard's file is required beside it and
every prompt it holds is dropped, as is any prompt whose word set overlaps one of its prompts
with Jaccard similarity >= 0.5 (a near-paraphrase from the same seed request; 111 more). The
other scored look-alike sets (XSTest, SCOPE, OKTest) are checked the same way when their files
are present (none matches). Duplicates are kept once: 8,739 prompts remain.

Split: everything is ``train`` (a training source; its test split is empty).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from orbench_benchmarks.harmful_train import normalise
from orbench_benchmarks.oktest import COLUMNS as OKTEST_COLUMNS
from orbench_benchmarks.oktest import LOCAL as LOCAL_OKTEST
from orbench_benchmarks.orbench import HARD, LOCAL_HARD
from orbench_benchmarks.scope import COLUMNS as SCOPE_COLUMNS
from orbench_benchmarks.scope import LOCAL as LOCAL_SCOPE
from orbench_benchmarks.xstest import LOCAL as LOCAL_XSTEST
from orbench_benchmarks.xstest import read_file as read_xstest
from orbench_harness.benchkit import Columns, Source, SplitRule, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

LOCAL = "or-bench/or-bench-80k-subsets/borderline_train_instructions_10000.json"
COLUMNS = Columns(prompt="query", expected="comply")
JACCARD = 0.5  # word-set overlap at which a prompt counts as a paraphrase of a scored one
# Optional scored sets: (path, reader).
OPTIONAL = ((LOCAL_XSTEST, read_xstest), (LOCAL_SCOPE, SCOPE_COLUMNS.read_jsonl),
            (LOCAL_OKTEST, OKTEST_COLUMNS.read_csv))


def words(text: str) -> frozenset[str]:
    """The normalised text's words, as a set."""
    return frozenset(normalise(text).split())


class NearDuplicates:
    """Finds, for a prompt, whether a scored prompt shares most of its words.

    An inverted index over the scored prompts' words keeps the check linear in practice:
    only scored prompts sharing a word are compared, and words in more than ``common`` of
    them (``how``, ``the``) are not used to find candidates (they cannot make two prompts
    similar on their own).
    """

    def __init__(self, scored: Iterable[str], threshold: float = JACCARD, common: int = 200) -> None:
        self.threshold = threshold
        self.exact = {normalise(t) for t in scored}
        self.sets = [words(t) for t in self.exact]
        index: dict[str, list[int]] = defaultdict(list)
        for i, ws in enumerate(self.sets):
            for w in ws:
                index[w].append(i)
        self.index = {w: ids for w, ids in index.items() if len(ids) <= common}

    def __contains__(self, text: str) -> bool:
        if normalise(text) in self.exact:
            return True
        mine = words(text)
        shared: Counter[int] = Counter(i for w in mine for i in self.index.get(w, ()))
        unindexed = sum(w not in self.index for w in mine)
        t = self.threshold
        for i, n in shared.items():
            # J >= t needs |A & B| >= t (|A| + |B|) / (1 + t); the shared indexed words plus
            # A's unindexed ones bound |A & B| from above, so most candidates stop here.
            if (n + unindexed) * (1 + t) < t * (len(mine) + len(self.sets[i])):
                continue
            if len(mine & self.sets[i]) / len(mine | self.sets[i]) >= t:
                return True
        return False


def read_local(root: Path) -> list[Sample]:
    """The pool minus duplicates and minus anything near a scored look-alike prompt."""
    scored = [s.prompt for s in HARD.read_csv(root / LOCAL_HARD)]
    for rel, reader in OPTIONAL:
        if (root / rel).is_file():
            scored += [s.prompt for s in reader(root / rel)]
    banned = NearDuplicates(scored)
    seen: set[str] = set()
    out: list[Sample] = []
    for s in COLUMNS.read_json(root / LOCAL):
        key = normalise(s.prompt)
        if key in seen or s.prompt in banned:
            continue
        seen.add(key)
        out.append(s)
    return out


def source() -> Source:
    """Local files only; OR-Bench-Hard's file is required for decontamination."""
    return Source(
        (LOCAL, LOCAL_HARD), read_local,
        hub_note="the 10,000-prompt draw is AlphaSteer's, not a hub table",
        optional=tuple(rel for rel, _ in OPTIONAL),
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``orbench-borderline`` (training source)."""
    register_prompts(
        register, "orbench-borderline", kind="over_refusal", source=source, size=8739,
        rule=SplitRule(all_train=True), training_only=True,
        summary="OR-Bench-80k look-alike prompts, decontaminated (pseudo-harmful pool, all train)",
    )
