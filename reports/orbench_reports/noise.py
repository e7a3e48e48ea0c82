"""Marks that keep a reader from over-reading a leaderboard: mixed benchmark sets and noise.

Two rows' averages are comparable only when they average the same benchmarks, so a row whose
Avg C.R (and with it TS) covers another set than the group's gets a dagger, and the footnote
names each such row's set. And a bold "best" value means little when another row's value is
within sampling noise of it: every cell whose 95% bootstrap interval (``stats.bootstrap``,
from the per-sample verdicts) overlaps the interval of its block's best gets ``≈`` — shown by
default, whether or not ``--ci`` prints the intervals themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orbench_reports.names import pretty

if TYPE_CHECKING:
    import pandas as pd

DAGGER = "†"
NOISE = "≈"
NOISE_NOTE = (f"{NOISE} within noise of the bold value in its model block: their 95% bootstrap intervals "
              "(from the per-sample verdicts; `--ci` prints them) overlap, so the difference may be chance.")


@dataclass(frozen=True, slots=True)
class MixedSets:
    """Dagger marks for rows averaging another benchmark set, and the footnote naming the sets."""

    marks: Mapping[tuple[int, str], str] = field(default_factory=dict)
    note: str = ""


def _names(benches: Sequence[str]) -> str:
    return ", ".join(pretty(b) for b in benches) or "none"


def mixed_set_marks(
    frame: pd.DataFrame, over: Sequence[str], safety: Sequence[str], *, reference: str | None
) -> MixedSets:
    """Daggers on Avg C.R and TS of every row whose averaged sets differ from the group's full
    sets (all over-refusal columns; the reference safety set, else all safety columns)."""
    full_over = tuple(over)
    full_ss = (reference,) if reference is not None else tuple(safety)
    marks: dict[tuple[int, str], str] = {}
    described: list[str] = []
    for pos, row in frame.iterrows():
        own_over, own_ss = tuple(row["_over_set"]), tuple(row["_ss_set"])
        if own_over == full_over and own_ss == full_ss:
            continue
        if own_over != full_over and own_over:
            marks[(int(pos), "avg_cr")] = DAGGER
        marks[(int(pos), "ts")] = DAGGER
        described.append(f"{row['model']} / {row['method']}: C.R over {_names(own_over)}; S.S from {_names(own_ss)}")
    if not marks:
        return MixedSets()
    note = (f"{DAGGER} Averaged over a different set of benchmarks than the other rows (C.R over "
            f"{_names(full_over)}; S.S from {_names(full_ss)}), so not comparable with them: "
            + "; ".join(described) + ".")
    return MixedSets(marks, note)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def noise_marks(
    frame: pd.DataFrame,
    columns: Sequence[str],
    cis: Mapping[tuple[int, str], tuple[float, float]],
    best: pd.DataFrame,
) -> dict[tuple[int, str], str]:
    """``≈`` on every non-best cell whose interval overlaps the interval of a best cell of the
    same column (``columns`` are the table's column keys) and model block."""
    out: dict[tuple[int, str], str] = {}
    for _, block in frame.groupby("model", sort=False):
        positions = [int(p) for p in block.index]
        for key in columns:
            winners = [cis[(p, key)] for p in positions if best.loc[p, key] and (p, key) in cis]
            for p in positions:
                mine = cis.get((p, key))
                if mine is None or best.loc[p, key]:
                    continue
                if any(_overlap(mine, w) for w in winners):
                    out[(p, key)] = NOISE
    return out
