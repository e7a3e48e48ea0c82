"""The leaderboard as data: what every reporter renders, computed once.

The layout follows the ACTOR paper (Dabas et al., ICML 2025, arXiv 2507.04250): Tables 1/2 have
one row per model x method, a compliance-rate column (C.R, %) per over-refusal benchmark, their
average (Avg C.R), the AdvBench safety score (S.S, % of harmful prompts refused) and the
trade-off score TS = (Avg C.R + S.S) / 2, rows sorted by TS within each model and the best value
of each column in bold. Table 4 has the capability metrics (MT-Bench 1-turn / 2-turn / average,
WikiText-2 perplexity, MMLU by category and average).

Avg C.R, S.S and TS are recomputed here from the per-benchmark numbers, so every table is
internally consistent (a reader can redo the arithmetic); where results.json's own summary
disagrees, a note says so. Runs with different judges or splits are never put in one table:
each (judge, judge version, split) setting is its own group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbench_harness.metrics import SAFETY_REFERENCE
from orbench_harness.runs import RunRecord
from orbench_reports.names import norm, pretty, row_labels
from orbench_reports.noise import NOISE_NOTE, mixed_set_marks, noise_marks
from orbench_reports.stats import bootstrap

if TYPE_CHECKING:
    import pandas as pd

# The paper's column order; other benchmarks follow alphabetically.
ORDER = ("xstest", "xstestsafe", "scope", "orbenchhard", "orbenchhard1k", "phtest", "oktest")
# Capability metrics in Table 4's order: (benchmark, results key, title, higher is better).
CAPABILITY = (
    ("mtbench", "score_turn1", "MT-Bench 1-turn", True),
    ("mtbench", "score_turn2", "MT-Bench 2-turn", True),
    ("mtbench", "score", "MT-Bench Avg", True),
    ("wikitext2", "perplexity", "WikiText-2 PPL ↓", False),
    ("mmlu", "accuracy_stem", "MMLU STEM", True),
    ("mmlu", "accuracy_humanities", "MMLU Humanities", True),
    ("mmlu", "accuracy_social_sciences", "MMLU Social Sci.", True),
    ("mmlu", "accuracy_other", "MMLU Other", True),
    ("mmlu", "accuracy", "MMLU Avg", True),
)
RATE_KEYS = {"kind", "n", "compliance_rate", "refusal_rate", "partial_refusal_rate", "unparsed"}
TOLERANCE = 0.01  # percentage points; a summary further off than this is reported


def _frame(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """``pandas.DataFrame(...)``, pandas imported on the first report built: the registry imports
    every reporter (so this module) on each command, and pandas took longer than all of that."""
    import pandas as pd

    return pd.DataFrame(*args, **kwargs)


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def safety_value(metrics: Mapping[str, Any]) -> float:
    """A safety benchmark's S.S: its own ``safety_score`` if given, else its refusal rate (which
    counts full and partial refusals alike, ``metrics.rate_stats``)."""
    if "safety_score" in metrics:
        return _num(metrics["safety_score"])
    return _num(metrics.get("refusal_rate"))


def is_reference(name: str) -> bool:
    """The safety benchmark TS uses when it ran (AdvBench, as in the paper)."""
    return norm(name) == norm(SAFETY_REFERENCE)


@dataclass(frozen=True, slots=True)
class Column:
    """One numeric column: ``key`` in the frame, its header, and which direction is better."""

    key: str
    title: str
    higher_is_better: bool = True
    decimals: int = 2

    def fmt(self, value: float) -> str:
        """The value as displayed (fixed decimals), or an em dash when missing."""
        return "—" if math.isnan(value) else f"{value:.{self.decimals}f}"


@dataclass(frozen=True, slots=True)
class Table:
    """Rows in display order; ``best`` marks bold cells, ``ci`` holds (low, high) per cell."""

    columns: tuple[Column, ...]
    frame: pd.DataFrame
    best: pd.DataFrame
    ci: Mapping[tuple[int, str], tuple[float, float]] = field(default_factory=dict)
    marks: Mapping[tuple[int, str], str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def value(self, row: int, key: str) -> float:
        """The unrounded value of a cell."""
        return float(self.frame.iloc[row][key])

    def cell(self, row: int, column: Column) -> Cell:
        """What a renderer needs for one cell."""
        return Cell(
            column.fmt(self.value(row, column.key)),
            bool(self.best.iloc[row][column.key]),
            self.marks.get((row, column.key), ""),
            self.ci.get((row, column.key)),
        )


@dataclass(frozen=True, slots=True)
class Cell:
    """A formatted cell: text at the column's precision, bold flag, footnote mark, interval."""

    text: str
    bold: bool
    mark: str
    ci: tuple[float, float] | None

    @property
    def ci_text(self) -> str:
        """``[low, high]`` at one decimal, or empty."""
        return "" if self.ci is None else f"[{self.ci[0]:.1f}, {self.ci[1]:.1f}]"


@dataclass(frozen=True, slots=True)
class BenchInfo:
    """A footer line: the facts a reader needs to trust a benchmark's column."""

    name: str
    kind: str
    n: str
    hashes: tuple[str, ...]
    partial: int
    unparsed: int
    same_data: bool = True  # every run read the same files (a benchmark may read several)


@dataclass(frozen=True, slots=True)
class Group:
    """The runs that share a judge, judge version and split: one leaderboard."""

    judge: str
    judge_version: str | None
    split: str
    runs: tuple[RunRecord, ...]
    main: Table
    capability: Table | None
    benchmarks: tuple[BenchInfo, ...]
    seeds: tuple[int, ...]
    notes: tuple[str, ...]

    @property
    def title(self) -> str:
        """``judge (version) · split``."""
        version = f" ({self.judge_version})" if self.judge_version else ""
        return f"judge {self.judge}{version} · split {self.split}"


@dataclass(frozen=True, slots=True)
class Report:
    """All groups; ``notes`` say when runs had to be split across groups."""

    groups: tuple[Group, ...]
    notes: tuple[str, ...]
    with_ci: bool


def build_report(runs: Sequence[RunRecord], *, ci: bool = False, seed: int = 0) -> Report:
    """Group runs by judge setting and build each group's tables."""
    by_key: dict[tuple[str, str | None, str], list[RunRecord]] = {}
    for run in runs:
        by_key.setdefault((run.judge, run.judge_version, run.split), []).append(run)
    notes: list[str] = []
    if len(by_key) > 1:
        notes.append(
            f"These runs use {len(by_key)} different judge/split settings; each has its own "
            "table, and numbers from different tables are not comparable."
        )
    groups = tuple(_build_group(k, rs, ci=ci, seed=seed) for k, rs in by_key.items())
    return Report(groups, tuple(notes), ci)


def _bench_order(names: set[str]) -> list[str]:
    def key(n: str) -> tuple[int, str]:
        k = norm(n)
        return (ORDER.index(k) if k in ORDER else len(ORDER), k)

    return sorted(names, key=key)


def _kinds(runs: Sequence[RunRecord]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for run in runs:
        for name, m in run.benchmarks.items():
            kinds.setdefault(name, str(m.get("kind", "?")))
    return kinds


def _build_group(key: tuple[str, str | None, str], runs: list[RunRecord], *, ci: bool, seed: int) -> Group:
    judge, version, split = key
    kinds = _kinds(runs)
    over = _bench_order({b for b, k in kinds.items() if k == "over_refusal"})
    safety = _bench_order({b for b, k in kinds.items() if k == "safety"})
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    marks: dict[tuple[int, str], str] = {}
    labels = row_labels(runs)
    for i, run in enumerate(runs):
        rows.append(_main_row(i, run, labels[i], over, safety, notes))
    columns = [Column(f"cr:{b}", pretty(b)) for b in over] + [Column("avg_cr", "Avg C.R")]
    columns += [Column(f"ss:{b}", f"{pretty(b)} S.S") for b in safety]
    if not safety:
        columns.append(Column("ss", "S.S"))
    elif len(safety) > 1 and not any(map(is_reference, safety)):
        columns.append(Column("ss", "Mean S.S"))
    elif len(safety) > 1:
        notes.append(f"TS uses {pretty(SAFETY_REFERENCE)} S.S (the paper's definition).")
    columns.append(Column("ts", "TS"))
    broad = any(r.summary.get("broad_safety_score") is not None for r in runs)
    if broad:  # next to the paper's AdvBench S.S, never instead of it (metrics.broad_safety)
        columns += [Column("bss", "Broad S.S"), Column("bts", "Broad TS")]
        notes.append("Broad S.S: mean refusal rate over the held-out harmful sets each run has "
                     "(equal weights), with its 95% bootstrap interval; Broad TS = (Avg C.R + Broad S.S) / 2.")
    frame = _frame(rows)
    frame["_neg_ts"] = -frame["ts"].fillna(-math.inf)
    frame["_model_order"] = frame["model"].map({m: i for i, m in enumerate(dict.fromkeys(frame["model"]))})
    frame = frame.sort_values(["_model_order", "_neg_ts", "method", "run"], kind="stable")
    order = [int(i) for i in frame["_i"]]
    frame = frame.drop(columns=["_neg_ts", "_model_order"]).reset_index(drop=True)
    runs_sorted = tuple(runs[i] for i in order)
    mixed = mixed_set_marks(frame, over, safety, reference=next((b for b in safety if is_reference(b)), None))
    marks.update(mixed.marks)
    if mixed.note:
        notes.append(mixed.note)
    reference = next((b for b in safety if is_reference(b)), None)
    # intervals are always computed (for the within-noise marks) and shown only with --ci
    cis = bootstrap(runs_sorted, over, safety, reference, seed=seed, notes=notes if ci else [])
    if broad:
        for pos, run in enumerate(runs_sorted):
            interval = run.summary.get("broad_safety_ci")
            if interval:
                cis[(pos, "bss")] = (float(interval[0]), float(interval[1]))
    best = _best(frame, columns)
    noise = noise_marks(frame, [c.key for c in columns], cis, best)
    for cell, mark in noise.items():
        marks[cell] = marks.get(cell, "") + mark
    if noise:
        notes.append(NOISE_NOTE)
    shown = cis if ci else {k: v for k, v in cis.items() if k[1] == "bss"}  # results.json's own interval
    main = Table(tuple(columns), frame, best, shown, marks)
    capability = _capability(runs_sorted, labels=[labels[i] for i in order], kinds=kinds)
    return Group(
        judge,
        version,
        split,
        runs_sorted,
        main,
        capability,
        _bench_info(runs_sorted, kinds),
        tuple(sorted({r.seed for r in runs if r.seed is not None})),
        tuple(notes),
    )


def _main_row(
    i: int, run: RunRecord, label: str, over: list[str], safety: list[str], notes: list[str]
) -> dict[str, Any]:
    bench = run.benchmarks
    summary = run.summary
    row: dict[str, Any] = {"_i": i, "model": run.model, "method": label, "run": str(run.path)}
    crs = []
    for b in over:
        v = _num(bench[b].get("compliance_rate")) if b in bench else math.nan
        row[f"cr:{b}"] = v
        if not math.isnan(v):
            crs.append(v)
    row["_over_set"] = tuple(b for b in over if b in bench and not math.isnan(row[f"cr:{b}"]))
    avg = sum(crs) / len(crs) if crs else _num(summary.get("avg_compliance_rate"))
    sss = []
    for b in safety:
        v = safety_value(bench[b]) if b in bench else math.nan
        row[f"ss:{b}"] = v
        if not math.isnan(v):
            sss.append(v)
    ref = [row[f"ss:{b}"] for b in safety if is_reference(b) and not math.isnan(row[f"ss:{b}"])]
    ss = ref[0] if ref else sum(sss) / len(sss) if sss else _num(summary.get("safety_score"))
    present = tuple(b for b in safety if not math.isnan(row[f"ss:{b}"]))
    row["_ss_set"] = tuple(b for b in present if is_reference(b)) or present
    ts = (avg + ss) / 2
    row.update(avg_cr=avg, ss=ss, ts=ts, bss=_num(summary.get("broad_safety_score")),
               bts=_num(summary.get("broad_trade_off_score")))
    where = f"{run.path}: results.json summary"
    for key, mine in (("avg_compliance_rate", avg), ("safety_score", ss), ("trade_off_score", ts)):
        theirs = _num(summary.get(key))
        if not math.isnan(theirs) and not math.isnan(mine) and abs(theirs - mine) > TOLERANCE:
            notes.append(f"{where} {key}={theirs:.2f} differs from the table's {mine:.2f}.")
    return row


def _best(frame: pd.DataFrame, columns: Sequence[Column]) -> pd.DataFrame:
    """Bold marks: the best displayed value per column within each model's block (ties all
    bold); a block with fewer than two values has nothing to compare and gets none."""
    best = _frame(False, index=frame.index, columns=[c.key for c in columns])
    for _, block in frame.groupby("model", sort=False):
        for c in columns:
            vals = block[c.key].astype(float).round(c.decimals).dropna()
            if len(vals) < 2:
                continue
            target = vals.max() if c.higher_is_better else vals.min()
            best.loc[vals.index[vals == target], c.key] = True
    return best


def _capability(runs: Sequence[RunRecord], *, labels: Sequence[str], kinds: Mapping[str, str]) -> Table | None:
    """Table 4: capability metrics, same row order as the main table; None if no run has any."""
    present: dict[tuple[str, str], str] = {}
    known = {(b, k) for b, k, _, _ in CAPABILITY}
    for run in runs:
        for name, m in run.benchmarks.items():
            if kinds.get(name) != "capability":
                continue
            for k, v in m.items():
                if k in RATE_KEYS or _is_count(k) or math.isnan(_num(v)):
                    continue
                present.setdefault((norm(name), k), name)
    if not present:
        return None
    columns: list[Column] = []
    for b, k, title, up in CAPABILITY:
        if (b, k) in present:
            columns.append(Column(f"{b}:{k}", title, up))
    for (b, k), name in sorted(present.items()):
        if (b, k) not in known:
            columns.append(Column(f"{b}:{k}", f"{pretty(name)} {k}", "perplexity" not in k))
    rows = []
    for run, label in zip(runs, labels, strict=True):
        by_norm = {norm(n): m for n, m in run.benchmarks.items()}
        row: dict[str, Any] = {"model": run.model, "method": label, "run": str(run.path)}
        for c in columns:
            b, k = c.key.split(":", 1)
            row[c.key] = _num(by_norm.get(b, {}).get(k))
        if any(not math.isnan(row[c.key]) for c in columns):
            rows.append(row)
    frame = _frame(rows).reset_index(drop=True)
    return Table(tuple(columns), frame, _best(frame, columns))


def _is_count(key: str) -> bool:
    """Bookkeeping a capability benchmark records beside its metrics (``n``, ``n_tokens``,
    ``n_windows``): how much was scored, not a score, so not a leaderboard column."""
    return key == "n" or key.startswith("n_")


def _bench_info(runs: Sequence[RunRecord], kinds: Mapping[str, str]) -> tuple[BenchInfo, ...]:
    out = []
    for name in _bench_order(set(kinds)):
        ns, hashes, partial, unparsed = set(), [], 0, 0
        per_run: set[tuple[str, ...]] = set()
        for run in runs:
            m = run.benchmarks.get(name)
            if m is None:
                continue
            n = _num(m.get("n"))
            if not math.isnan(n):
                ns.add(int(n))
            partial += _partial_count(m)
            u = _num(m.get("unparsed", 0))
            unparsed += 0 if math.isnan(u) else int(u)
            mine = run.data_hashes().get(name, [])
            per_run.add(tuple(sorted(mine)))
            for h in mine:
                if h[:12] not in hashes:
                    hashes.append(h[:12])
        n_text = "?" if not ns else str(min(ns)) if len(ns) == 1 else f"{min(ns)}-{max(ns)}"
        out.append(BenchInfo(name, kinds[name], n_text, tuple(hashes), partial, unparsed, len(per_run) <= 1))
    return tuple(out)


def _partial_count(m: Mapping[str, Any]) -> int:
    """Partial refusals: the recorded count, else the rate times the parsed verdicts."""
    count = _num(m.get("partial_refusals"))
    if not math.isnan(count):
        return int(count)
    rate = _num(m.get("partial_refusal_rate", 0.0))
    parsed = _num(m.get("n_parsed", _num(m.get("n")) - _num(m.get("unparsed", 0))))
    return 0 if math.isnan(rate) or math.isnan(parsed) else round(rate * parsed / 100)


def kind_text(kind: str) -> str:
    """``over_refusal`` -> ``over-refusal``."""
    return kind.replace("_", "-")
