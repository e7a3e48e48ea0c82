"""The run store and the SQLite cache: atomic writes, repair of damaged files, sharing."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from orbench_harness.cache import Cache, cache_key
from orbench_harness.errors import HarnessError
from orbench_harness.store import JsonlLog, RunStore


def test_cache_key_is_canonical() -> None:
    assert cache_key("gen", {"a": 1, "b": [1, 2]}) == cache_key("gen", {"b": [1, 2], "a": 1})
    assert cache_key("gen", {"a": 1}) != cache_key("verdict", {"a": 1})


def test_cache_roundtrip_and_persistence(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c.sqlite")
    c.put_many([("k1", {"text": "é"}), ("k2", [1, 2])], kind="gen")
    assert c.get_many(["k1", "k2", "k3"]) == {"k1": {"text": "é"}, "k2": [1, 2]}
    c.close()
    assert Cache(tmp_path / "c.sqlite").get("k2") == [1, 2]


def test_corrupted_cache_file_is_moved_aside(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    c = Cache(path)
    c.put("k", 1)
    assert c.get("k") == 1
    assert list(tmp_path.glob("c.sqlite.corrupt-*"))
    assert "corrupted" in capsys.readouterr().err


def test_unreadable_cache_row_is_a_miss(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c.sqlite")
    c._conn.execute("INSERT INTO kv VALUES ('bad', 'gen', '{not json', 0)")
    assert c.get("bad") is None
    assert c.count() == 0


def _writer(path: str, start: int) -> None:
    c = Cache(Path(path))
    for i in range(start, start + 200):
        c.put_many([(f"k{i}", {"i": i})])
    c.close()


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    Cache(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), s)) for s in (0, 200)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    c = Cache(path)
    assert c.count() == 400
    assert c.get("k399") == {"i": 399}


def test_jsonl_truncated_last_line_is_dropped_and_file_repaired(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "s.jsonl", ("benchmark", "id"))
    log.append([{"benchmark": "b", "id": "1", "x": 1}, {"benchmark": "b", "id": "2", "x": 2}])
    with log.path.open("a") as f:
        f.write('{"benchmark": "b", "id": "3", "x"')  # a write cut off by a kill
    recs = log.read()
    assert set(recs) == {("b", "1"), ("b", "2")}
    assert log.path.read_text().endswith("\n")
    assert len(log.path.read_text().splitlines()) == 2


def test_jsonl_corrupted_and_duplicate_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"benchmark": "b", "id": "1"}\n\x00garbage\n{"benchmark": "b", "id": "1"}\n[1]\n')
    recs = JsonlLog(path, ("benchmark", "id")).read()
    assert list(recs) == [("b", "1")]
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"benchmark": "b", "id": "1"}]


def test_run_dir_refuses_a_different_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "r")
    assert store.open_run({"identity": "A", "spec": {"method": "none"}}) is False
    assert store.open_run({"identity": "A", "spec": {"method": "none"}}) is True
    with pytest.raises(HarnessError, match="different run") as err:
        store.open_run({"identity": "B", "spec": {"method": "actor"}})
    assert "method ('none' there, 'actor' now)" in str(err.value)


def test_a_new_judge_version_is_named_as_the_difference(tmp_path: Path) -> None:
    """After a judge upgrade the same command must say *why* the old directory is refused."""
    store = RunStore(tmp_path / "r")
    spec = {"method": "none", "judge": "classifier"}
    store.open_run({"identity": "A", "spec": spec, "judge": {"version": "head-1"}})
    with pytest.raises(HarnessError, match=r"judge version \(head-1 there, head-2 now\)") as err:
        store.open_run({"identity": "B", "spec": spec, "judge": {"version": "head-2"}})
    assert "method" not in str(err.value).split("differs in")[1]  # only the real difference is named


def test_unwritable_output_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HarnessError, match="cannot write to output directory"):
        RunStore(blocker / "run")


def test_a_filesystem_without_locks_warns_and_runs_unguarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Some NFS set-ups answer flock with ENOLCK: the run goes on, with a warning, rather than
    crash; a directory that is really held is still refused."""
    import fcntl  # POSIX only, like the lock it stands in for (RunStore.locked)

    store = RunStore(tmp_path / "r")
    with store.locked(), pytest.raises(HarnessError, match="in use by another harness run"), \
            RunStore(tmp_path / "r").locked():
        pass

    def no_locks(fd: object, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    ran = False
    with store.locked():
        ran = True
    assert ran and "cannot lock the run directory (No locks available)" in capsys.readouterr().err


def test_a_fresh_cache_waits_for_another_process_instead_of_failing_locked(tmp_path: Path) -> None:
    """Grid workers open a new cache together, and switching the file to WAL needs it to itself:
    opening must wait for another process's read to end rather than fail "database is locked"
    (seen once in a grid test on a loaded machine; ``cache._wal`` retries the switch)."""
    import sqlite3
    import subprocess
    import sys

    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as db:  # a new file, still in rollback-journal mode
        db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL, "
                   "created REAL NOT NULL)")
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('BEGIN'); c.execute('SELECT count(*) FROM kv').fetchone(); print('reading', flush=True); "
         "time.sleep(1.5); c.execute('COMMIT')", str(path)],
        stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
    cache = Cache(path)
    cache.put("k", 1, kind="t")
    assert cache.count("t") == 1
    cache.close()
    assert reader.wait(timeout=60) == 0
