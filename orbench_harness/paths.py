"""Where the harness writes: the user cache dir, never the installed package."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$ORBENCH_CACHE_DIR`` or the platform's user cache directory."""
    env = os.environ.get("ORBENCH_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("orbench-harness"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir_from_env() -> Path | None:
    """``$ORBENCH_DATA_DIR``: a local directory laid out like ``shared/datasets``."""
    env = os.environ.get("ORBENCH_DATA_DIR")
    return Path(env).expanduser() if env else None
