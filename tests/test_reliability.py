"""Crash safety end to end: a real subprocess killed at ten points (training, generation,
judging) resumes to the same results as an uninterrupted run; two processes share a cache;
damaged run files and caches are repaired, not fatal."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _runfixtures import KILL_HARNESS, line_count
from orbench_harness.cache import Cache
from orbench_harness.cli import disk_full, main
from orbench_harness.errors import HarnessError
from orbench_harness.runner import run
from orbench_harness.spec import RunSpec


def _cmd(model: Path, out: Path) -> list[str]:
    return [sys.executable, KILL_HARNESS, "run", "--model", str(model), "--method", "actor",
            "--method-arg", "epochs=3", "--method-arg", "layer=1", "--method-arg", "lr=3e-3",
            "--method-arg", "alpha=0.01", "--benchmark", "demo", "--judge", "slow-strmatch",
            "--judge-batch-size", "4", "--batch-size", "1", "--max-new-tokens", "24", "--out", str(out)]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "ORBENCH_CACHE_DIR": str(cache), "ORBENCH_NO_PROGRESS": "1"}


def _benchmarks(out: Path) -> dict[str, object]:
    res = json.loads((out / "results.json").read_text())
    return {k: {m: v for m, v in b.items() if m != "timing"} for k, b in res["benchmarks"].items()}


def test_killed_at_ten_points_resumes_to_the_uninterrupted_result(tiny_model_dir: Path, tmp_path: Path) -> None:
    ref_cache, cache = tmp_path / "ref-cache", tmp_path / "kill-cache"
    for c in (ref_cache, cache):
        c.mkdir()
        (c / "models").symlink_to(os.environ["ORBENCH_CACHE_DIR"] + "/models")
    subprocess.run(_cmd(tiny_model_dir, tmp_path / "ref"), env=_env(ref_cache), check=True, capture_output=True)

    out = tmp_path / "run"
    samples, verdicts = out / "samples.jsonl", out / "verdicts.jsonl"

    def checkpoint_exists() -> bool:
        return any((cache / "artifacts").glob("*/actor-*/checkpoint.pt"))

    points: list[tuple[str, Callable[[], bool]]] = [
        ("during start-up", lambda: True),
        ("during training, after an epoch checkpoint", checkpoint_exists),
        ("generation: 3 samples", lambda: line_count(samples) >= 3),
        ("generation: 12 samples", lambda: line_count(samples) >= 12),
        ("generation: 25 samples", lambda: line_count(samples) >= 25),
        ("generation: 40 samples", lambda: line_count(samples) >= 40),
        ("judging: 4 verdicts", lambda: line_count(verdicts) >= 4),
        ("judging: 16 verdicts", lambda: line_count(verdicts) >= 16),
        ("judging: 28 verdicts", lambda: line_count(verdicts) >= 28),
        ("judging: 44 verdicts", lambda: line_count(verdicts) >= 44),
    ]
    killed = 0
    for label, ready in points:
        proc = subprocess.Popen(_cmd(tiny_model_dir, out), env=_env(cache),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while proc.poll() is None and not ready() and time.time() < deadline:
            time.sleep(0.01)
        if label == "during start-up":
            time.sleep(1.0)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed >= 8, f"only {killed} of {len(points)} kills landed before the run finished"
    subprocess.run(_cmd(tiny_model_dir, out), env=_env(cache), check=True, capture_output=True)
    for name in ("samples.jsonl", "verdicts.jsonl"):
        keys = [(r["benchmark"], r["id"]) for r in map(json.loads, (out / name).read_text().splitlines())]
        assert len(keys) == len(set(keys)) == 48, name
    assert _benchmarks(out) == _benchmarks(tmp_path / "ref")


def test_two_processes_running_at_once_on_one_cache(tiny_model_dir: Path, tmp_path: Path) -> None:
    cache = Path(os.environ["ORBENCH_CACHE_DIR"])
    cmds = [[sys.executable, "-m", "orbench_harness.cli", "run", "--model", str(tiny_model_dir),
             "--benchmark", "demo", "--max-new-tokens", "16", "--batch-size", "2", "--out", str(tmp_path / n)]
            for n in ("a", "b")]
    procs = [subprocess.Popen(c, env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-2000:]
    assert _benchmarks(tmp_path / "a") == _benchmarks(tmp_path / "b")
    for n in ("a", "b"):
        assert line_count(tmp_path / n / "samples.jsonl") == 48


def test_damaged_cache_and_run_files_are_recomputed(tiny_model_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    spec = RunSpec(model=str(tiny_model_dir), limit=4, max_new_tokens=8)
    out = tmp_path / "r"
    first = run(spec, out)
    cache = Path(os.environ["ORBENCH_CACHE_DIR"]) / "cache.sqlite"
    cache.write_bytes(b"garbage" * 1000)  # the whole cache destroyed
    for suffix in ("-wal", "-shm"):
        Path(str(cache) + suffix).unlink(missing_ok=True)
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text(lines[0] + "{broken json\n" + "".join(lines[2:]))
    (out / "verdicts.jsonl").write_text("\x00\x01 not json\n")
    (out / "results.json").write_text('{"benchmarks": {"demo')  # a partial copy: report skips it
    again = run(spec, out)
    err = capsys.readouterr().err
    assert "corrupted" in err and str(out / "samples.jsonl") in " ".join(err.split())
    assert again["benchmarks"] == first["benchmarks"]
    assert json.loads((out / "results.json").read_text()) == again  # rewritten, as report's warning says
    assert line_count(out / "samples.jsonl") == 12 and line_count(out / "verdicts.jsonl") == 12


@contextlib.contextmanager
def _tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` at ``mnt`` (tmpfs), so writes hit ENOSPC; skips the test
    where it may not mount one."""
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        busy = subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0
        if busy:  # still detach it, then fail: something kept a file on it open
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    assert not busy, f"{mnt} was still in use after the test (a file left open)"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 KiB filesystem: the run's own writes hit ENOSPC."""
    with _tmpfs(tmp_path / "small", "8k") as mnt:
        yield mnt


def test_a_full_disk_is_one_line_and_the_run_resumes_once_space_is_freed(
        tiny_model_dir: Path, tmp_path: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--model", str(tiny_model_dir), "--method", "none", "--benchmark", "demo",
            "--judge", "strmatch", "--max-new-tokens", "24"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    capsys.readouterr()
    out = small_disk / "r"
    assert main([*args, "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"no space left on the device writing {out / 'samples.jsonl'}" in err
    assert "re-run the same command to resume" in err and "Traceback" not in err
    subprocess.run(["mount", "-o", "remount,size=1m", str(small_disk)], check=True)
    assert main([*args, "--out", str(out)]) == 0
    assert _benchmarks(out) == _benchmarks(tmp_path / "whole")


def test_only_a_full_disk_is_turned_into_the_disk_message() -> None:
    assert "the cache could not be written (database or disk is full" in (
        disk_full(sqlite3.OperationalError("database or disk is full")) or "")
    assert "writing /x/s.jsonl" in (disk_full(OSError(errno.EDQUOT, "Disk quota exceeded", "/x/s.jsonl")) or "")
    assert disk_full(OSError(errno.EACCES, "Permission denied", "/x")) is None
    assert disk_full(sqlite3.OperationalError("database is locked")) is None


def test_sigterm_stops_like_ctrl_c_and_the_run_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A scheduler's SIGTERM (sent before its SIGKILL) mid-judging: the process says how to
    resume and exits 143; the same command then finishes with the uninterrupted results."""
    ref_cache, cache = tmp_path / "ref-cache", tmp_path / "run-cache"  # nothing of the reference reused
    for c in (ref_cache, cache):
        c.mkdir()
        (c / "models").symlink_to(os.environ["ORBENCH_CACHE_DIR"] + "/models")
    args = ["run", "--model", str(tiny_model_dir), "--benchmark", "demo", "--judge", "slow-strmatch",
            "--judge-batch-size", "4", "--max-new-tokens", "8"]
    subprocess.run([sys.executable, KILL_HARNESS, *args, "--out", str(tmp_path / "ref")], env=_env(ref_cache),
                   check=True, capture_output=True)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, KILL_HARNESS, *args, "--out", str(out)], env=_env(cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while proc.poll() is None and line_count(out / "verdicts.jsonl") < 8 and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()[-2000:]
    assert "terminated (SIGTERM); everything finished so far is saved" in " ".join(err.decode().split())
    assert 8 <= line_count(out / "verdicts.jsonl") < 48
    subprocess.run([sys.executable, KILL_HARNESS, *args, "--out", str(out)], env=_env(cache), check=True,
                   capture_output=True)
    assert _benchmarks(out) == _benchmarks(tmp_path / "ref")


def test_a_second_run_on_the_same_out_stops_at_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Two processes on one ``--out`` would both compute everything; the second is refused
    while the first holds the directory, and the directory is free again once it ends (a
    SIGKILLed holder frees it too: the kill test above re-runs into its directory ten times)."""
    cache = Path(os.environ["ORBENCH_CACHE_DIR"])
    out = tmp_path / "run"
    args = [sys.executable, KILL_HARNESS, "run", "--model", str(tiny_model_dir), "--benchmark", "demo",
            "--judge", "slow-strmatch", "--judge-batch-size", "4", "--max-new-tokens", "8", "--out", str(out)]
    first = subprocess.Popen(args, env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while first.poll() is None and line_count(out / "verdicts.jsonl") < 4 and time.time() < deadline:
        time.sleep(0.01)
    assert first.poll() is None, "the first run finished too early"
    second = subprocess.run(args, env=_env(cache), capture_output=True, timeout=120)
    assert second.returncode == 2
    assert f"{out} is in use by another harness run" in " ".join(second.stderr.decode().split())
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err.decode()[-2000:]
    finished = _benchmarks(out)
    again = subprocess.run(args, env=_env(cache), capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert _benchmarks(out) == finished and line_count(out / "verdicts.jsonl") == 48


def test_a_cache_on_a_full_disk_is_reported_and_left_in_place(tmp_path: Path) -> None:
    """SQLite's errors on a full disk used to count as corruption, and the whole cache was
    moved aside for an empty one. Now the cache is left as it is, and the user is told to free
    space. A damaged file is still moved aside (test above)."""
    src = tmp_path / "src" / "cache.sqlite"
    c = Cache(src)
    c.put("k", {"text": "x" * 100}, "gen")
    c.close()
    with _tmpfs(tmp_path / "full", "40k") as mnt:  # the file fits; its 32 KiB shared-memory index does not
        shutil.copy(src, mnt / "cache.sqlite")
        with pytest.raises(HarnessError, match=r"cache .*cache\.sqlite: .*left as it is; if its disk is full"):
            Cache(mnt / "cache.sqlite")
        assert not list(mnt.glob("*corrupt*"))
        assert (mnt / "cache.sqlite").read_bytes() == src.read_bytes()
