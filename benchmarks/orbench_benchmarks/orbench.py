"""``orbench-hard`` and ``orbench-toxic``: OR-Bench (Cui et al., ICML 2025).

OR-Bench-Hard-1K: 1319 prompts that look harmful but are benign, selected because most
safety-aligned models refuse them; scored by compliance rate. OR-Bench-Toxic: 655 genuinely
toxic prompts from the same pipeline, the safety counterpart; scored by refusal rate. Both
carry one of 10 categories (illegal, privacy, unethical, ...).

Sources:
- local: ``or-bench/or-bench-hard-1k.csv`` (columns prompt, category) — a byte copy of the
  hub file found in ``ericjiang18/Jailbreaking @ 2b3fe375 : dataset/raw/or-bench-hard-1k.csv``
  (CC-BY-4.0); ``or-bench/or-bench-toxic.csv`` with the same columns (not in the shared data;
  its loader is tested on a fixture written in the project's words).
- hub: ``bench-llm/or-bench`` (the location the OR-Bench README gives,
  ``justincui03/or-bench @ 4fad1f9e``), configs ``or-bench-hard-1k`` and ``or-bench-toxic``,
  split ``train``, revision ``main`` (no commit could be pinned without hub access; run.json
  records a hash of the rows actually read). Ids are 1-based row numbers.

Split (ACTOR protocol): 25 hard prompts drawn by seed are ``train`` (pseudo-harmful pool); the
other 1294 are ``test``. OR-Bench-Toxic is all ``test``.
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, HubSource, Source, SplitRule, register_prompts, single_table
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl

REPO = "bench-llm/or-bench"
REVISION = "main"
LOCAL_HARD = "or-bench/or-bench-hard-1k.csv"
LOCAL_TOXIC = "or-bench/or-bench-toxic.csv"
HARD = Columns(prompt="prompt", expected="comply", meta=("category",))
TOXIC = Columns(prompt="prompt", expected="refuse", meta=("category",))


def hard_source() -> Source:
    """OR-Bench-Hard-1K."""
    hub = HubSource(REPO, REVISION, split="train", config="or-bench-hard-1k")
    return single_table(LOCAL_HARD, HARD.read_csv, hub, HARD.parse_rows)


def toxic_source() -> Source:
    """OR-Bench-Toxic."""
    hub = HubSource(REPO, REVISION, split="train", config="or-bench-toxic")
    return single_table(LOCAL_TOXIC, TOXIC.read_csv, hub, TOXIC.parse_rows)


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``orbench-hard`` (1319) and ``orbench-toxic`` (655)."""
    register_prompts(
        register, "orbench-hard", kind="over_refusal", source=hard_source, size=1319,
        rule=SplitRule(train_n=25),
        summary="OR-Bench-Hard-1K seemingly toxic prompts (compliance rate)",
    )
    register_prompts(
        register, "orbench-toxic", kind="safety", source=toxic_source, size=655,
        summary="OR-Bench-Toxic harmful prompts (refusal rate; hub only here)",
    )
