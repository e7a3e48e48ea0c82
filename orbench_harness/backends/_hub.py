"""Hub failures while loading a model, as one-line errors that say what to do.

``from_pretrained`` on a hub id that cannot be fetched raises a bare ``OSError`` with a
traceback through huggingface_hub. For a researcher that is the commonest first failure on a
new machine (no network, a gated Llama or Gemma repo without an accepted licence, a typo in the
id or revision), so the backends translate it into a ``HarnessError`` naming the model, the
cause and the fix. The cause is read from the exception chain by class name, which keeps this
module free of a huggingface_hub import and robust to where transformers wraps the error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orbench_harness.errors import HarnessError
from orbench_harness.hubcheck import ensure_decided
from orbench_harness.types import ModelSpec


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes/contexts, innermost last, without cycles."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def explain(spec: ModelSpec, exc: BaseException) -> str:
    """One line: which model could not be fetched, why, and how to get past it."""
    what = f"model {spec.name!r} ({spec.source}@{spec.revision or 'main'})"
    names = {type(e).__name__ for e in _chain(exc)}
    if "GatedRepoError" in names:
        return (f"{what} is gated on the Hugging Face hub: accept its licence on the model page, "
                "then `hf auth login` (or set HF_TOKEN)")
    if "RevisionNotFoundError" in names:
        return f"{what}: revision {spec.revision!r} does not exist on the hub"
    if "RepositoryNotFoundError" in names:
        return (f"{what} was not found on the hub (a typo, or a private repo: log in with "
                "`hf auth login`)")
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names:
        return (f"{what} is not in the local Hugging Face cache and the hub cannot be reached "
                "(offline, or HF_HUB_OFFLINE=1): download it where the hub is reachable "
                f"(`hf download {spec.source}`) and copy the cache, or pass a local model "
                "directory as --model")
    return f"{what} could not be loaded from the hub: {str(exc).splitlines()[0]}"


@contextmanager
def hub_errors(spec: ModelSpec, source: str) -> Iterator[None]:
    """Turn an ``OSError`` from fetching a hub model into a ``HarnessError``.

    Local directories and converted GGUF files pass through untouched: an OSError there is a
    broken file the traceback should show, not a hub problem. Before a hub id is fetched the
    hub is probed once per process (``hubcheck``), so a machine without a network fails in
    seconds instead of after a minute of retries.
    """
    if not Path(source).exists():
        ensure_decided()
    try:
        yield
    except OSError as e:
        if Path(source).exists():
            raise
        raise HarnessError(explain(spec, e)) from e
