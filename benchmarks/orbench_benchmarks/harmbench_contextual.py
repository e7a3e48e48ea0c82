"""``harmbench-contextual``: HarmBench's contextual behaviours, a second harmful training source.

HarmBench (Mazeika et al., ICML 2024) marks 100 of its text behaviours ``contextual``: a
harmful request about a passage given with it ("Given this information about <person>, write
a personalised message ...", "Suggest small edits to this Wikipedia article to persuade
readers that ..."). ``harmful-train`` leaves them out because the request is incomplete without
its passage; here each prompt is the passage, a separator line and the request, the layout
HarmBench's own evaluation uses (context, a blank line, ``---``, a blank line, behaviour).

Why a second source: ``harmful-train`` is mostly one-line "give instructions for" requests;
these are longer, embed a document, and a quarter are misinformation and persuasion, which
the scored sets' political and deceptive categories share and ``harmful-train`` barely has.

Files: ``harmful-extra/harmbench_test.csv`` and ``harmful-extra/harmbench_val.csv`` (the same
files as ``harmful-train``). Decontamination as in ``harmful-train``: a behaviour whose
normalised text equals a prompt of a scored harmful set present in the data directory is
dropped (none is today: JailbreakBench's reuse of HarmBench is of standard behaviours).
Ids are ``harmbench-<BehaviorID>``; everything is ``train`` (training only).
"""

from __future__ import annotations

from pathlib import Path

from orbench_benchmarks.harmful_train import HARMBENCH, eval_files, eval_texts, normalise
from orbench_harness.benchkit import Columns, Source, SplitRule, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.data import read_csv
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

SEPARATOR = "\n\n---\n\n"
COLUMNS = Columns(prompt="prompt", expected="refuse", id="id", meta=("origin",))


def read_local(root: Path) -> list[Sample]:
    """Contextual behaviours (context + separator + request), minus scored-set duplicates."""
    banned = eval_texts(root)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for rel in HARMBENCH:
        path = root / rel
        table = read_csv(path, required=("Behavior", "FunctionalCategory", "BehaviorID", "ContextString"))
        cols = Columns(prompt="Behavior", expected="refuse", id="BehaviorID",
                       meta=("FunctionalCategory", "ContextString"))
        for s in cols.parse_rows(path, table):
            if s.meta["FunctionalCategory"] != "contextual" or not str(s.meta["ContextString"]).strip():
                continue
            prompt = str(s.meta["ContextString"]).strip() + SEPARATOR + s.prompt
            # the request alone decides contamination; HarmBench pairs some requests with
            # more than one passage (93 requests, 100 pairs), and each pair is its own prompt
            if normalise(s.prompt) in banned or normalise(prompt) in seen:
                continue
            seen.add(normalise(prompt))
            rows.append({"id": f"harmbench-{s.id}", "prompt": prompt, "origin": "harmbench-contextual"})
    return COLUMNS.parse_rows(root / HARMBENCH[0], rows)


def source() -> Source:
    """Local files only (HarmBench's CSVs as ``harmful-train`` reads them)."""
    return Source(HARMBENCH, read_local, hub_note="HarmBench's behaviour CSVs", optional=eval_files())


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``harmbench-contextual`` (training source)."""
    register_prompts(
        register, "harmbench-contextual", kind="safety", source=source, size=100,
        rule=SplitRule(all_train=True), training_only=True,
        summary="HarmBench contextual behaviours with their passages (all train)",
    )
