"""``alpaca-eval``: AlpacaEval's plain requests outside Koala and Vicuna, a benign validation set.

The organism's aim "compliance >= 85% on plain benign prompts" is measured on UltraChat's test
split, whose 100 prompts are Vicuna questions and physics-themed writing tasks. UltraChat's
train split (what alignment builds were compared on) holds only 60 of those two kinds among 285,
so a build could look fine on validation and refuse writing tasks on test (the read-out
builds did: ``docs/results/organism.md``). This set gives
validation more requests of the same plain, open-ended kind without touching any scored set:
AlpacaEval's ``selfinstruct``, ``oasst`` and ``helpful_base`` subsets (Li et al., 2023). Its
``vicuna`` subset is left out because it is UltraChat's Vicuna class (the same 80 questions,
half of them UltraChat test prompts), ``koala`` because it is its own benchmark (the trigger
suite), and any request that also occurs in UltraChat's file (one ``oasst`` request). Scored
by compliance rate.

Sources:
- local: ``alpaca-eval/alpaca_eval.json`` (instruction, output, generator, dataset; 805 rows,
  CC-BY-NC-4.0), as for ``koala``. Ids are 1-based row numbers of the whole file.
- hub: ``tatsu-lab/alpaca_eval`` file ``alpaca_eval.json``, pinned as for ``koala``. The hub
  path has no UltraChat file to compare against, so there only the subsets are filtered.

Split: none (all 568 are ``test``); use it for choosing between builds, never for reporting the
organism's benign compliance, which stays UltraChat's and Alpaca's test splits.
"""

from __future__ import annotations

import json
from pathlib import Path

from orbench_benchmarks.harmful_train import normalise
from orbench_benchmarks.koala import HUB
from orbench_harness.benchkit import Columns, Source, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

LOCAL = "alpaca-eval/alpaca_eval.json"
ULTRACHAT = "ultrachat/ultra_eval.json"
SUBSETS = ("selfinstruct", "oasst", "helpful_base")
COLUMNS = Columns(prompt="instruction", expected="comply", meta=("dataset",))


def plain_subsets(samples: list[Sample], exclude: frozenset[str] = frozenset()) -> list[Sample]:
    """The three plain subsets, less any prompt whose ``normalise``d text is in ``exclude``."""
    return [
        s for s in samples if s.meta["dataset"] in SUBSETS and normalise(s.prompt) not in exclude
    ]


def _ultrachat_prompts(root: Path) -> frozenset[str]:
    path = root / ULTRACHAT
    if not path.is_file():
        return frozenset()
    rows = json.loads(path.read_text(encoding="utf-8"))
    return frozenset(normalise(str(r["data"])) for r in rows)


def source() -> Source:
    """Local file if present (filtered against UltraChat's when that is there too), else the hub."""
    return Source(
        (LOCAL,),
        lambda root: plain_subsets(COLUMNS.read_json(root / LOCAL), _ultrachat_prompts(root)),
        (HUB,),
        lambda tables: plain_subsets(COLUMNS.parse_rows(HUB.label, tables[0])),
        optional=(ULTRACHAT,),
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``alpaca-eval`` (568)."""
    register_prompts(
        register, "alpaca-eval", kind="over_refusal", source=source, size=568,
        summary="AlpacaEval's selfinstruct/oasst/helpful_base requests (validation, compliance)",
    )
