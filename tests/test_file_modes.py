"""One rule for every file a run writes: the mode ``open`` would give it, 0666 less the umask.

Atomic writes go through ``tempfile.mkstemp``, which creates 0600 files whatever the umask;
these tests run real runs and a real report under a umask that makes 0600 and 0644 both wrong.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from orbench_harness.store import JsonlLog, file_mode, write_json_atomic

UMASK = 0o007  # group may write, others nothing: neither mkstemp's 0600 nor a default 0644


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_file_of_a_run_and_its_report_follows_the_umask(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    report = tmp_path / "report.html"

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orbench_harness.cli", *args], capture_output=True, text=True,
                              timeout=600, env=dict(os.environ), preexec_fn=lambda: os.umask(UMASK))

    r = harness("run", "--model", str(tiny_model_dir), "--benchmark", "demo-benign", "--limit", "3",
                "--max-new-tokens", "8", "--judge", "strmatch", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    r = harness("report", str(out), "--format", "html", "--out", str(report))
    assert r.returncode == 0, r.stderr[-3000:]
    files = [p for p in out.iterdir() if p.is_file()] + [report]
    names = {p.name for p in files}
    assert {"run.json", "results.json", "samples.jsonl", "verdicts.jsonl"} <= names
    wrong = {p.name: oct(_mode(p)) for p in files if _mode(p) != 0o666 & ~UMASK}
    assert not wrong, wrong


def test_atomic_writers_follow_the_umask_in_process(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        assert file_mode() == 0o664
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        log = JsonlLog(tmp_path / "b.jsonl", ("id",))
        log.append([{"id": "1"}])
        log.rewrite([{"id": "2"}])
        assert _mode(tmp_path / "a.json") == _mode(tmp_path / "b.jsonl") == 0o664
    finally:
        os.umask(old)
