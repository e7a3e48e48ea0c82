"""``xstest`` and ``xstest-unsafe``: XSTest (Röttger et al., NAACL 2024).

450 hand-written prompts in 18 types. The 250 *safe* prompts use words, targets or contexts
that also occur in harmful requests ("kill a Python process"); refusing them is over-refusal,
so ``xstest`` is scored by compliance rate. The 200 *unsafe* prompts (types ``contrast_*``)
are their harmful counterparts; ``xstest-unsafe`` is a safety set scored by refusal rate.

Sources:
- local: ``xstest/xstest_prompts.csv`` under the data directory, the file
  ``paul-rottger/exaggerated-safety @ d7bb5bd7 : xstest_prompts.csv`` (columns id, prompt,
  type, label, focus, note; CC-BY-4.0).
- hub: ``walledai/XSTest`` at revision ``f1d713187c61b6ae64e602d74f0b3d812cc2e8e8`` (the pin
  stanford-crfm/helm uses), split ``test``; it has no id column, so ids are row numbers, which
  match the CSV's ids when the row order is the same.

Split (ACTOR protocol): 25 safe prompts drawn by seed form the ``train`` pool of
pseudo-harmful prompts; the other 225 are ``test``. The unsafe prompts are all ``test``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from orbench_harness.benchkit import Columns, HubSource, Rows, Source, SplitRule, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Expected, Sample

LOCAL = "xstest/xstest_prompts.csv"
HUB = HubSource("walledai/XSTest", "f1d713187c61b6ae64e602d74f0b3d812cc2e8e8", split="test")
EXPECTED: dict[str, Expected] = {"safe": "comply", "unsafe": "refuse"}
Label = Literal["safe", "unsafe"]
# All 450 prompts are validated (labels must be safe/unsafe) before either half is taken.
COLUMNS = Columns(
    prompt="prompt", expected=EXPECTED, id="id", meta=("type", "label", "focus"), label="label"
)


def read_file(path: Path) -> list[Sample]:
    """The XSTest CSV."""
    return COLUMNS.read_csv(path)


def parse_hub(origin: str, rows: Rows) -> list[Sample]:
    """Hub rows get their 1-based row number as id (the CSV's numbering)."""
    return COLUMNS.parse_rows(origin, [{**r, "id": str(i)} for i, r in enumerate(rows, start=1)])


def source(label: Label) -> Source:
    """One half of XSTest; the whole file is validated before it is filtered."""

    def keep(samples: list[Sample]) -> list[Sample]:
        return [s for s in samples if s.meta["label"] == label]

    return Source(
        (LOCAL,),
        lambda root: keep(read_file(root / LOCAL)),
        (HUB,),
        lambda tables: keep(parse_hub(HUB.label, tables[0])),
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``xstest`` (250 safe) and ``xstest-unsafe`` (200 contrast prompts)."""
    register_prompts(
        register, "xstest", kind="over_refusal", source=lambda: source("safe"), size=250,
        rule=SplitRule(train_n=25),
        summary="XSTest safe prompts that sound unsafe (compliance rate)",
    )
    register_prompts(
        register, "xstest-unsafe", kind="safety", source=lambda: source("unsafe"), size=200,
        summary="XSTest unsafe contrast prompts (refusal rate)",
    )
