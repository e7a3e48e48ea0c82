"""``harness sweep``: grid parsing and a real two-point sweep of ACTOR on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orbench_harness.cli import main
from orbench_harness.cli.sweep import parse_grid
from orbench_harness.errors import HarnessError


def test_parse_grid_is_the_cartesian_product() -> None:
    assert parse_grid(["alpha=1,2", "layer=3"]) == [{"alpha": "1", "layer": "3"}, {"alpha": "2", "layer": "3"}]
    with pytest.raises(HarnessError, match="malformed --param"):
        parse_grid(["alpha"])
    with pytest.raises(HarnessError, match="given twice"):
        parse_grid(["a=1", "a=2"])


def test_sweep_runs_each_point_and_reports_it(tiny_model_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "--model", str(tiny_model_dir), "--method", "actor", "--param", "alpha=0.001,0.5",
            "--method-arg", "epochs=1", "--method-arg", "layer=1", "--limit", "2", "--max-new-tokens", "4",
            "--out", str(tmp_path / "sweep")]
    assert main(argv) == 0
    dirs = sorted(p.name for p in (tmp_path / "sweep").iterdir())
    assert dirs == ["actor-alpha=0.001", "actor-alpha=0.5"]
    fps = {json.loads((tmp_path / "sweep" / d / "run.json").read_text())["method"]["fingerprint"] for d in dirs}
    assert len(fps) == 2
    out = capsys.readouterr().out
    assert "sweep: actor" in out and "0.001" in out


def test_a_bad_value_in_a_later_point_fails_before_any_point_runs(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Options are checked for every point up front: the grid's last value must not fail hours in."""
    argv = ["sweep", "--model", str(tiny_model_dir), "--method", "actor", "--param", "lr=1e-5,abc",
            "--method-arg", "epochs=1", "--judge", "strmatch", "--limit", "2", "--out", str(tmp_path / "sweep")]
    assert main(argv) == 2
    assert "lr must be a float (got 'abc')" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()
