"""Recognising a finished run before anything heavy is loaded.

Repeating a finished command used to cost seconds: resolving the run asked torch which device
it would use (for ``dtype=auto`` and run.json's hardware line), and the judge and benchmarks
were built only to find every record present. This module answers "is ``out`` already this
run, finished?" from run.json, results.json and the spec, with the same identity the run store
checks (``spec.identity``: spec, model key, method fingerprint, judge version), so a re-run
prints the stored results in a fraction of a second. Whenever it cannot be sure (a damaged or
missing file, another spec, a newer harness, data files that changed, unparsed verdicts that a
re-run would ask again, a directory another process holds) it says "not finished" and the full
runner decides, with its own messages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from orbench_harness import console
from orbench_harness.data import sha256_file
from orbench_harness.events import RunEnd, RunStart
from orbench_harness.protocols import MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.spec import RunSpec, identity
from orbench_harness.store import RECORD_FILES, RunStore, lock_holder
from orbench_harness.types import ModelSpec, Sample

TrainSamples = Callable[[str], list[Sample]]

# What a re-run of a finished run says (one place, so the resume wording stays consistent).
RUN_FINISHED = "finished, nothing to do"


def finished_message(out: Path) -> str:
    """The line a re-run of a finished run prints."""
    return f"run in {out}: {RUN_FINISHED}"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _current_identity(spec: RunSpec, registry: Registry, train: TrainSamples) -> str | None:
    """``spec.identity`` as the runner computes it, from the components' cheap parts only:
    the model alias, the backend's concrete precision (which asks torch only where a GPU
    driver is present), the method's fingerprint and the judge's version. None for a backend
    that learns the model's identity by asking a server (``identify``): only the runner asks."""
    backend = registry.create("backends", spec.backend, dict(spec.backend_args))
    if getattr(backend, "identify", None) is not None:
        return None
    own = getattr(backend, "resolve_model", None)
    model: ModelSpec = own(spec.model) if own is not None else registry.resolve_model(spec.model)
    model = replace(model, chat_template=spec.chat_template or model.chat_template, dtype=spec.dtype or model.dtype)
    concrete = getattr(backend, "concrete", None)
    if concrete is not None:
        model = concrete(model)
    env = MethodEnv(model=model, seed=spec.seed, train_samples=train, data_dir=spec.data_dir)
    method = registry.create("methods", spec.method, dict(spec.method_args), env)
    judge = registry.create("judges", spec.judge, dict(spec.judge_args))
    return identity(spec, model.key, method.fingerprint(), f"{judge.name}@{judge.version}")


def _data_unchanged(meta: Mapping[str, Any]) -> bool:
    """Every local data file run.json pinned still has its recorded sha256 (hub tables, named
    by a pinned reference rather than a path, are taken as recorded)."""
    for bench in (meta.get("benchmarks") or {}).values():
        for f in bench.get("files") or []:
            path = Path(str(f.get("path", "")))
            if not path.is_absolute():
                continue
            if not path.is_file() or sha256_file(path) != f.get("sha256"):
                return False
    return True


def _complete(results: Mapping[str, Any]) -> bool:
    """results.json has every section and no unparsed verdict (those are asked again)."""
    benches = results.get("benchmarks")
    if not isinstance(benches, dict) or "summary" not in results:
        return False
    return all(isinstance(b, dict) and not b.get("unparsed") for b in benches.values())


def _newest_is_results(out: Path) -> bool:
    """results.json was written after run.json and every record file: a resumed run that was
    stopped rewrites run.json (or appends records) after the last results.json."""
    try:
        res = (out / "results.json").stat().st_mtime_ns
        others = [(out / n).stat().st_mtime_ns for n in ("run.json", *RECORD_FILES)
                  if n != "results.json" and (out / n).exists()]
    except OSError:
        return False
    return all(res >= t for t in others)


def finished_results(spec: RunSpec, out: Path, registry: Registry, train: TrainSamples) -> dict[str, Any] | None:
    """results.json's content when ``out`` holds this spec's run, finished; else None.

    ``train`` is the run's train-split access (``resolution.train_sampler``): several methods
    fingerprint their training data when built. The caller then returns the results instead of
    running (``runner.run``); None means "run as usual".
    """
    t0 = time.perf_counter()
    meta, results = _read(out / "run.json"), _read(out / "results.json")
    if meta is None or results is None or not _complete(results) or not _newest_is_results(out):
        return None
    if lock_holder(out) is not None:  # another run is writing there: the runner says so
        return None
    recorded_spec = meta.get("spec") or {}
    if recorded_spec.get("data_dir") != spec.to_json()["data_dir"]:
        return None
    try:
        if (meta.get("versions") or {}).get("orbench-harness") != metadata.version("orbench-harness"):
            return None
    except metadata.PackageNotFoundError:
        return None
    try:
        now = _current_identity(spec, registry, train)
        same = now is not None and meta.get("identity") == now
    except Exception:  # any error here is the full runner's to report, in its own words
        return None
    if not same or not _data_unchanged(meta):
        return None
    recorded = results.get("timing")
    timing: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    return {**results, "timing": {**timing, "seconds": round(time.perf_counter() - t0, 3),
                                  "method_prepare_seconds": 0.0, "model_loaded": False}}


def repeat_finished(spec: RunSpec, out: Path, registry: Registry, train: TrainSamples) -> dict[str, Any] | None:
    """For ``runner.run``: when ``out`` is this spec's finished run, say so, rewrite results.json's
    timing (as a re-run through the runner would: nothing loaded), tell plugins the run started
    and ended, and return the results; else None, touching nothing."""
    t0 = time.perf_counter()
    results = finished_results(spec, out, registry, train)
    if results is None:
        return None
    store = RunStore(out)
    with store.locked():
        console.info(finished_message(out))
        registry.pm.hook.orbench_on_run_start(event=RunStart(
            out, str(results.get("model")), str(results.get("method")), tuple(results["benchmarks"]),
            str(results.get("judge"))))
        results["timing"]["seconds"] = round(time.perf_counter() - t0, 3)
        store.write_results(results)
        registry.pm.hook.orbench_on_run_end(event=RunEnd(out, results, time.perf_counter() - t0))
    return results
