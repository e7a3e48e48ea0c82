"""Fault injection, full disks: the disk fills just before each write site of a run.

A run directory is prepared up to one phase (nothing, the generations, the generations and the
verdicts), then the same command runs with a small real filesystem that a test plugin fills to
the last byte when the run starts. The write that follows (generations, verdicts, results, the
cache, a method's artifact) must fail as one ``error:`` line naming what could not be written
and saying how to go on; after space is freed the same command must end with the clean run's
records and results. (The model conversion's full disk is in test_conversion_scratch.py.)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import orbench_harness.registry as registry_module
from orbench_harness import hookimpl
from orbench_harness.cli import main
from orbench_harness.events import RunStart
from orbench_harness.plugins import get_plugin_manager
from test_reliability import _tmpfs

BASE = ["--benchmark", "demo", "--limit", "2", "--judge", "strmatch", "--max-new-tokens", "8", "--batch-size", "2"]
ACTOR = ["--method", "actor", "--method-arg", "epochs=1", "--method-arg", "layer=1",
         "--method-arg", "n_harmful=4", "--method-arg", "n_benign=4"]


class FillOnStart:
    """Fills a filesystem to its last byte when the run starts (after run.json is written)."""

    def __init__(self, mnt: Path) -> None:
        self.mnt = mnt

    @hookimpl
    def orbench_on_run_start(self, event: RunStart) -> None:
        st = os.statvfs(self.mnt)
        with (self.mnt / "filler").open("wb") as f:
            f.write(b"\0" * (st.f_bavail * st.f_frsize))


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 2 MiB filesystem that the run fills as it starts."""
    with _tmpfs(tmp_path / "disk", "2m") as mnt:
        def with_filler(**kw: Any) -> Any:
            pm = get_plugin_manager(**kw)
            pm.register(FillOnStart(mnt), name="fill-on-start")
            return pm

        monkeypatch.setattr(registry_module, "get_plugin_manager", with_filler)
        yield mnt


def _content(out: Path) -> dict[str, Any]:
    def records(name: str) -> list[str]:
        rows = [json.loads(x) for x in (out / name).read_text(encoding="utf-8").splitlines()]
        return sorted(json.dumps({k: v for k, v in r.items() if k != "run"}, sort_keys=True) for r in rows)

    res = json.loads((out / "results.json").read_text())["benchmarks"]
    return {"samples": records("samples.jsonl"), "verdicts": records("verdicts.jsonl"),
            "results": {k: {m: v for m, v in b.items() if m != "timing"} for k, b in res.items()}}


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return " ".join(err[err.index("error: "):].split())


# site -> (files copied from the clean run before the full-disk run, what the error must name)
SITES = {
    "generations": ((), "samples.jsonl"),
    "verdicts": (("samples.jsonl",), "verdicts.jsonl"),
    "results": (("samples.jsonl", "verdicts.jsonl"), "results.json"),
}


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_disk_full_at_a_run_file_is_one_line_and_resumes(
        site: str, disk: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--model", str(tiny_model_dir), *BASE]
    clean = tmp_path / "clean"
    shutil.copytree(disk, tmp_path / "unused", dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:  # the clean run without the filler
        mp.setattr(registry_module, "get_plugin_manager", get_plugin_manager)
        assert main([*args, "--out", str(clean)]) == 0
    out = disk / "run"
    out.mkdir()
    copied, named = SITES[site]
    for name in ("run.json", *copied):
        shutil.copyfile(clean / name, out / name)
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2
    line = _one_error(capsys)
    assert f"no space left on the device writing {out / named}" in line, line
    assert "re-run the same command to resume" in line
    (disk / "filler").unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry_module, "get_plugin_manager", get_plugin_manager)
        assert main([*args, "--out", str(out)]) == 0
    assert _content(out) == _content(clean)
    shutil.rmtree(out)  # nothing left open on the filesystem


def _cache_on(mnt: Path, monkeypatch: pytest.MonkeyPatch, *, artifacts_only: bool) -> Path:
    """A cache whose converted models are the session's; all of it, or only its artifacts, on ``mnt``."""
    real = Path(os.environ["ORBENCH_CACHE_DIR"])
    if artifacts_only:
        (real / "artifacts").symlink_to(mnt)
        return real
    (mnt / "models").symlink_to(real / "models")
    monkeypatch.setenv("ORBENCH_CACHE_DIR", str(mnt))
    return mnt


def test_a_disk_full_at_the_cache_is_one_line_and_resumes(
        disk: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--model", str(tiny_model_dir), *BASE]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry_module, "get_plugin_manager", get_plugin_manager)
        assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    _cache_on(disk, monkeypatch, artifacts_only=False)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2
    line = _one_error(capsys)
    assert f"cache {disk / 'cache.sqlite'}" in line or "the cache could not be written" in line, line
    assert "re-run" in line
    (disk / "filler").unlink()
    monkeypatch.setattr(registry_module, "get_plugin_manager", get_plugin_manager)
    assert main([*args, "--out", str(out)]) == 0
    assert _content(out) == _content(tmp_path / "clean")
    monkeypatch.setenv("ORBENCH_CACHE_DIR", str(tmp_path))  # let go of the filesystem before unmount


def test_a_disk_full_at_a_method_artifact_is_one_line_and_resumes(
        disk: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--model", str(tiny_model_dir), *BASE, *ACTOR]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry_module, "get_plugin_manager", get_plugin_manager)
        mp.setenv("ORBENCH_CACHE_DIR", str(tmp_path / "clean-cache"))
        (tmp_path / "clean-cache").mkdir()
        (tmp_path / "clean-cache" / "models").symlink_to(Path(os.environ["ORBENCH_CACHE_DIR"]) / "models")
        assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    cache = _cache_on(disk, monkeypatch, artifacts_only=True)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2
    line = _one_error(capsys)
    assert f"no space left on the device writing {cache / 'artifacts'}/" in line, line
    assert "re-run the same command to resume" in line
    (disk / "filler").unlink()
    monkeypatch.setattr(registry_module, "get_plugin_manager", get_plugin_manager)
    assert main([*args, "--out", str(out)]) == 0
    assert _content(out) == _content(tmp_path / "clean")
    (Path(os.environ["ORBENCH_CACHE_DIR"]) / "artifacts").unlink()
