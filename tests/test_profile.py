"""``harness profile``: method none on a suite, stored as a normal run, judge named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orbench_harness.cli import main


def test_profile_writes_a_run_with_the_judge_named(tiny_model_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "profile"
    code = main(["profile", "--model", str(tiny_model_dir), "--suite", "demo", "--limit", "2",
                 "--max-new-tokens", "4", "--judge", "strmatch", "--out", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "none" and res["judge"] == "strmatch"
    assert set(res["benchmarks"]) == {"demo-benign", "demo-pseudo-harmful", "demo-harmful"}
    assert "judge strmatch" in capsys.readouterr().out


def test_profile_rejects_a_missing_data_dir(tmp_path: Path) -> None:
    assert main(["profile", "--model", "x", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
