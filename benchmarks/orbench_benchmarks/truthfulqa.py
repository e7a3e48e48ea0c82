"""``truthfulqa``: TruthfulQA questions (Lin et al., ACL 2022), ACTOR's benign anchors.

ACTOR (docs/methods.md, ACTOR) computes its refusal direction from 64 HEx-PHI harmful prompts
and 64 TruthfulQA questions drawn at random. Only the questions are used (no answers). A
training source, in no suite.

Sources:
- local: ``truthfulqa/TruthfulQA.csv`` (columns Type, Category, Question, Best Answer, ...;
  817 rows; Apache-2.0), the file ``benedictflorance/truthfulqa_experiments @ 6fdfd382 :
  datasets/TruthfulQA.csv`` (upstream ``sylinrl/TruthfulQA``). Ids are 1-based row numbers.
- hub: ``truthfulqa/truthful_qa`` config ``generation``, split ``validation`` (columns type,
  category, question, ...), revision ``741b8276f2d1982aa3d5b832d3ee81ed3b896490`` (a pin found
  in a third-party repository; not verified from here).

Split (ACTOR protocol): 64 questions drawn by seed are ``train`` (the anchors); 753 ``test``.
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, HubSource, Source, SplitRule, register_prompts, single_table
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl

LOCAL = "truthfulqa/TruthfulQA.csv"
HUB = HubSource(
    "truthfulqa/truthful_qa", "741b8276f2d1982aa3d5b832d3ee81ed3b896490",
    split="validation", config="generation",
)
ANCHORS = 64
FILE_COLUMNS = Columns(prompt="Question", expected="comply", meta=("Category",))
HUB_COLUMNS = Columns(prompt="question", expected="comply", meta=("category",))


def source() -> Source:
    """Local file if present, else the hub."""
    return single_table(LOCAL, FILE_COLUMNS.read_csv, HUB, HUB_COLUMNS.parse_rows)


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``truthfulqa`` (817; training source)."""
    register_prompts(
        register, "truthfulqa", kind="over_refusal", source=source, size=817,
        rule=SplitRule(train_n=ANCHORS), training_only=True,
        summary="TruthfulQA questions, benign refusal-direction anchors (64 to train)",
    )
