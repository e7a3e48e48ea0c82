"""``koala``: the Koala prompts of AlpacaEval, a plain benign set of the second seed paper.

The second seed paper (Xue et al., "Deactivating Refusal Triggers", arXiv 2603.11388) reports
refusal rate on Koala to show that trigger-aware alignment does not make a model refuse
ordinary requests. Koala's 156 test prompts (Geng et al., 2023, "Koala: A Dialogue Model for
Academic Research") ship inside AlpacaEval (Li et al., 2023) with ``dataset == "koala"``.
Scored by compliance rate (refusal rate = 100 - compliance rate).

Sources:
- local: ``alpaca-eval/alpaca_eval.json`` (a list of objects with instruction, output,
  generator, dataset; 805 rows, CC-BY-NC-4.0), the file ``AlphaLab-USTC/AlphaSteer @ 20d65b68
  : data/instructions/test/alpaca_eval.json``. Ids are 1-based row numbers of the whole file,
  so they do not change if other subsets are filtered differently.
- hub: ``tatsu-lab/alpaca_eval`` file ``alpaca_eval.json`` (read with the plain JSON builder;
  the repository's loading script is not run), revision
  ``2edc6fad8be6b14ea7230aabfd08188da6b8b814`` (the pin allenai's OLMES freeze uses).

Split: none — all 156 are ``test``.
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, HubSource, Source, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

LOCAL = "alpaca-eval/alpaca_eval.json"
HUB = HubSource(
    "tatsu-lab/alpaca_eval", "2edc6fad8be6b14ea7230aabfd08188da6b8b814",
    split="train", data_files="alpaca_eval.json",
)
COLUMNS = Columns(prompt="instruction", expected="comply", meta=("dataset",))


def koala_only(samples: list[Sample]) -> list[Sample]:
    """The Koala subset of the validated file."""
    return [s for s in samples if s.meta["dataset"] == "koala"]


def source() -> Source:
    """Local file if present, else the hub."""
    return Source(
        (LOCAL,), lambda root: koala_only(COLUMNS.read_json(root / LOCAL)), (HUB,),
        lambda tables: koala_only(COLUMNS.parse_rows(HUB.label, tables[0])),
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``koala`` (156)."""
    register_prompts(
        register, "koala", kind="over_refusal", source=source, size=156,
        summary="Koala prompts of AlpacaEval, plain benign requests (compliance rate)",
    )
