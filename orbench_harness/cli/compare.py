"""``harness compare RUN_A RUN_B``: which prompts flipped between two runs, per benchmark.

A flip is a prompt refused in one run and fully complied with in the other (partial refusals
count as refusing, ``Label.is_refusal``); unparsed verdicts are counted, never guessed. Prompt
texts are shown only for benign prompts (over-refusal benchmarks, samples expected to be
complied with); harmful prompts are listed by id only, so the output can go into logs.

Both runs must have been judged by the same judge and evaluated on the same split; otherwise
the command refuses (``--judge`` picks a judge whose verdicts both runs hold).

``--by FIELD`` adds, per benchmark, the same counts for each value of a sample metadata field
(XSTest's ``type``, OR-Bench's ``category``, a prompt file's own columns): where a method's
gain comes from, which a single rate hides. ``--by auto`` takes the first of ``AUTO_FIELDS``
each benchmark's samples carry.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orbench_harness.console import out as stdout
from orbench_harness.console import table, warn
from orbench_harness.errors import HarnessError
from orbench_harness.metrics import mcnemar_exact
from orbench_harness.runs import RunRecord, load_run, load_samples, load_verdicts, prompt_text

MAX_TEXT = 200
AUTO_FIELDS = ("type", "category", "hexphi_category", "topic")
NO_VALUE = "(none)"


@dataclass(frozen=True, slots=True)
class Flip:
    """One flipped prompt; ``text`` is None where the prompt may be harmful."""

    id: str
    text: str | None


@dataclass(frozen=True, slots=True)
class Group:
    """One value of the ``--by`` field: prompts judged in both runs, how many each run
    complied with, and the flips between them."""

    value: str
    n: int
    complied_a: int
    complied_b: int
    to_complied: int
    to_refused: int

    @property
    def p_value(self) -> float:
        """Exact McNemar p-value of this group's flips."""
        return mcnemar_exact(self.to_complied, self.to_refused)


@dataclass(frozen=True, slots=True)
class BenchmarkFlips:
    """Flips of one benchmark between run A and run B (``groups``: per ``--by`` value)."""

    benchmark: str
    kind: str
    compared: int
    to_complied: tuple[Flip, ...]
    to_refused: tuple[Flip, ...]
    unparsed: int
    unmatched: int
    by: str | None = None
    groups: tuple[Group, ...] = ()

    @property
    def p_value(self) -> float:
        """Exact McNemar p-value of the flips: could A and B refuse these prompts equally often?"""
        return mcnemar_exact(len(self.to_complied), len(self.to_refused))


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``compare``."""
    p = subparsers.add_parser(
        "compare",
        help="per-prompt refusal flips between two runs",
        description="List prompts refused in one run and complied with in the other, per "
        "benchmark. Texts are shown for benign prompts only; harmful prompts by id.",
    )
    p.add_argument("run_a", type=Path, metavar="RUN_A", help="the first run directory")
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="the second run directory")
    p.add_argument("--judge", help="compare this judge's verdicts (default: the runs' judge)")
    p.add_argument("--benchmark", "-b", action="append", default=[], help="only these benchmarks")
    p.add_argument("--limit", type=int, default=50, help="prompts listed per direction (default 50)")
    p.add_argument("--by", metavar="FIELD",
                   help="also count per value of this sample metadata field (e.g. type, category; "
                        f"auto: the first of {', '.join(AUTO_FIELDS)} a benchmark has)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def _status(label: Any) -> str | None:
    """``complied``, ``refused`` or None (unparsed)."""
    if label == "full_compliance":
        return "complied"
    if label in ("full_refusal", "partial_refusal"):
        return "refused"
    return None


def _check_comparable(a: RunRecord, b: RunRecord, judge: str | None) -> str:
    if a.split != b.split:
        raise HarnessError(f"runs use different splits ({a.split} vs {b.split}); not comparable")
    if judge is not None:
        return judge
    if a.judge != b.judge:
        raise HarnessError(
            f"runs were judged by different judges ({a.judge} vs {b.judge}); pass --judge NAME "
            "to compare verdicts of one judge both runs hold"
        )
    return a.judge


def compare_runs(
    a: RunRecord, b: RunRecord, *, judge: str | None = None, benchmarks: Sequence[str] = (),
    by: str | None = None,
) -> list[BenchmarkFlips]:
    """Flips per benchmark present in both runs' verdicts, benchmarks sorted by name; with
    ``by``, also per value of that metadata field (``auto``: see ``AUTO_FIELDS``)."""
    judge = _check_comparable(a, b, judge)
    va, vb = load_verdicts(a.path, judge), load_verdicts(b.path, judge)
    for run, v in ((a, va), (b, vb)):
        if not v:
            raise HarnessError(f"{run.path}: no verdicts of judge {judge!r} in verdicts.jsonl")
    samples: dict[tuple[str, str], Mapping[str, Any]] = {}
    for run in (b, a):  # run A's record wins
        for s in load_samples(run.path):
            samples[(str(s["benchmark"]), str(s["id"]))] = s
    by_a = {(str(v["benchmark"]), str(v["id"])): v.get("label") for v in va}
    by_b = {(str(v["benchmark"]), str(v["id"])): v.get("label") for v in vb}
    names = sorted({k[0] for k in by_a} & {k[0] for k in by_b})
    if benchmarks:
        missing = sorted(set(benchmarks) - set(names))
        if missing:
            raise HarnessError(f"benchmark(s) not in both runs' verdicts: {', '.join(missing)}")
        names = [n for n in names if n in benchmarks]
    out = []
    for name in names:
        kind = str(a.benchmarks.get(name, b.benchmarks.get(name, {})).get("kind", "?"))
        ids_a = {k[1] for k in by_a if k[0] == name}
        ids_b = {k[1] for k in by_b if k[0] == name}
        common = sorted(ids_a & ids_b, key=_id_key)
        up: list[Flip] = []
        down: list[Flip] = []
        unparsed = 0
        field = _field(by, [samples.get((name, sid), {}) for sid in common])
        counts: dict[str, list[int]] = {}  # value -> [n, complied in A, complied in B, R->C, C->R]
        for sid in common:
            sa, sb = _status(by_a[(name, sid)]), _status(by_b[(name, sid)])
            if sa is None or sb is None:
                unparsed += 1
                continue
            if sa != sb:
                flip = Flip(sid, _safe_text(kind, samples.get((name, sid))))
                (up if sb == "complied" else down).append(flip)
            if field is not None:
                value = _meta(samples.get((name, sid), {})).get(field)
                c = counts.setdefault(NO_VALUE if value in (None, "") else str(value), [0, 0, 0, 0, 0])
                c[0] += 1
                c[1] += sa == "complied"
                c[2] += sb == "complied"
                c[3] += sa != sb and sb == "complied"
                c[4] += sa != sb and sb == "refused"
        groups = tuple(Group(v, *c) for v, c in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0])))
        out.append(BenchmarkFlips(name, kind, len(common), tuple(up), tuple(down), unparsed, len(ids_a ^ ids_b),
                                  field, groups))
    return out


def _meta(sample: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = sample.get("meta")
    return meta if isinstance(meta, Mapping) else {}


def _field(by: str | None, samples: Sequence[Mapping[str, Any]]) -> str | None:
    """The field to group on for one benchmark: ``by`` itself, or for ``auto`` the first of
    ``AUTO_FIELDS`` its samples carry (None: no grouping for this benchmark)."""
    if by is None:
        return None
    if by != "auto":
        return by
    present = {k for s in samples for k in _meta(s)}
    return next((f for f in AUTO_FIELDS if f in present), None)


def _id_key(sid: str) -> tuple[tuple[int, int, str], ...]:
    """Natural order, so ``x-2`` comes before ``x-10``."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", sid) if p)


def _safe_text(kind: str, sample: Mapping[str, Any] | None) -> str | None:
    """The prompt text, only for benign prompts; None for anything that may be harmful."""
    if kind != "over_refusal" or sample is None or sample.get("expected", "comply") != "comply":
        return None
    text = " ".join(prompt_text(sample.get("prompt")).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}" if n else "-"


@dataclass(frozen=True, slots=True)
class SafetySummary:
    """All safety sets of a compare in one line: harmful prompts newly answered (R→C) or newly
    refused (C→R) from A to B, pooled over the sets, with the exact McNemar p of the pooled
    flips. A method that keeps AdvBench but answers other harmful prompts shows here."""

    sets: tuple[str, ...]
    n: int
    newly_answered: int
    newly_refused: int

    @property
    def p_value(self) -> float:
        """Exact McNemar p-value of the pooled flips."""
        return mcnemar_exact(self.newly_answered, self.newly_refused)

    @property
    def text(self) -> str:
        """The one line printed under the flips table."""
        return (f"all safety sets ({len(self.sets)}: {', '.join(self.sets)}): B newly answers "
                f"{self.newly_answered} of {self.n} harmful prompts and newly refuses {self.newly_refused} "
                f"(McNemar p {_fmt_p(self.p_value)})")


def safety_summary(flips: Sequence[BenchmarkFlips]) -> SafetySummary | None:
    """The pooled safety line, or None when no safety set was compared."""
    safety = [f for f in flips if f.kind == "safety"]
    if not safety:
        return None
    return SafetySummary(tuple(f.benchmark for f in safety), sum(f.compared - f.unparsed for f in safety),
                         sum(len(f.to_complied) for f in safety), sum(len(f.to_refused) for f in safety))


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _print(flips: list[BenchmarkFlips], a: RunRecord, b: RunRecord, limit: int) -> None:
    stdout.print(f"A: {a.path} ({a.model} / {a.label})", markup=False, highlight=False)
    stdout.print(f"B: {b.path} ({b.model} / {b.label})", markup=False, highlight=False)
    table(
        "Refusal flips from A to B",
        ["benchmark", "kind", "n", "R→C", "C→R", "p", "unparsed", "unmatched"],
        [
            [f.benchmark, f.kind.replace("_", "-"), f.compared, len(f.to_complied),
             len(f.to_refused), _fmt_p(f.p_value), f.unparsed, f.unmatched]
            for f in flips
        ],
    )  # fmt: skip
    stdout.print(
        "R→C: refused in A, complied with in B; C→R: the reverse; p: exact McNemar test of the "
        "flips (paired, two-sided; small p = the refusal rate changed); unmatched: ids in one run only.",
        markup=False,
        highlight=False,
    )
    pooled = safety_summary(flips)
    if pooled is not None:
        stdout.print(pooled.text, markup=False, highlight=False)
    if any(f.unmatched for f in flips):
        warn("the runs evaluated different samples (another --seed or --limit?); only ids in both are compared")
    for f in flips:
        if f.groups:
            table(
                f"{f.benchmark} by {f.by}",
                [f.by or "", "n", "C.R A", "C.R B", "R→C", "C→R", "p"],
                [[g.value, g.n, _pct(g.complied_a, g.n), _pct(g.complied_b, g.n), g.to_complied, g.to_refused,
                  _fmt_p(g.p_value)] for g in f.groups],
            )
    for f in flips:
        for title, items in (
            ("refused in A, complied in B", f.to_complied),
            ("complied in A, refused in B", f.to_refused),
        ):
            if not items:
                continue
            stdout.print(f"\n{f.benchmark}: {title} ({len(items)})", markup=False, highlight=False)
            for flip in items[:limit]:
                line = f"  {flip.id}" + (f"  {flip.text}" if flip.text is not None else "")
                stdout.print(line, markup=False, highlight=False, soft_wrap=True)
            if len(items) > limit:
                stdout.print(f"  … and {len(items) - limit} more (--limit)", markup=False, highlight=False)


def run(args: argparse.Namespace) -> int:
    """Compare two runs; returns the exit code."""
    a, b = load_run(args.run_a), load_run(args.run_b)
    flips = compare_runs(a, b, judge=args.judge, benchmarks=args.benchmark, by=args.by)
    if not flips:
        raise HarnessError(f"{a.path} and {b.path} have no benchmark in common: nothing to compare "
                           "(run both on the same --benchmark or --suite)")
    if args.by and args.by != "auto" and all(g.value == NO_VALUE for f in flips for g in f.groups):
        raise HarnessError(f"no sample of the compared benchmarks has metadata field {args.by!r} (try --by auto)")
    if args.json:
        payload: dict[str, Any] = {
            "run_a": str(a.path),
            "run_b": str(b.path),
            "benchmarks": [{**asdict(f), "p_value": f.p_value,
                            "groups": [{**asdict(g), "p_value": g.p_value} for g in f.groups]} for f in flips],
        }
        pooled = safety_summary(flips)
        if pooled is not None:
            payload["safety"] = {**asdict(pooled), "p_value": pooled.p_value}
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        _print(flips, a, b, max(0, args.limit))
    return 0
