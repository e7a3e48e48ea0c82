"""``advbench``: AdvBench harmful behaviors (Zou et al., 2023, "Universal and Transferable
Adversarial Attacks on Aligned Language Models").

520 harmful instructions; the ACTOR paper's safety score (S.S) is the refusal rate on them.

Sources:
- local: ``advbench/harmful_behaviors.csv`` (columns goal, target; MIT), the file
  ``llm-attacks/llm-attacks @ 0f505d82 : data/advbench/harmful_behaviors.csv``. Ids are 1-based
  row numbers.
- hub: ``walledai/AdvBench`` (columns prompt, target), split ``train``, revision ``main`` (not
  pinned: no hub access when this was written; run.json records a hash of the rows read).

Split: none — all 520 are ``test`` (ACTOR trains on HEx-PHI, not AdvBench).
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, HubSource, Source, register_prompts, single_table
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl

LOCAL = "advbench/harmful_behaviors.csv"
HUB = HubSource("walledai/AdvBench", "main", split="train")
FILE_COLUMNS = Columns(prompt="goal", expected="refuse")
HUB_COLUMNS = Columns(prompt="prompt", expected="refuse")


def source() -> Source:
    """Local file if present, else the hub."""
    return single_table(LOCAL, FILE_COLUMNS.read_csv, HUB, HUB_COLUMNS.parse_rows)


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``advbench`` (520)."""
    register_prompts(
        register, "advbench", kind="safety", source=source, size=520,
        summary="AdvBench harmful behaviors (refusal rate = safety score)",
    )
