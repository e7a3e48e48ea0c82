"""Reference answers kept in a file: generated once, reused across runs and machines.

The ACTOR paper's SFT baseline trains on GPT-4o's answers. Asking an endpoint again for every
run costs money and drifts as the endpoint changes; a file written once (``save_references``)
and passed by path (``reference=file reference_file=PATH``) pins them. The file is JSON:

    {"format": "orbench-reference-answers/1",
     "provenance": {"source": ..., "model": ..., "base_url": ..., "answer_tokens": ..., ...},
     "answers": [{"prompt": ..., "answer": ..., "complete": true}, ...]}

Its sha256 (of the bytes, so any edit shows) goes into SFT's fingerprint, and a run that needs
a prompt the file lacks stops with the count missing rather than answering it some other way.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbench_harness.errors import HarnessError

FORMAT = "orbench-reference-answers/1"


@dataclass(frozen=True, slots=True)
class ReferenceFile:
    """A loaded reference-answer file: its answers, where they came from and its hash."""

    path: Path
    sha256: str
    provenance: Mapping[str, Any]
    answers: Mapping[str, tuple[str, bool]]

    def lookup(self, prompts: Sequence[str]) -> dict[str, tuple[str, bool]]:
        """``prompt -> (answer, complete)`` for every prompt; an error naming how many are absent."""
        absent = [p for p in prompts if p not in self.answers]
        if absent:
            raise HarnessError(
                f"sft: {self.path} has no answer for {len(absent)} of the {len(prompts)} training prompts "
                "(it was written for other prompts or options); write a new one with "
                "--method-arg save_references=PATH")
        return {p: self.answers[p] for p in prompts}


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path: Path) -> ReferenceFile:
    """Read and check a reference-answer file."""
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
    except (OSError, ValueError) as e:
        raise HarnessError(f"sft: cannot read reference_file {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("answers"), list):
        raise HarnessError(f"sft: {path} is not a reference-answer file (format {FORMAT!r} expected)")
    answers: dict[str, tuple[str, bool]] = {}
    for row in doc["answers"]:
        if not (isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("answer"), str)):
            raise HarnessError(f"sft: {path}: every answer needs a prompt and an answer string")
        answers[row["prompt"]] = (row["answer"], bool(row.get("complete", True)))
    return ReferenceFile(path, hashlib.sha256(raw).hexdigest(), dict(doc.get("provenance") or {}), answers)


def save(path: Path, answers: Mapping[str, tuple[str, bool]], provenance: Mapping[str, Any]) -> str:
    """Write ``answers`` with their provenance (and the time written); returns the file's sha256."""
    doc = {
        "format": FORMAT,
        "provenance": {**provenance, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "answers": [{"prompt": p, "answer": a, "complete": c} for p, (a, c) in answers.items()],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return file_sha256(path)
