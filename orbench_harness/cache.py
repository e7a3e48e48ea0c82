"""The SQLite cache: generations, verdicts and per-item capability scores, as JSON.

Keys are sha256 of canonical JSON of everything that determines a value (model + revision,
method fingerprint, prompt, generation params, seed; judge name + version for verdicts), so
re-running is free and swapping the judge re-judges without regenerating. WAL mode lets two
processes share one cache. Errors are never cached: only successful values are ``put``.

A corrupted database file is moved aside (its path reported) and a fresh one started (a full
disk is not corruption: its error is raised, and the CLI reports it as such); a row
whose JSON does not parse is reported, deleted and treated as a miss (then recomputed).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from orbench_harness.console import warn
from orbench_harness.errors import HarnessError

SCHEMA_VERSION = 1


# SQLite's primary result codes for a damaged file (extended codes keep them in the low byte)
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 10, 11, 13, 26


def is_corruption(e: sqlite3.DatabaseError) -> bool:
    """Whether ``e`` says the database file itself is damaged (the only case in which it is
    moved aside). A full disk must not count: moving a large cache aside because a write did
    not fit would throw away hours of cached generations for a fresh, empty one."""
    code = getattr(e, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(e)
    return "file is not a database" in text or "malformed" in text


def is_disk_error(e: sqlite3.DatabaseError) -> bool:
    """Whether ``e`` is SQLite failing to write to its disk (full, or an I/O error, which is what
    a full disk gives when the shared-memory file cannot grow)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_IOERR, SQLITE_FULL)
    text = str(e)
    return "disk is full" in text or "disk I/O error" in text


BUSY_TIMEOUT_ENV = "ORBENCH_CACHE_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT = 60.0


def busy_timeout() -> float:
    """Seconds to wait for another process's write lock: ``$ORBENCH_CACHE_BUSY_TIMEOUT`` or 60.
    A cache on a slow network disk may need longer; a bad value is a one-line error."""
    raw = os.environ.get(BUSY_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_BUSY_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise HarnessError(f"{BUSY_TIMEOUT_ENV} must be a number of seconds (got {raw!r})")
    return value


def is_locked(e: sqlite3.Error) -> bool:
    """Whether ``e`` is SQLite giving up on another connection's lock (after the busy timeout)."""
    text = str(e)
    return "database is locked" in text or "database table is locked" in text


def cache_key(kind: str, payload: Mapping[str, Any]) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace) of ``kind`` + payload."""
    blob = json.dumps({"kind": kind, "v": SCHEMA_VERSION, **payload}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Cache:
    """A key -> JSON value store in one SQLite file (WAL), safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = busy_timeout()
        self._lock = threading.Lock()
        with self._explain_locks():
            self._conn = self._open()

    @contextmanager
    def _explain_locks(self) -> Iterator[None]:
        """A lock held past the busy timeout as a one-line error naming the file and the way out,
        rather than a traceback: another process (a stuck run, an open sqlite3 shell, a backup
        tool) is writing, and nothing here can end that."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if not is_locked(e):
                raise
            raise HarnessError(
                f"cache {self.path} stayed locked by another process for {self.timeout:g}s; let that process "
                f"finish (or end it), or set ORBENCH_CACHE_DIR to another directory, or a longer "
                f"{BUSY_TIMEOUT_ENV}, then re-run the same command"
            ) from None

    def _open(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
            try:
                conn.execute("SELECT count(*) FROM kv").fetchone()
            except BaseException:
                conn.close()  # a failed open must not keep the file (and its disk) in use
                raise
            return conn
        except sqlite3.DatabaseError as e:
            if is_disk_error(e):
                raise HarnessError(f"cache {self.path}: {e}, left as it is; if its disk is full, free some space "
                                   "(or set ORBENCH_CACHE_DIR to another disk) and re-run") from None
            if not is_corruption(e):  # a locked or unreadable file: not ours to discard
                raise
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            warn(f"cache {self.path} is corrupted ({e}); moved to {aside}, starting a new one")
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.rename(Path(str(aside) + suffix))
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=False, isolation_level=None)
        try:
            _wal(conn, self.timeout)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, kind TEXT NOT NULL, "
                "value TEXT NOT NULL, created REAL NOT NULL)"
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def get(self, key: str) -> Any | None:
        """The JSON value or None (also None, after a warning, for an unreadable row)."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values for the keys present; unreadable rows are deleted and left out."""
        keys = list(keys)
        found: dict[str, Any] = {}
        with self._lock, self._explain_locks():
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, value FROM kv WHERE key IN ({marks})", chunk
                ).fetchall()
                for k, v in rows:
                    try:
                        found[k] = json.loads(v)
                    except (json.JSONDecodeError, TypeError):
                        warn(f"cache {self.path}: unreadable entry {k[:12]}, recomputing it")
                        self._conn.execute("DELETE FROM kv WHERE key = ?", (k,))
        return found

    def put(self, key: str, value: Any, kind: str = "value") -> None:
        """Store one value."""
        self.put_many([(key, value)], kind)

    def put_many(self, items: Iterable[tuple[str, Any]], kind: str = "value") -> None:
        """Store values in one transaction (a batch is committed together or not at all)."""
        now = time.time()
        rows = [(k, kind, json.dumps(v, ensure_ascii=False), now) for k, v in items]
        if not rows:
            return
        with self._lock, self._explain_locks():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO kv (key, kind, value, created) VALUES (?, ?, ?, ?)", rows
                )
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some errors (a full disk): a second
                # ROLLBACK would fail and its error would hide the one that matters
                if self._conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise

    def count(self, kind: str | None = None) -> int:
        """Number of entries (of one kind)."""
        with self._lock:
            if kind is None:
                row = self._conn.execute("SELECT count(*) FROM kv").fetchone()
            else:
                row = self._conn.execute("SELECT count(*) FROM kv WHERE kind = ?", (kind,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


class PrefixedKV:
    """The ``KeyValue`` view capability benchmarks get: keys hashed with a fixed prefix."""

    def __init__(self, cache: Cache, prefix: Mapping[str, Any], kind: str = "score") -> None:
        self.cache = cache
        self.prefix = dict(prefix)
        self.kind = kind

    def _key(self, key: str) -> str:
        return cache_key(self.kind, {**self.prefix, "item": key})

    def get(self, key: str) -> Any | None:
        """A stored value or None."""
        return self.cache.get(self._key(key))

    def put(self, key: str, value: Any) -> None:
        """Store a value."""
        self.cache.put(self._key(key), value, self.kind)


def _wal(conn: sqlite3.Connection, patience: float = 60.0) -> None:
    """Switch the database to WAL mode, waiting for other processes as the busy timeout would.

    The switch needs the file to itself. Two grid workers starting together on a fresh cache
    once failed here with "database is locked" despite the busy timeout (SQLite returns BUSY
    without waiting where waiting could deadlock, as when two connections both want the
    exclusive lock), so the switch is retried until ``patience`` runs out. The mode is stored in
    the file: only the first opening can ever wait.
    """
    deadline = time.monotonic() + patience
    delay = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
