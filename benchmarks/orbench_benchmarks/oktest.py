"""``oktest``: OKTest (Shi et al., "Navigating the OverKill in Large Language Models", ACL 2024).

300 benign questions containing harmful-sounding words; the ACTOR paper uses it as an
out-of-distribution over-refusal set (never trained on). Scored by compliance rate.

Sources:
- local: ``oktest/OKTest.csv`` (column prompt; 300 rows), the file
  ``InvokerStark/OverKill @ 9551a7ff : data/OKTest.csv``. Ids are 1-based row numbers.
- hub: none; OKTest is published in the authors' GitHub repository, not on the hub.

Split: none — all 300 are ``test`` (the ACTOR paper holds OKTest out entirely).
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, Source, register_prompts, single_table
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl

LOCAL = "oktest/OKTest.csv"
COLUMNS = Columns(prompt="prompt", expected="comply")


def source() -> Source:
    """Local file only."""
    return single_table(
        LOCAL, COLUMNS.read_csv, hub_note="OKTest is published on GitHub (InvokerStark/OverKill)"
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``oktest`` (300)."""
    register_prompts(
        register, "oktest", kind="over_refusal", source=source, size=300,
        summary="OKTest benign questions with harmful-sounding words (compliance rate)",
    )
