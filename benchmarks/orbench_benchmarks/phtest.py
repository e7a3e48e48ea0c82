"""``phtest``: PHTest pseudo-harmful prompts (An et al., COLM 2024, arXiv 2409.00598).

Automatically generated prompts that look harmful but are not, each labelled ``harmless`` or
``controversial``. The benchmark scores the *harmless* ones by compliance rate (refusing a
controversial prompt is defensible, so PHTest's authors report the two separately); the
controversial rows are validated with the rest and then left out.

Sources:
- hub: ``furonghuang-lab/PHTest`` (named in ``umd-huang-lab/FalseRefusal @ 29e66c27 :
  README.md``), file ``PHTest.csv`` (columns ID, Request, Harmfulness; 3269 rows), split
  ``train``, revision ``main`` (not pinned: no hub access when this was written; run.json
  records a hash of the rows read).
- local: ``phtest/PHTest.csv`` under the data directory, the same file. The shared data has no
  copy; the loader is tested on ``tests/fixtures/phtest/PHTest.csv``, written in the project's
  own words with the same columns.

Split (ACTOR protocol): 25 harmless prompts drawn by seed are ``train``; the rest ``test``.
"""

from __future__ import annotations

from pathlib import Path

from orbench_harness.benchkit import Columns, HubSource, Rows, Source, SplitRule, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

LOCAL = "phtest/PHTest.csv"
HUB = HubSource("furonghuang-lab/PHTest", "main", split="train", data_files="PHTest.csv")
COLUMNS = Columns(
    prompt="Request", expected={"harmless": "comply", "controversial": "comply"}, id="ID",
    meta=("Harmfulness",), label="Harmfulness",
)


def harmless(samples: list[Sample]) -> list[Sample]:
    """The scored part: prompts labelled harmless."""
    return [s for s in samples if s.meta["Harmfulness"] == "harmless"]


def read_file(path: Path) -> list[Sample]:
    """PHTest.csv, validated whole, harmless rows kept."""
    return harmless(COLUMNS.read_csv(path))


def parse_hub(origin: str, rows: Rows) -> list[Sample]:
    """Hub rows (ids may arrive as integers)."""
    return harmless(COLUMNS.parse_rows(origin, rows))


def source() -> Source:
    """Local file if present, else the hub."""
    return Source((LOCAL,), lambda root: read_file(root / LOCAL), (HUB,),
                  lambda tables: parse_hub(HUB.label, tables[0]))


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``phtest`` (3269 rows; the harmless ones are scored)."""
    register_prompts(
        register, "phtest", kind="over_refusal", source=source, size=3269,
        rule=SplitRule(train_n=25),
        summary="PHTest pseudo-harmful prompts, harmless rows of 3269 (compliance rate; hub)",
    )
