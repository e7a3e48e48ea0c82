"""Where the harness writes: the user cache dir, never the installed package."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_dir() -> Path:
    """``$ORBENCH_CACHE_DIR`` or the platform's user cache directory."""
    env = os.environ.get("ORBENCH_CACHE_DIR")
    path = Path(env).expanduser() if env else Path(user_cache_dir("orbench-harness"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir_from_env() -> Path | None:
    """``$ORBENCH_DATA_DIR``: a local data directory in the layout docs/data.md describes."""
    env = os.environ.get("ORBENCH_DATA_DIR")
    return Path(env).expanduser() if env else None
