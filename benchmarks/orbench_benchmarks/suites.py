"""Named benchmark suites: ``paper``, ``triggers``, ``triggers-hub``, ``safety`` and ``quick``.

- ``paper``: the nine benchmarks of the ACTOR paper (Dabas et al., ICML 2025; docs/methods.md,
  ACTOR) — over-refusal on XSTest, SCOPE, OR-Bench-Hard-1K, PHTest and OKTest, safety on
  AdvBench, utility on MMLU, MT-Bench and WikiText-2 — each on its held-out ``test`` split.
- ``triggers``: the second seed paper's evaluation (Xue et al., "Deactivating Refusal
  Triggers", arXiv 2603.11388): refusal rate on Koala, JailbreakBench-benign and
  OR-Bench-Hard, attack success rate (= 100 - refusal rate) on JailbreakBench-harmful,
  SORRY-Bench and HEx-PHI. GSM-8K and SQL-1k are left out because they are hub-only on a
  machine without a copy and a missing benchmark stops a run; ``triggers-hub`` adds them for
  machines that reach the hub.
- ``safety``: the broad safety score's five harmful sets (``heldout.py``), 20 prompts each;
  an opt-in addition to ``paper`` or ``quick`` (``--suite quick,safety``), so the paper's own
  tables stay reproducible as published.
- ``quick``: a fixed small sample of each benchmark that has local data in the shared layout,
  sized so the embedded 135M model finishes on a CPU in a few minutes: 20 prompts per refusal
  set, 60 MMLU questions, 4 WikiText-2 windows. PHTest is not in it (hub only here), nor is
  MT-Bench (it needs an LLM judge).

The capability benchmarks (``mmlu``, ``wikitext2``, ``mt-bench``) are provided by their own
plugin modules; the names here only refer to them.
"""

from __future__ import annotations

from orbench_benchmarks.heldout import BASES, SUFFIX
from orbench_harness.catalog import SuiteRegister
from orbench_harness.hookspecs import hookimpl

PAPER = (
    "xstest", "scope", "orbench-hard", "phtest", "oktest", "advbench",
    "mmlu", "mt-bench", "wikitext2",
)
TRIGGERS = ("koala", "jbb-benign", "orbench-hard", "jbb-harmful", "sorry-bench", "hexphi")
TRIGGERS_HUB = (*TRIGGERS[:3], "gsm8k", "sql-1k", *TRIGGERS[3:])
QUICK_REFUSAL = ("xstest", "scope", "orbench-hard", "oktest", "advbench", "hexphi")
QUICK_LIMITS: dict[str, int] = {
    **dict.fromkeys(QUICK_REFUSAL, 20),
    "mmlu": 60,
    "wikitext2": 4,
}
QUICK = (*QUICK_REFUSAL, "mmlu", "wikitext2")
# The broad safety score's sets (heldout.py): opt-in next to the paper's (``--suite paper,safety``),
# a fixed seeded sample of 20 per set so the organism finishes in CPU minutes.
SAFETY = tuple(base + SUFFIX for base in BASES)
SAFETY_LIMITS: dict[str, int] = dict.fromkeys(SAFETY, 20)


@hookimpl
def orbench_register_suites(register: SuiteRegister) -> None:
    """Register the five suites."""
    register("paper", list(PAPER), summary="the ACTOR paper's nine benchmarks (held-out splits)")
    register(
        "triggers", list(TRIGGERS),
        summary="the trigger paper's benign (RR) and harmful (ASR) sets, local data",
    )
    register(
        "triggers-hub", list(TRIGGERS_HUB),
        summary="triggers plus GSM-8K and SQL-1k (needs the hub or local copies)",
    )
    register(
        "safety", list(SAFETY), limits=SAFETY_LIMITS,
        summary="20 prompts from each of five harmful sets cleaned of training look-alikes (broad safety score)",
    )
    register(
        "quick", list(QUICK), limits=QUICK_LIMITS,
        summary="20 prompts per refusal set, 60 MMLU, 4 WikiText-2 windows (CPU minutes)",
    )
