"""A run directory never mixes records made under different specs, damaged records are
recomputed rather than fatal, and a cache that cannot be used (a bad ORBENCH_CACHE_DIR, a
lock held by another process, a full disk) is one line, not a traceback or lost work.

Every case runs the real CLI on the tiny model, with real SQLite files, real subprocesses
holding locks and a real small filesystem (tmpfs, where this machine may mount one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _runfixtures import line_count
from orbench_harness.cache import Cache
from orbench_harness.cli import main
from test_reliability import _tmpfs


def _argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--benchmark", "demo", "--limit", "2", "--judge", "strmatch",
            "--max-new-tokens", "8", "--out", str(out), *extra]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_an_unreadable_run_json_never_lets_another_spec_reuse_the_records(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(_argv(tiny_model_dir, out)) == 0
    before = (out / "samples.jsonl").read_bytes()
    run_json = out / "run.json"
    run_json.write_bytes(run_json.read_bytes()[:200])  # damaged: cut short
    capsys.readouterr()
    assert main([*_argv(tiny_model_dir, out), "--max-new-tokens", "16"]) == 2
    line = _one_line(capsys)
    assert f"{run_json} is unreadable" in line and "move the directory aside or pass another --out" in line
    assert (out / "samples.jsonl").read_bytes() == before
    run_json.unlink()  # missing altogether: the same
    assert main([*_argv(tiny_model_dir, out), "--max-new-tokens", "16"]) == 2
    assert f"{run_json} is missing" in _one_line(capsys)


def test_a_record_without_prompt_or_completion_is_reported_and_recomputed(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(_argv(tiny_model_dir, out)) == 0
    first = json.loads((out / "results.json").read_text())["benchmarks"]
    samples = out / "samples.jsonl"
    recs = [json.loads(line) for line in samples.read_text().splitlines()]
    del recs[0]["completion"]
    del recs[2]["prompt"]
    samples.write_text("".join(json.dumps(r) + "\n" for r in recs))
    capsys.readouterr()
    for _ in range(2):  # every re-run: no KeyError, no line added
        assert main(_argv(tiny_model_dir, out)) == 0
        assert json.loads((out / "results.json").read_text())["benchmarks"] == first
        assert line_count(samples) == len(recs)
    err = " ".join(capsys.readouterr().err.split())
    assert f"{samples}: line 1 is not a complete record" in err and "line 3" in err
    assert all({"prompt", "completion"} <= set(json.loads(ln)) for ln in samples.read_text().splitlines())


def test_a_cache_dir_that_is_a_file_stops_before_anything_is_written(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("ORBENCH_CACHE_DIR", str(blocker))
    out = tmp_path / "r"
    assert main(_argv(tiny_model_dir, out)) == 2
    line = _one_line(capsys)
    assert f"cannot use {blocker} as the cache directory" in line and "ORBENCH_CACHE_DIR" in line
    assert not out.exists() and blocker.read_text() == "x"


HOLD_LOCK = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
c.execute("INSERT INTO kv VALUES ('held', 'x', '1', 0)")
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def locked_cache(isolated_cache: Path) -> Iterator[Path]:
    """The test's cache, with another process holding its write lock until the test ends."""
    path = isolated_cache / "cache.sqlite"
    Cache(path).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        yield path
    finally:
        holder.kill()
        holder.wait()


def test_a_cache_locked_by_another_process_is_one_line_naming_it(
        locked_cache: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ORBENCH_CACHE_BUSY_TIMEOUT", "1")
    out = tmp_path / "r"
    assert main(_argv(tiny_model_dir, out)) == 2
    line = _one_line(capsys)
    assert f"cache {locked_cache} stayed locked by another process for 1s" in line
    assert "ORBENCH_CACHE_DIR" in line
    assert line_count(out / "samples.jsonl") > 0  # what was generated is kept


def _fill(mnt: Path, leave: int) -> None:
    """Fill the filesystem at ``mnt`` up to ``leave`` free bytes."""
    st = os.statvfs(mnt)
    (mnt / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def test_a_full_cache_disk_is_one_line_and_the_generated_batch_is_kept(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_argv(tiny_model_dir, tmp_path / "whole", "--batch-size", "2")) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())["benchmarks"]
    with _tmpfs(tmp_path / "small", "256k") as mnt:
        Cache(mnt / "cache.sqlite").close()
        _fill(mnt, 36 * 1024)  # room to open the cache (its 32 KiB index), not to add to it
        monkeypatch.setenv("ORBENCH_CACHE_DIR", str(mnt))
        out = tmp_path / "r"
        capsys.readouterr()
        assert main(_argv(tiny_model_dir, out, "--batch-size", "2")) == 2
        line = _one_line(capsys)
        assert "the cache could not be written" in line and "disk is full" in line
        assert line_count(out / "samples.jsonl") >= 2  # the batch whose cache write failed
        (mnt / "filler").unlink()
        assert main(_argv(tiny_model_dir, out, "--batch-size", "2")) == 0
        assert json.loads((out / "results.json").read_text())["benchmarks"] == whole
        shutil.rmtree(out)
