"""Temporary directories for large writes into the cache, and the cleanup of those a killed
process left behind.

A model conversion writes ~500 MB into ``models/.tmp-*`` and renames it into place when done.
A SIGKILL (or a power cut) leaves the temporary behind, and nothing else would ever remove it.
The writer holds an advisory ``flock`` on the directory while it writes, which the kernel drops
when the process dies; a temporary counts as stale only when nobody holds that lock AND it is
older than ``STALE_AFTER`` (the age guards a writer on another host sharing the cache over a
filesystem whose locks it cannot see).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

TMP_PREFIX = ".tmp-"
STALE_AFTER = 3600.0  # seconds since the last write
# how writers that are not Python's own file objects say "disk full": safetensors (Rust), ...
DISK_FULL_SIGNS = ("No space left on device", "StorageFull", "os error 28", "Disk quota exceeded")
NEARLY_FULL = 64 * 1024  # bytes free below which a failed write is taken for a full disk


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Make a full disk under a writer into ``OSError(ENOSPC, path)``, which the CLI turns into
    its one-line "no space left ... re-run to resume" message.

    Python's own files already raise that, but torch's serializer says "basic_ios::clear:
    iostream error" and safetensors "os error 28", and neither names the file. A failure with
    the disk (nearly) full at ``path`` is taken for the full disk; anything else is re-raised.
    """
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT) and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except Exception as e:
        if any(sign in str(e) for sign in DISK_FULL_SIGNS) or _nearly_full(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from e
        raise


def _nearly_full(path: Path) -> bool:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        st = os.statvfs(existing)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NEARLY_FULL


@contextmanager
def locked_tempdir(parent: Path, prefix: str = TMP_PREFIX) -> Iterator[Path]:
    """A new directory under ``parent``, locked while the block runs and removed if it raises
    (Ctrl-C and SIGTERM included); the block renames it into place to keep it."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        with suppress(OSError):  # a filesystem without locks: the age alone then marks it stale
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Stale:
    """A temporary nobody writes to any more."""

    path: Path
    size: int  # bytes
    age: float  # seconds since its last write


def _in_use(path: Path) -> bool:
    """Whether a live process holds the directory's lock (taken and released at once if not)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _usage(path: Path) -> tuple[int, float]:
    """Total bytes under ``path`` and the newest modification time in it."""
    size, newest = 0, path.lstat().st_mtime
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = (Path(root) / name).lstat()
            except OSError:
                continue
            size += st.st_size
            newest = max(newest, st.st_mtime)
    return size, newest


def stale_temporaries(parent: Path, max_age: float = STALE_AFTER, prefix: str = TMP_PREFIX) -> list[Stale]:
    """Temporaries under ``parent`` older than ``max_age`` that no live process holds."""
    if not parent.is_dir():
        return []
    now = time.time()
    found = []
    for path in sorted(parent.glob(f"{prefix}*")):
        if not path.is_dir() or path.is_symlink():
            continue
        size, newest = _usage(path)
        if now - newest >= max_age and not _in_use(path):
            found.append(Stale(path, size, now - newest))
    return found


def remove_stale(parent: Path, max_age: float = STALE_AFTER) -> list[Stale]:
    """Remove the stale temporaries under ``parent``; returns what was removed."""
    removed = []
    for s in stale_temporaries(parent, max_age):
        shutil.rmtree(s.path, ignore_errors=True)
        if not s.path.exists():
            removed.append(s)
    return removed
