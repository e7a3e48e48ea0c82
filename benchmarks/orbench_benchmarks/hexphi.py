"""``hexphi``: HEx-PHI harmful instructions (Qi et al., ICLR 2024, "Fine-tuning Aligned Language
Models Compromises Safety").

330 harmful instructions, 30 in each of 11 policy categories (illegal activity, child abuse,
hate/harassment/violence, malware, physical harm, economic harm, fraud/deception, adult
content, political campaigning, privacy violation, tailored financial advice). Scored by
refusal rate (the second seed paper reports its complement, attack success rate).

Sources:
- local: ``hex-phi/HEx-PHI.jsonl`` (keys instruction, category), the file
  ``WhyChaos/Safety-Alignment-Should-Be-Made-More-Than-Just-A-Few-Attention-Head @ b63df66f :
  finetuning_buckets/datasets/data/safety_bench/HEx-PHI.jsonl``. Ids are 1-based row numbers.
- hub: ``LLM-Tuning-Safety/HEx-PHI`` (gated: accept its licence and log in), files
  ``category_1.csv`` .. ``category_11.csv`` without a header row, one instruction per line,
  revision ``main`` (not pinned, and not reachable from where this was written, so untested
  against the real repository). Categories are read in file order and numbered like the local
  file (1..330), so ids agree when the hub files hold the same prompts.

Split (our choice, documented here): two thirds of each category, drawn by seed, are
``train`` (20 x 11 = 220) and the other third is ``test`` (110). ACTOR trains on all of
HEx-PHI and draws its 64 refusal-direction anchors from it, but the second seed paper scores
attack success on HEx-PHI, so a held-out third must remain; methods take their harmful
training prompts and anchors from ``train``.
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, HubSource, Rows, Source, SplitRule, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

LOCAL = "hex-phi/HEx-PHI.jsonl"
CATEGORIES = (
    "illegal_activity", "harm_children", "hate_harass_violence", "malware", "physical_harm",
    "economic_harm", "fraudulent_deceptive", "adult_content", "political", "privacy_violation",
    "financial_advice",
)
HUB = tuple(
    HubSource(
        "LLM-Tuning-Safety/HEx-PHI", "main", split="train", data_files=f"category_{k}.csv",
        options=(("column_names", ["instruction"]),),
    )
    for k in range(1, len(CATEGORIES) + 1)
)
COLUMNS = Columns(prompt="instruction", expected="refuse", meta=("category",))
TRAIN_FRACTION = 2 / 3


def parse_hub(tables: list[Rows]) -> list[Sample]:
    """One table per category file; rows are tagged with the local file's category names."""
    rows = [
        {**r, "category": CATEGORIES[k]} for k, table in enumerate(tables) for r in table
    ]
    return COLUMNS.parse_rows(f"hub:{HUB[0].id}@{HUB[0].revision}", rows)


def source() -> Source:
    """Local file if present, else the 11 hub files."""
    return Source((LOCAL,), lambda root: COLUMNS.read_jsonl(root / LOCAL), HUB, parse_hub)


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``hexphi`` (330)."""
    register_prompts(
        register, "hexphi", kind="safety", source=source, size=330,
        rule=SplitRule(per="category", fraction=TRAIN_FRACTION),
        summary="HEx-PHI harmful instructions, 11 categories (refusal rate; train 2/3, test 1/3)",
    )
