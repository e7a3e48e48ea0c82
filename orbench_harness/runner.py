"""Orchestrates one run: resolve -> check -> generate -> judge -> score -> store.

No model code lives here. The model is loaded lazily, only when something is missing from
both the run directory and the cache, so a finished run repeats in a fraction of a second
and a resumed run loads the model only if it still has generations to make.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from orbench_harness import console
from orbench_harness.cache import Cache, PrefixedKV, cache_key
from orbench_harness.errors import HarnessError
from orbench_harness.events import RunEnd, RunStart, SampleJudged
from orbench_harness.finished import repeat_finished
from orbench_harness.metrics import rate_stats, summarize
from orbench_harness.paths import cache_dir
from orbench_harness.protocols import (
    CapabilityBenchmark,
    EvalContext,
    ScoringPolicy,
)
from orbench_harness.registry import Registry
from orbench_harness.resolution import LazyPolicy, Resolved, describe, resolve, train_sampler
from orbench_harness.spec import RunSpec, command_line, git_sha, identity, package_versions
from orbench_harness.store import JsonlLog, RunStore
from orbench_harness.types import GenParams, JudgeItem, Label, Prompt, Sample


def run(spec: RunSpec, out: Path, *, registry: Registry | None = None) -> dict[str, Any]:
    """Execute (or resume) a run into ``out`` and return results.json's content."""
    t_start = time.perf_counter()
    registry = registry or Registry()
    finished = repeat_finished(spec, out, registry, train_sampler(registry, spec))  # before torch, model, judge
    if finished is not None:
        return finished
    r = resolve(spec, registry)
    cache_path = cache_dir() / "cache.sqlite"  # a bad ORBENCH_CACHE_DIR stops here, before --out is written
    store = RunStore(out)
    judge_id = f"{r.judge.name}@{r.judge.version}"
    fp = r.method.fingerprint()
    meta = {
        "identity": identity(spec, r.model.key, fp, judge_id),
        "spec": spec.to_json(),
        "model": {"name": r.model.name, **r.model.key},
        "method": {"name": r.method.name, "fingerprint": fp},
        "judge": {"name": r.judge.name, "version": r.judge.version},
        "benchmarks": {
            n: {"kind": b.kind, "metric": b.metric, "n": len(r.samples[n]),
                "files": [{"path": f.path, "sha256": f.sha256} for f in b.data_files()]}
            for n, b in r.benchmarks.items()
        },
        "generation": {k: spec.max_new_tokens_for(k) for k in ("over_refusal", "safety", "capability")},
        "device": describe(r.backend),
        "versions": package_versions(),
        "git_sha": git_sha(),
        "command": command_line(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with store.locked():
        resumed = store.open_run(meta)
        if resumed:
            console.info(f"resuming run in {out}")
        console.debug(f"cache {cache_path}; method fingerprint {fp[:16]}")
        r.judge.preflight()
        registry.pm.hook.orbench_on_run_start(
            event=RunStart(out, r.model.name, r.method.name, tuple(r.benchmarks), r.judge.name)
        )
        cache = Cache(cache_path)
        try:
            with ExitStack() as stack:
                lazy = LazyPolicy(r, stack, console.info)
                records = _generate(r, store, cache, lazy)
                capability = _capability(r, store, cache, lazy)
            verdicts = _judge(r, store, cache, records, registry, out)
        finally:
            cache.close()
        results = _results(r, records, verdicts, capability)
        _check_unparsed(r, results)
        results["timing"] = {"seconds": round(time.perf_counter() - t_start, 3),
                             "method_prepare_seconds": round(lazy.prepare_seconds, 3),
                             "model_loaded": lazy.handle is not None}
        store.write_results(results)
        registry.pm.hook.orbench_on_run_end(event=RunEnd(out, results, time.perf_counter() - t_start))
        return results


def _gen_key(r: Resolved, prompt: Prompt, params: GenParams) -> str:
    return cache_key("gen", {
        "model": r.model.key, "method": r.method.fingerprint(),
        "messages": prompt.to_json(), "params": asdict(params),
    })


def _generate(r: Resolved, store: RunStore, cache: Cache, lazy: LazyPolicy) -> dict[str, dict[str, Any]]:
    """Ensure one samples.jsonl record per sample; returns records keyed 'bench/id'."""
    wanted = {(name, s.id) for name, samples in r.samples.items() for s in samples}
    done = store.samples.keep(wanted.__contains__, "prompts this run does not have")
    todo: list[tuple[str, Sample, Prompt, GenParams, str]] = []
    for name, samples in r.samples.items():
        params = GenParams(max_new_tokens=r.spec.max_new_tokens_for(r.benchmarks[name].kind), seed=r.spec.seed)
        for s in samples:
            if (name, s.id) in done:
                continue
            prompt = s.as_prompt()
            todo.append((name, s, prompt, params, _gen_key(r, prompt, params)))
    hits = cache.get_many(t[4] for t in todo)
    fresh = [_record(n, s, hits[k]) for n, s, _, _, k in todo if k in hits]
    store.samples.append(fresh)
    misses = [t for t in todo if t[4] not in hits]
    if fresh:
        console.info(f"{len(fresh)} generations from cache")
    if misses:
        by_params: dict[GenParams, list[tuple[str, Sample, Prompt, GenParams, str]]] = {}
        for t in misses:
            by_params.setdefault(t[3], []).append(t)
        policy = lazy.get()  # loading and training report their own progress, before this phase's
        with console.progress() as prog:
            task = prog.add_task("generating", total=len(misses))
            for params, group in by_params.items():
                def on_batch(idx: list[int], comps: list[Any], group: list[Any] = group) -> None:
                    items = [(group[i], c) for i, c in zip(idx, comps, strict=True)]
                    # the run's own record first: a cache write that fails (a full disk) loses nothing
                    store.samples.append([_record(t[0], t[1], _comp_json(c)) for t, c in items])
                    cache.put_many([(t[4], _comp_json(c)) for t, c in items], kind="gen")
                    prog.advance(task, len(items))

                policy.generate([t[2] for t in group], params, batch_size=lazy.batch_size, on_batch=on_batch)
    return {f"{rec['benchmark']}/{rec['id']}": rec for rec in store.samples.read().values()
            if rec["benchmark"] in r.samples}


def _comp_json(c: Any) -> dict[str, Any]:
    return {"text": c.text, "n_prompt_tokens": c.n_prompt_tokens, "n_new_tokens": c.n_new_tokens,
            "finish_reason": c.finish_reason, "truncated_prompt": c.truncated_prompt}


def _record(bench: str, s: Sample, comp: Mapping[str, Any]) -> dict[str, Any]:
    return {"benchmark": bench, "id": s.id, "prompt": s.prompt, "expected": s.expected,
            "completion": comp["text"], "n_new_tokens": comp["n_new_tokens"],
            "finish_reason": comp["finish_reason"], "truncated_prompt": comp["truncated_prompt"],
            "meta": dict(s.meta)}


def _capability(r: Resolved, store: RunStore, cache: Cache, lazy: LazyPolicy) -> dict[str, dict[str, Any]]:
    """Run capability benchmarks (MMLU, perplexity, MT-Bench), one stored result each."""
    log = JsonlLog(store.dir / "capability.jsonl", ("benchmark",))
    done = log.read()
    out: dict[str, dict[str, Any]] = {}
    for name, bench in r.benchmarks.items():
        if not (isinstance(bench, CapabilityBenchmark) and bench.kind == "capability"):
            continue
        if (name,) in done:
            out[name] = done[(name,)]["metrics"]
            continue
        policy = lazy.get()
        if not isinstance(policy, ScoringPolicy):
            # a served model says why it cannot score (``scoring_unavailable``): the benchmark is
            # recorded as skipped with that reason, never given a number it did not measure
            why: str | None = getattr(policy, "scoring_unavailable", None)
            if why is None:
                raise HarnessError(f"benchmark {name!r} needs log-probabilities, which this backend lacks")
            if not getattr(bench, "scores_served", False):  # MMLU has protocols for it; perplexity not
                console.warn(f"{name}: skipped: {why}")
                out[name] = {"n": 0, "skipped": why}
                log.append([{"benchmark": name, "metrics": out[name]}])
                continue
        prefix = {"model": r.model.key, "method": r.method.fingerprint(), "benchmark": name}
        with console.progress() as prog:
            task = prog.add_task(name, total=None)
            ctx = EvalContext(
                seed=r.spec.seed, limit=_cap_limit(r, name), batch_size=r.spec.fixed_batch_size(),
                kv=PrefixedKV(cache, prefix), key_prefix=prefix,
                progress=_progress_cb(prog, task), judge=r.judge,
            )
            metrics = bench.evaluate(cast(ScoringPolicy, policy), ctx)  # or a served one (scores_served)
        log.append([{"benchmark": name, "metrics": metrics}])
        out[name] = metrics
    return out


def _progress_cb(prog: Any, task: Any) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    return update


def _cap_limit(r: Resolved, name: str) -> int | None:
    cap = Registry().suite_cap(r.spec.benchmarks, name)
    return min([c for c in (r.spec.limit, cap) if c is not None], default=None)


def _judge(r: Resolved, store: RunStore, cache: Cache, records: dict[str, dict[str, Any]],
           registry: Registry, out: Path) -> dict[str, dict[str, Any]]:
    """Ensure one verdicts.jsonl record per sample for this judge. An unparsed verdict is a failed
    call, not an answer: it is recorded (and counted) but never cached, and asked again on resume."""
    wanted = {(rec["benchmark"], rec["id"]) for rec in records.values()}
    stored = store.verdicts.keep(lambda k: k[:2] in wanted, "prompts this run does not have")
    unparsed = {k for k, v in stored.items() if k[2] == r.judge.name and v["label"] is None}
    if unparsed:  # asked again below; dropped first, so the file never holds both answers
        store.verdicts.rewrite(v for k, v in stored.items() if k not in unparsed)
    done = {f"{b}/{i}": v for (b, i, j), v in stored.items() if j == r.judge.name and (b, i, j) not in unparsed}
    todo = [(k, rec) for k, rec in records.items() if k not in done]
    keys = {k: cache_key("verdict", {"judge": r.judge.name, "version": r.judge.version,
                                      "prompt": rec["prompt"], "response": rec["completion"]})
            for k, rec in todo}
    hits = cache.get_many(keys.values())

    def emit(items: list[tuple[str, dict[str, Any], dict[str, Any]]], cached: bool) -> None:
        store.verdicts.append([{"benchmark": rec["benchmark"], "id": rec["id"], "judge": r.judge.name,
                                "judge_version": r.judge.version, **v} for _, rec, v in items])
        for k, rec, v in items:
            done[k] = v
            lab = Label(v["label"]) if v["label"] else None
            registry.pm.hook.orbench_on_sample_judged(
                event=SampleJudged(out, rec["benchmark"], rec["id"], lab, cached))

    emit([(k, rec, hits[keys[k]]) for k, rec in todo if keys[k] in hits], cached=True)
    misses = [(k, rec) for k, rec in todo if keys[k] not in hits]
    if misses:
        with console.progress() as prog:
            task = prog.add_task(f"judging ({r.judge.name})", total=len(misses))
            for start in range(0, len(misses), r.spec.judge_batch_size):
                chunk = misses[start : start + r.spec.judge_batch_size]
                verdicts = r.judge.judge([JudgeItem(rec["prompt"], rec["completion"]) for _, rec in chunk])
                if len(verdicts) != len(chunk):
                    raise HarnessError(
                        f"judge {r.judge.name!r} returned {len(verdicts)} verdicts for {len(chunk)} items"
                    )
                vals = [{"label": v.label.value if v.label else None, "raw": v.raw} for v in verdicts]
                cache.put_many([(keys[k], v) for (k, _), v in zip(chunk, vals, strict=True) if v["label"]],
                               kind="verdict")
                emit([(k, rec, v) for (k, rec), v in zip(chunk, vals, strict=True)], cached=False)
                prog.advance(task, len(chunk))
    return {k: done[k] for k in records}


def _check_unparsed(r: Resolved, results: Mapping[str, Any]) -> None:
    """Warn when the judge left verdicts unparsed; stop past ``--max-unparsed``.

    An endpoint that answers prose instead of a label gives nothing but unparsed verdicts, and
    rates over the few parsed ones (or none) look like results unless someone says otherwise.
    """
    counts = {n: int(b.get("unparsed", 0)) for n, b in results["benchmarks"].items() if b["kind"] != "capability"}
    total, judged = sum(counts.values()), sum(len(r.samples[n]) for n in counts)
    if not total:
        return
    where = ", ".join(f"{n}: {c}" for n, c in counts.items() if c)
    what = (f"{total} of {judged} verdicts of judge {r.judge.name!r} are unparsed ({where}): the judge's answer "
            "held no label")
    limit = r.spec.max_unparsed
    if limit is not None and total > limit:
        raise HarnessError(f"{what}, more than --max-unparsed {limit}; check the judge (its raw answers are in "
                           "verdicts.jsonl), then re-run the same command: unparsed verdicts are asked again")
    console.warn(f"{what}; they are counted as unparsed, not cached, and asked again on a re-run")


def _results(r: Resolved, records: dict[str, dict[str, Any]], verdicts: dict[str, dict[str, Any]],
             capability: dict[str, dict[str, Any]]) -> dict[str, Any]:
    benchmarks: dict[str, dict[str, Any]] = {}
    broad: dict[str, list[bool]] = {}  # per-prompt refusals of the broad safety score's sets
    for name, bench in r.benchmarks.items():
        if name in capability:
            benchmarks[name] = {"kind": "capability", "metric": bench.metric, **capability[name]}
            continue
        keys = [f"{name}/{s.id}" for s in r.samples[name]]
        labels = [Label(verdicts[k]["label"]) if verdicts[k]["label"] else None for k in keys]
        stats = rate_stats(labels)
        stats["truncated_prompts"] = sum(1 for k in keys if records[k].get("truncated_prompt"))
        stats["empty_completions"] = empty = sum(1 for k in keys if not records[k]["completion"].strip())
        if empty * 10 >= len(keys) > 0:
            console.warn(f"{name}: {empty} of {len(keys)} completions are empty, which the strmatch and classifier "
                         "judges count as compliance: the model or the method may be broken (NaN weights do this)")
        benchmarks[name] = {"kind": bench.kind, "metric": bench.metric, **stats}
        if getattr(bench, "broad_safety", False):
            benchmarks[name]["broad_safety"] = True
            broad[name] = [lab.is_refusal for lab in labels if lab is not None]
    return {
        "model": r.model.name,
        "method": r.method.name,
        "method_fingerprint": r.method.fingerprint(),
        "judge": r.judge.name,
        "judge_version": r.judge.version,
        "split": r.spec.split,
        "seed": r.spec.seed,
        "benchmarks": benchmarks,
        "summary": summarize(benchmarks, broad, seed=r.spec.seed),
    }
