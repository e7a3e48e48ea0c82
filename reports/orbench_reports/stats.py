"""Statistics behind the reports: bootstrap intervals, alpha sweeps, Pareto fronts.

Kept apart from the table layout (``_tables.py``) because these read per-sample verdicts or
look across runs, while the tables only read results.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orbench_harness.runs import RunRecord, load_verdicts

N_BOOT = 2000


def bootstrap(
    runs: Sequence[RunRecord],
    over: Sequence[str],
    safety: Sequence[str],
    reference: str | None,
    *,
    seed: int,
    notes: list[str],
) -> dict[tuple[int, str], tuple[float, float]]:
    """95% percentile-bootstrap intervals from verdicts.jsonl (seeded numpy).

    Each benchmark's verdicts are resampled with replacement, N_BOOT times; Avg C.R, S.S and TS
    get intervals from the same replicates, so they carry every benchmark's uncertainty.
    Unparsed verdicts are left out, as they are of the rates.
    """
    out: dict[tuple[int, str], tuple[float, float]] = {}
    missing = []
    for pos, run in enumerate(runs):
        verdicts = load_verdicts(run.path, judge=run.judge)
        if not verdicts:
            missing.append(str(run.path))
            continue
        rng = np.random.default_rng(seed)
        labels: dict[str, list[str]] = {}
        for v in verdicts:
            if v.get("label") is not None:
                labels.setdefault(str(v["benchmark"]), []).append(str(v["label"]))
        reps: dict[str, np.ndarray[Any, Any]] = {}
        for b in sorted(set(over) | set(safety)):
            labs = labels.get(b)
            if not labs:
                continue
            if b in over:
                hits = np.array([lab == "full_compliance" for lab in labs], dtype=float)
            else:
                hits = np.array([lab != "full_compliance" for lab in labs], dtype=float)
            idx = rng.integers(0, len(hits), size=(N_BOOT, len(hits)))
            reps[b] = hits[idx].mean(axis=1) * 100
            out[(pos, f"cr:{b}" if b in over else f"ss:{b}")] = _interval(reps[b])
        cr = [reps[b] for b in over if b in reps]
        ss = [reps[b] for b in safety if b in reps and b == reference]
        ss = ss or [reps[b] for b in safety if b in reps]
        if cr:
            out[(pos, "avg_cr")] = _interval(np.mean(cr, axis=0))
        if ss:
            out[(pos, "ss")] = _interval(np.mean(ss, axis=0))
        if cr and ss:
            out[(pos, "ts")] = _interval((np.mean(cr, axis=0) + np.mean(ss, axis=0)) / 2)
    if missing:
        notes.append(f"No verdicts.jsonl for {len(missing)} run(s), so no intervals: {', '.join(missing)}")
    return out


def _interval(reps: np.ndarray[Any, Any]) -> tuple[float, float]:
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass(frozen=True, slots=True)
class Sweep:
    """Runs of one model and method that differ only in one numeric method argument."""

    model: str
    method: str
    arg: str
    fixed: tuple[tuple[str, str], ...]
    points: tuple[tuple[float, float, float], ...]  # (arg value, Avg C.R, S.S), sorted by value


def find_sweeps(runs: Sequence[RunRecord], frame: Any) -> list[Sweep]:
    """Sweeps in a group (the paper's Figure 6 plots C.R and S.S against ACTOR's alpha).

    Only runs over the same benchmarks form one curve: a validation run and a test run with
    the same settings otherwise would put two different measurements on one line. ``frame`` is
    the group's main table (one row per run, in ``runs`` order)."""
    sweeps: list[Sweep] = []
    by_method: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
    for pos, run in enumerate(runs):
        benches = tuple(sorted(run.results.get("benchmarks", {})))
        by_method.setdefault((run.model, run.method, benches), []).append(pos)
    for (model, method, _), positions in by_method.items():
        args = [runs[p].method_args for p in positions]
        for arg in sorted({k for a in args for k in a}):
            fixed_of = [tuple(sorted((k, v) for k, v in a.items() if k != arg)) for a in args]
            for fixed in dict.fromkeys(fixed_of):
                pts = {}
                for p, a, f in zip(positions, args, fixed_of, strict=True):
                    x = _to_float(a.get(arg))
                    if f == fixed and x is not None and math.isfinite(x):
                        pts[x] = (x, float(frame.iloc[p]["avg_cr"]), float(frame.iloc[p]["ss"]))
                if len(pts) >= 2:
                    sweeps.append(Sweep(model, method, arg, fixed, tuple(sorted(pts.values()))))
    return sweeps


def _to_float(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (both maximised), by x."""
    idx = []
    for i, (x, y) in enumerate(points):
        if math.isnan(x) or math.isnan(y):
            continue
        dominated = any((x2 >= x and y2 >= y and (x2 > x or y2 > y)) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: (points[i][0], -points[i][1]))
