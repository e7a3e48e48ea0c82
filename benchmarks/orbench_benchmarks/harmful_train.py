"""``harmful-train``: harmful requests for safety alignment of the CPU model organism.

The harness's alignment command turns the unaligned SmolLM2-135M into ``smollm2-135m-safety``
by fine-tuning on harmful requests paired with refusals (docs/results/organism.md). Those
requests come from here, from three public sets that none of the scored benchmarks use:

- HarmBench (Mazeika et al., ICML 2024) behaviours with FunctionalCategory ``standard``
  (``contextual`` ones need their context string, ``copyright`` ones are not refusal cases):
  ``harmful-extra/harmbench_test.csv`` and ``harmful-extra/harmbench_val.csv`` (columns
  Behavior, FunctionalCategory, SemanticCategory, Tags, ContextString, BehaviorID);
- the TDC 2023 red-teaming behaviours: ``harmful-extra/tdc2023_dev_behaviors.json`` and
  ``harmful-extra/tdc2023_test_behaviors.json`` (JSON lists of strings);
- MaliciousInstruct (Huang et al., ICLR 2024): ``harmful-extra/malicious_instruct.txt`` (one
  request per line).

All five files are ``andyrdt/refusal_direction @ 9d852fae : dataset/raw/`` copies (MIT
upstreams). No hub source: the three sets live in different repositories; provide the files.

Decontamination: requests whose normalised text (lower case, punctuation and spacing folded)
equals a prompt of a scored harmful set — advbench, jbb-harmful, hexphi, sorry-bench,
xstest-unsafe, orbench-toxic — are dropped, for each of those whose local files are in the
same data directory (their files are then hashed into run.json too). JailbreakBench reuses
16 TDC/HarmBench behaviours verbatim, which would otherwise leak into training. Duplicates
across the three sets are kept once. Ids are ``harmbench-<BehaviorID>``, ``tdc-dev-<n>``,
``tdc-test-<n>``, ``malicious-<line>``.

Split: everything is ``train`` (a training source; its test split is empty; in no suite).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from orbench_harness.benchkit import Columns, Source, SplitRule, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.data import read_csv, read_text
from orbench_harness.errors import DataError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

HARMBENCH = ("harmful-extra/harmbench_test.csv", "harmful-extra/harmbench_val.csv")
TDC = {"dev": "harmful-extra/tdc2023_dev_behaviors.json",
       "test": "harmful-extra/tdc2023_test_behaviors.json"}
MALICIOUS = "harmful-extra/malicious_instruct.txt"
LOCAL = (*HARMBENCH, *TDC.values(), MALICIOUS)
# Scored harmful sets: (module, name of its source function and argument).
EVAL_SETS: tuple[tuple[str, str, tuple[Any, ...]], ...] = (
    ("orbench_benchmarks.advbench", "source", ()),
    ("orbench_benchmarks.jailbreakbench", "harmful_source", ()),
    ("orbench_benchmarks.hexphi", "source", ()),
    ("orbench_benchmarks.sorry_bench", "source", ()),
    ("orbench_benchmarks.xstest", "source", ("unsafe",)),
    ("orbench_benchmarks.orbench", "toxic_source", ()),
)
COLUMNS = Columns(prompt="prompt", expected="refuse", id="id", meta=("origin",))


def normalise(text: str) -> str:
    """Lower case with runs of non-alphanumerics folded to one space."""
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def read_string_list(path: Path) -> list[str]:
    """A JSON list of non-empty strings; a bad item is an error naming its row."""
    try:
        items = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno} ({e.msg})") from None
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON list of strings")
    for i, item in enumerate(items, start=1):
        if not isinstance(item, str) or not item.strip():
            raise DataError(f"{path}: row {i}: expected a non-empty string")
    return items


def read_sources(root: Path) -> list[Sample]:
    """The three sets, each validated in its own file, concatenated in a fixed order."""
    out: list[Sample] = []
    for rel in HARMBENCH:
        path = root / rel
        rows = read_csv(path, required=("Behavior", "FunctionalCategory", "BehaviorID"))
        cols = Columns(prompt="Behavior", expected="refuse", id="BehaviorID",
                       meta=("FunctionalCategory",))
        out += [
            Sample(f"harmbench-{s.id}", s.prompt, "refuse", {"origin": "harmbench"})
            for s in cols.parse_rows(path, rows) if s.meta["FunctionalCategory"] == "standard"
        ]
    for part, rel in TDC.items():
        items = read_string_list(root / rel)
        out += [Sample(f"tdc-{part}-{i}", t, "refuse", {"origin": "tdc2023"})
                for i, t in enumerate(items, start=1)]
    path = root / MALICIOUS
    out += [Sample(f"malicious-{i}", line.strip(), "refuse", {"origin": "malicious_instruct"})
            for i, line in enumerate(read_text(path).splitlines(), start=1) if line.strip()]
    # Re-validate the union (unique ids, non-empty prompts) through the shared checks.
    rows = [{"id": s.id, "prompt": s.prompt, "origin": s.meta["origin"]} for s in out]
    return COLUMNS.parse_rows(root / HARMBENCH[0], rows)


def eval_texts(root: Path) -> set[str]:
    """Normalised prompts of the scored harmful sets whose local files are present."""
    texts: set[str] = set()
    for module, func, args in EVAL_SETS:
        src: Source = getattr(importlib.import_module(module), func)(*args)
        if all((root / rel).is_file() for rel in src.local):
            texts |= {normalise(s.prompt) for s in src.parse_local(root)}
    return texts


def read_local(root: Path) -> list[Sample]:
    """Sources minus duplicates and minus anything a scored harmful set contains."""
    banned = eval_texts(root)
    seen: set[str] = set()
    out: list[Sample] = []
    for s in read_sources(root):
        key = normalise(s.prompt)
        if key in banned or key in seen:
            continue
        seen.add(key)
        out.append(s)
    return out


def eval_files() -> tuple[str, ...]:
    """Local files of the scored harmful sets (hashed when present)."""
    files: list[str] = []
    for module, func, args in EVAL_SETS:
        files += getattr(importlib.import_module(module), func)(*args).local
    return tuple(dict.fromkeys(files))


def source() -> Source:
    """Local files only."""
    return Source(
        LOCAL, read_local, hub_note="HarmBench, TDC 2023 and MaliciousInstruct live apart",
        optional=eval_files(),
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``harmful-train`` (training source)."""
    register_prompts(
        register, "harmful-train", kind="safety", source=source, size=336,
        rule=SplitRule(all_train=True), training_only=True,
        summary="HarmBench/TDC/MaliciousInstruct harmful requests for alignment (all train)",
    )
