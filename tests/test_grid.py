"""``harness grid`` on a local Ray instance with 2 workers and the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray")

from orbench_harness.cli import main


def test_grid_runs_two_methods_through_ray(tiny_model_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["grid", "--models", str(tiny_model_dir), "--methods", "none,actor", "--method-arg", "actor:epochs=1",
            "--benchmark", "demo", "--limit", "2", "--max-new-tokens", "4", "--workers", "2",
            "--out", str(tmp_path / "grid")]
    assert main(argv) == 0
    runs = sorted((tmp_path / "grid").iterdir())
    assert [p.name for p in runs] == ["tiny-llama-actor", "tiny-llama-none"]
    methods = {json.loads((p / "results.json").read_text())["method"] for p in runs}
    assert methods == {"none", "actor"}
    out = capsys.readouterr().out
    assert "grid" in out and "actor" in out and "none" in out
    # resumable: a second grid over the same directory recomputes nothing
    assert main(argv) == 0
    for p in runs:
        assert json.loads((p / "results.json").read_text())["timing"]["model_loaded"] is False


def test_grid_rejects_unknown_method_before_starting_ray(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["grid", "--models", "smollm2-135m", "--methods", "none,actr", "--out", str(tmp_path)]) == 2
    assert "unknown method 'actr'" in capsys.readouterr().err
