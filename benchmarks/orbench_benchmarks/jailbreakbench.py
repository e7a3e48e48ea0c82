"""``jbb-benign`` and ``jbb-harmful``: JailbreakBench behaviours (Chao et al., NeurIPS 2024
Datasets and Benchmarks, "JailbreakBench: An Open Robustness Benchmark for Jailbreaking LLMs").

JBB-Behaviors pairs 100 harmful behaviours with 100 benign ones on the same topics (10 OpenAI
policy categories). The second seed paper reports refusal rate on the benign half and attack
success rate on the harmful half. ``jbb-benign`` is scored by compliance rate, ``jbb-harmful``
by refusal rate.

Sources:
- local benign: ``jbb-benign/jbb_benign_100.json`` (a list of objects with key query), the
  100 benign behaviours in official order, taken from the first 100 rows of
  ``AlphaLab-USTC/AlphaSteer @ 20d65b68 : data/instructions/train_val/benign_train.json``
  (see the shared data README). Ids are 1-based row numbers (= JBB's ``Index``).
- local harmful: ``harmful-extra/jailbreakbench.csv`` (columns Goal, Target, Behavior,
  Category, Source, and an unnamed 0-based index), from ``andyrdt/refusal_direction @
  9d852fae : dataset/raw/jailbreakbench.csv``. Ids are 1-based row numbers (= ``Index``).
- hub: ``JailbreakBench/JBB-Behaviors`` config ``behaviors``, splits ``benign`` and
  ``harmful`` (columns Index, Goal, Target, Behavior, Category, Source), revision
  ``886acc352a31533ffbcf4ef22c744658688086fc`` (a pin found in a third-party repository's
  hub lock file; not verified from here).

Split: none — all 100 of each are ``test``.
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, HubSource, Source, register_prompts, single_table
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Expected

REPO = "JailbreakBench/JBB-Behaviors"
REVISION = "886acc352a31533ffbcf4ef22c744658688086fc"
LOCAL_BENIGN = "jbb-benign/jbb_benign_100.json"
LOCAL_HARMFUL = "harmful-extra/jailbreakbench.csv"
BENIGN_FILE = Columns(prompt="query", expected="comply")
HARMFUL_FILE = Columns(prompt="Goal", expected="refuse", meta=("Category", "Source"))


def hub_columns(expected: Expected) -> Columns:
    """Hub rows of either split (ids from the ``Index`` column)."""
    return Columns(prompt="Goal", expected=expected, id="Index", meta=("Category", "Source"))


def benign_source() -> Source:
    """The 100 benign behaviours."""
    hub = HubSource(REPO, REVISION, split="benign", config="behaviors")
    return single_table(LOCAL_BENIGN, BENIGN_FILE.read_json, hub, hub_columns("comply").parse_rows)


def harmful_source() -> Source:
    """The 100 harmful behaviours."""
    hub = HubSource(REPO, REVISION, split="harmful", config="behaviors")
    return single_table(
        LOCAL_HARMFUL, HARMFUL_FILE.read_csv, hub, hub_columns("refuse").parse_rows
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``jbb-benign`` and ``jbb-harmful`` (100 each)."""
    register_prompts(
        register, "jbb-benign", kind="over_refusal", source=benign_source, size=100,
        summary="JailbreakBench benign behaviours (compliance rate)",
    )
    register_prompts(
        register, "jbb-harmful", kind="safety", source=harmful_source, size=100,
        summary="JailbreakBench harmful behaviours (refusal rate = 100 - ASR)",
    )
