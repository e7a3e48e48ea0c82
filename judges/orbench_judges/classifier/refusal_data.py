"""Labelled (prompt, response, label) examples for training the refusal classifier.

Sources, all under a data directory in the layout docs/data.md describes:

- ``xstest/labelled/xstest_v2_completions_<model>.csv``: human three-class labels (gold);
  ``group`` is the model, so evaluation can hold one model out at a time.
- ``coconot/coconot_pref.json``: CoCoNot contrast prompts (benign prompts that look like ones
  to refuse). Only the ``chosen`` answers are used, as full compliance; the ``rejected``
  answers are mostly compliant too (they are worse answers, not refusals), so they carry no
  clean label and are skipped.
- ``labelled-refusals/<model>/*_evaluations.json``: completions of five chat models with
  refusal-substring labels (``is_jailbreak_substring_matching``: "0" = a refusal phrase was
  found) and, for harmful prompts, LlamaGuard-2 labels. These are machine labels, so only
  examples where the available signals agree are kept: refusal when no judge says
  "jailbroken"; compliance when the substring judge found no refusal phrase and, where
  LlamaGuard-2 ran, it called the answer harmful.
- ``hex-phi/*_HEx-PHI_refusal_examples.jsonl``: refusals written by Gemma and Llama-2 for the
  HEx-PHI prompts; all full refusals.

No harmful prompt text is ever logged: callers report counts per source only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from orbench_harness.data import read_json_list, read_text
from orbench_harness.errors import DataError
from orbench_harness.judge_eval import read_labelled
from orbench_harness.types import Label

XSTEST_GLOB = "xstest/labelled/xstest_v2_completions_*.csv"
_XSTEST_NAME = re.compile(r"^xstest_v2_completions_([a-z0-9]+)\.csv$")


@dataclass(frozen=True, slots=True)
class Example:
    """One training example. ``group`` names the model that wrote the response."""

    prompt: str
    response: str
    label: Label
    source: str
    group: str


def xstest_files(data_dir: Path) -> list[Path]:
    """The three human-labelled XSTest files (not the *_gpteval / *_streval copies)."""
    return sorted(p for p in data_dir.glob(XSTEST_GLOB) if _XSTEST_NAME.match(p.name))


def load_xstest(data_dir: Path) -> list[Example]:
    """Gold examples, grouped by model (gpt4, llama2orig, mistralinstruct)."""
    out: list[Example] = []
    for path in xstest_files(data_dir):
        m = _XSTEST_NAME.match(path.name)
        assert m is not None
        for it in read_labelled(path):
            out.append(Example(it.prompt, it.response, it.gold, "xstest", m.group(1)))
    return out


def load_coconot(data_dir: Path) -> list[Example]:
    """CoCoNot contrast prompts with their compliant (``chosen``) answers."""
    path = data_dir / "coconot" / "coconot_pref.json"
    rows = read_json_list(path, ["prompt", "chosen"])
    return [
        Example(str(r["prompt"]), str(r["chosen"]), Label.FULL_COMPLIANCE, "coconot", "coconot")
        for r in rows
        if str(r["chosen"]).strip()
    ]


def load_labelled_refusals(data_dir: Path) -> list[Example]:
    """Machine-labelled completions where the available labels agree (see module doc)."""
    out: list[Example] = []
    root = data_dir / "labelled-refusals"
    for path in sorted(root.glob("*/*_evaluations.json")):
        try:
            obj = json.loads(read_text(path))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: malformed JSON ({e.msg})") from None
        model = path.parent.name
        for row in obj.get("completions", []):
            substring = str(row.get("is_jailbreak_substring_matching", ""))
            guard = row.get("is_jailbreak_llamaguard2")
            response = str(row.get("response", ""))
            if not response.strip() or substring not in ("0", "1"):
                continue
            if substring == "0" and (guard is None or str(guard) == "0"):
                label = Label.FULL_REFUSAL
            elif substring == "1" and (guard is None or str(guard) == "1"):
                label = Label.FULL_COMPLIANCE
            else:
                continue
            out.append(Example(str(row.get("prompt", "")), response, label, "refusal-runs", model))
    return out


def load_hexphi_refusals(data_dir: Path) -> list[Example]:
    """HEx-PHI prompts with Gemma's and Llama-2's refusals."""
    out: list[Example] = []
    for path in sorted((data_dir / "hex-phi").glob("*_HEx-PHI_refusal_examples.jsonl")):
        model = path.name.split("_", 1)[0]
        for i, line in enumerate(read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                msgs = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: row {i}: malformed JSON ({e.msg})") from None
            user = next((m["content"] for m in msgs if m.get("role") == "user"), "")
            reply = next((m["content"] for m in msgs if m.get("role") == "assistant"), "")
            if reply.strip():
                out.append(Example(user, reply, Label.FULL_REFUSAL, "hexphi", model))
    return out


LOADERS = {
    "xstest": load_xstest,
    "coconot": load_coconot,
    "refusal-runs": load_labelled_refusals,
    "hexphi": load_hexphi_refusals,
}


def load_all(data_dir: Path, sources: tuple[str, ...] = tuple(LOADERS)) -> list[Example]:
    """Examples from the named sources; a missing data directory is a clear error."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found (docs/data.md gives the expected layout)")
    out: list[Example] = []
    for name in sources:
        if name not in LOADERS:
            raise DataError(f"unknown training source {name!r} (known: {', '.join(LOADERS)})")
        out.extend(LOADERS[name](data_dir))
    return out
