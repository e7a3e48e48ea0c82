"""``gsm8k``: GSM8K grade-school maths questions (Cobbe et al., 2021), a plain benign set.

The second seed paper (Xue et al., arXiv 2603.11388) reports refusal rate on GSM8K to check that
trigger-aware alignment leaves ordinary task requests alone. Only refusal is scored here
(compliance rate; refusal rate = 100 - compliance rate), not answer accuracy.

Sources:
- hub: ``openai/gsm8k`` config ``main``, split ``test`` (1319 questions; columns question,
  answer), revision ``740312add88f781978c0658806c59bc2815b9866`` (the pin allenai's OLMES
  freeze uses).
- local: ``gsm8k/test.jsonl`` under the data directory (keys question, answer), the file
  ``openai/grade-school-math : grade_school_math/data/test.jsonl``. The shared data has no
  copy; the loader is tested on ``tests/fixtures/gsm8k/test.jsonl``, written in the project's
  own words. Ids are 1-based row numbers.

Split: none — all are ``test``. Not in the ``triggers`` suite because it cannot run without
the hub or a local copy; the ``triggers-hub`` suite includes it.
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, HubSource, Source, register_prompts, single_table
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl

LOCAL = "gsm8k/test.jsonl"
HUB = HubSource(
    "openai/gsm8k", "740312add88f781978c0658806c59bc2815b9866", split="test", config="main"
)
COLUMNS = Columns(prompt="question", expected="comply")


def source() -> Source:
    """Local file if present, else the hub."""
    return single_table(LOCAL, COLUMNS.read_jsonl, HUB, COLUMNS.parse_rows)


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``gsm8k`` (1319)."""
    register_prompts(
        register, "gsm8k", kind="over_refusal", source=source, size=1319,
        summary="GSM8K maths questions, plain benign requests (compliance rate; hub)",
    )
