"""The cached artifact, else the computation: how every trained method's ``prepare`` starts.

A method's artifact directory is keyed by (model, fingerprint), so whatever a finished run left
there is exactly what this run would compute. Each trainer used to write the same four steps
(load, log that it was found, else compute, which saves); they are written once here so that
the "found" line and the order (the loader decides, the computation never runs on a hit) are
the same for every method. The loader returns None for a missing or incomplete artifact: each
method marks completion its own way (a file written last, a folder moved in atomically).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def cached_or_computed(
    artifact_dir: Path,
    load: Callable[[Path], T | None],
    compute: Callable[[], T],
    *,
    log: Callable[[str], None] | None = None,
    found: str | Callable[[T], str] = "",
) -> T:
    """``load(artifact_dir)`` when it finds a finished artifact, else ``compute()``.

    On a hit, ``log`` gets ``"<found> found in <artifact_dir>"`` (``found`` may read the loaded
    artifact, e.g. to say which kind of weights it holds); without ``log`` or ``found`` the hit
    is silent, as for an intermediate stage whose user-facing line comes later.
    """
    cached = load(artifact_dir)
    if cached is not None:
        what = found if isinstance(found, str) else found(cached)
        if log is not None and what:
            log(f"{what} found in {artifact_dir}")
        return cached
    return compute()
