"""``harness status``: a live run is seen as running (its pid, its progress), a killed one as
stopped with the command that resumes it, a finished one as finished; reading never locks."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _runfixtures import KILL_HARNESS, line_count
from orbench_harness import runstatus
from orbench_harness.cli import main
from orbench_harness.runstatus import describe_idle, status_of
from orbench_harness.store import lock_holder


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads Linux's /proc/locks")
def test_running_then_killed_then_resumed(tiny_model_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = [sys.executable, KILL_HARNESS, "run", "--model", str(tiny_model_dir), "--benchmark", "demo",
            "--judge", "slow-strmatch", "--judge-batch-size", "4", "--max-new-tokens", "8", "--out", str(out)]
    env = {**os.environ, "ORBENCH_NO_PROGRESS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while proc.poll() is None and line_count(out / "verdicts.jsonl") < 4 and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be watched"
        live = status_of(out)
        assert (live.state, live.pid, live.total, live.model) == ("running", proc.pid, 48, tiny_model_dir.name)
        assert 4 <= live.judged <= live.generated <= 48 and live.idle_seconds is not None
        assert main(["status", str(tmp_path), "--json"]) == 0
        [shown] = json.loads(capsys.readouterr().out)
        assert (shown["state"], shown["pid"], shown["total"]) == ("running", proc.pid, 48)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    killed = status_of(out)
    assert killed.state == "stopped" and killed.pid is None and killed.judged < 48
    assert killed.command is not None and f"--out {out}" in killed.command
    assert main(["status", str(tmp_path)]) == 0
    assert f"resume {out}: {killed.command}" in " ".join(capsys.readouterr().out.split())
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)  # the printed command resumes
    done = status_of(out)
    assert (done.state, done.generated, done.judged, done.total) == ("finished", 48, 48, 48)
    assert main(["status", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "finished"


def test_the_lock_table_is_read_not_taken(tmp_path: Path) -> None:
    """The holder comes from /proc/locks-shaped lines that match the lock file's device and
    inode; other locks, waiters and POSIX locks do not count."""
    (tmp_path / ".lock").touch()
    st = (tmp_path / ".lock").stat()
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    table = tmp_path / "locks"
    table.write_text(f"1: POSIX  ADVISORY  WRITE 11 {dev} 0 EOF\n"
                     f"2: FLOCK  ADVISORY  WRITE 22 {dev}9 0 EOF\n"
                     f"3: -> FLOCK  ADVISORY  WRITE 33 {dev} 0 EOF\n")
    assert lock_holder(tmp_path, table) is None
    table.write_text(table.read_text() + f"4: FLOCK  ADVISORY  WRITE 44 {dev} 0 EOF\n")
    assert lock_holder(tmp_path, table) == 44
    assert lock_holder(tmp_path, tmp_path / "unreadable") is None
    assert lock_holder(tmp_path / "no-run-here", table) is None


def test_damaged_files_are_a_state_not_a_crash(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text('{"model": {"name": "m"')
    assert status_of(run).state == "damaged" and "run.json" in (status_of(run).problem or "")
    (run / "run.json").write_text(json.dumps({"model": {"name": "m"}, "method": {"name": "none"},
                                              "benchmarks": {"b": {"kind": "over_refusal", "n": 2},
                                                             "mmlu": {"kind": "capability", "n": 57}}}))
    (run / "samples.jsonl").write_text('{"benchmark": "b", "id": "1"}\nnot json\n{"benchmark": "b", "id": "2"}\n')
    damaged = status_of(run)
    assert damaged.state == "damaged" and damaged.total == 2 and "line 2" in (damaged.problem or "")
    (run / "samples.jsonl").write_text('{"benchmark": "b", "id": "1"}\n{"benchmark": "b", "id": "2"')  # cut off
    assert (status_of(run).state, status_of(run).generated) == ("stopped", 1)


def test_without_a_lock_table_an_unfinished_run_is_not_called_stopped(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"benchmarks": {"b": {"kind": "safety", "n": 3}}}))
    monkeypatch.setattr(runstatus, "PROC_LOCKS", tmp_path / "no-such-table")
    assert status_of(run).state == "unfinished"
    (run / "results.json").write_text("{}")
    assert status_of(run).state == "finished"


def test_idle_times_read_naturally() -> None:
    assert [describe_idle(s) for s in (None, 12, 600, 4 * 3600)] == ["-", "12 s", "10 min", "4.0 h"]


@pytest.mark.parametrize("methods", ["none", "none,self-cd"])
def test_the_resume_command_of_a_run_without_out_resumes_that_directory(
        methods: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["harness", "run", "--model", str(tiny_model_dir), "--method", methods, "--benchmark", "demo",
            "--limit", "2", "--judge", "strmatch", "--max-new-tokens", "8"]
    monkeypatch.setattr(sys, "argv", argv)
    assert main(argv[1:]) == 0
    [first] = [d for d in (tmp_path / "runs").iterdir()]
    run_dir = first / "none" if "," in methods else first
    (run_dir / "results.json").unlink()  # as if stopped before the end
    (run_dir / "verdicts.jsonl").unlink()
    command = status_of(run_dir).command
    assert command is not None and command.startswith(shlex.join(argv))
    words = shlex.split(command)
    assert Path(words[words.index("--out") + 1]) == first  # several methods: their common root
    capsys.readouterr()
    assert main(words[1:]) == 0
    assert [d for d in (tmp_path / "runs").iterdir()] == [first]  # no new timestamped folder
    assert status_of(run_dir).state == "finished"
