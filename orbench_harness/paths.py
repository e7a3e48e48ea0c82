"""Where the harness writes: the user cache dir, never the installed package."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

from orbench_harness.errors import HarnessError


def cache_dir() -> Path:
    """``$ORBENCH_CACHE_DIR`` or the platform's user cache directory."""
    env = os.environ.get("ORBENCH_CACHE_DIR")
    path = Path(env).expanduser() if env else Path(user_cache_dir("orbench-harness"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a regular file there, or no permission: say which setting to change
        where = "ORBENCH_CACHE_DIR" if env else "the user cache directory"
        why = "it is not a directory" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror
        raise HarnessError(f"cannot use {path} as the cache directory ({why}); point {where} at a "
                           "directory you can write to (ORBENCH_CACHE_DIR=DIR)") from None
    return path


def data_dir_from_env() -> Path | None:
    """``$ORBENCH_DATA_DIR``: a local data directory in the layout docs/data.md describes."""
    env = os.environ.get("ORBENCH_DATA_DIR")
    return Path(env).expanduser() if env else None
