"""SFT's reusable reference-answer file: written once with provenance, reused by path, its hash
in the fingerprint, and a prompt it lacks stops the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.testing import method_context, method_env
from orbench_methods.sft import create, references

SMALL = {"n_harmful": "2", "n_benign": "3", "n_pseudo": "2", "epochs": "1", "answer_tokens": "4",
         "batch_size": "4", "drop_refusals": "false"}


def test_answers_written_once_are_reused_by_path_and_hashed_into_the_fingerprint(
        hf: HFModel, tmp_path: Path) -> None:
    path = tmp_path / "refs" / "answers.json"
    first = create({**SMALL, "reference": "self", "save_references": str(path)}, method_env())
    first.prepare(hf, method_context(tmp_path / "a"))
    doc = json.loads(path.read_text())
    assert doc["format"] == references.FORMAT
    assert doc["provenance"]["source"]["kind"] == "self" and doc["provenance"]["answer_tokens"] == 4
    assert doc["provenance"]["prompts"] == first.data.digest()
    helpful = [s.prompt for s, sign in zip(first.data.queries, first.data.signs, strict=True) if sign < 0]
    assert sorted(r["prompt"] for r in doc["answers"]) == sorted(set(helpful))

    # edit one answer: the file is what trains, and its hash is what identifies the run
    doc["answers"][0]["answer"] = "Paris is the capital of France."
    path.write_text(json.dumps(doc))
    reused = create({**SMALL, "reference": "file", "reference_file": str(path)}, method_env())
    assert reused.reference_key() == {"kind": "file", "sha256": references.file_sha256(path)}
    assert reused.fingerprint() != first.fingerprint()
    encoded, info = reused.examples(hf, method_context(tmp_path / "b"))
    assert info["reference"]["kind"] == "file"
    wanted = hf.encode("Paris is the capital of France.")[:4]
    answers = [[t for t in e.labels if t >= 0][: len(wanted)] for e in encoded]
    assert wanted in answers
    # auto picks the file when one is given
    assert create({**SMALL, "reference_file": str(path)}, method_env()).reference == "file"

    doc["answers"][0]["answer"] = "Lyon."
    path.write_text(json.dumps(doc))
    assert create({**SMALL, "reference_file": str(path)}, method_env()).fingerprint() != reused.fingerprint()


def test_a_file_missing_prompts_or_malformed_stops_the_run(hf: HFModel, tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    references.save(path, {"What is a kite?": ("A toy.", True)}, {"source": {"kind": "test"}})
    method = create({**SMALL, "reference_file": str(path)}, method_env())
    with pytest.raises(HarnessError, match=r"no answer for \d+ of the \d+ training prompts"):
        method.prepare(hf, method_context(tmp_path / "a"))
    path.write_text('{"answers": []}')
    with pytest.raises(HarnessError, match="not a reference-answer file"):
        create({**SMALL, "reference_file": str(path)}, method_env())
    with pytest.raises(HarnessError, match="go together"):
        create({**SMALL, "reference": "file"}, method_env())
