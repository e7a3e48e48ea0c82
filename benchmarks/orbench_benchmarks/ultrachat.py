"""``ultrachat``: UltraChat evaluation questions, the benign training pool of ACTOR.

ACTOR (Dabas et al., ICML 2025; docs/methods.md, ACTOR) trains on 210 benign UltraChat
prompts, 30 from each of 7 topic categories. The hub's UltraChat dialogues
(``stingning/ultrachat``) carry no topic labels, so the harness uses UltraChat's own labelled
evaluation questions instead: 385 questions in 10 classes (Vicuna 80, Writing 80,
Professional Knowledge-Biology 15, seven others 30 each). This is a training source, not a
scored benchmark; it is in no suite.

Sources:
- local: ``ultrachat/ultra_eval.json`` (a list of objects with class, data; MIT), the file
  ``thunlp/UltraChat @ 1f613e1b : data/ultra_eval.json``. Class names are stripped of the
  padding spaces they carry in the file. Ids are 1-based row numbers.
- hub: none with topic classes (see above).

Split (ACTOR protocol, adapted): up to 30 questions per class, drawn by seed, are ``train``
(30 x 9 + 15 = 285, not the paper's 7 x 30 = 210, because this file has 10 classes);
the other 100 (50 Vicuna, 50 Writing) are ``test``.
"""

from __future__ import annotations

from pathlib import Path

from orbench_harness.benchkit import Columns, Source, SplitRule, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.data import read_json_list
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

LOCAL = "ultrachat/ultra_eval.json"
PER_CLASS = 30
COLUMNS = Columns(prompt="data", expected="comply", meta=("class",))


def read_file(path: Path) -> list[Sample]:
    """The JSON list, with class names stripped."""
    rows = read_json_list(path, required=COLUMNS.required)
    return COLUMNS.parse_rows(path, [{**r, "class": str(r["class"]).strip()} for r in rows])


def source() -> Source:
    """Local file only."""
    return Source(
        (LOCAL,), lambda root: read_file(root / LOCAL),
        hub_note="the hub's UltraChat dialogues have no topic classes",
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``ultrachat`` (385; training source)."""
    register_prompts(
        register, "ultrachat", kind="over_refusal", source=source, size=385,
        rule=SplitRule(per="class", train_n=PER_CLASS), training_only=True,
        summary="UltraChat eval questions, benign training pool (30 per class to train)",
    )
