"""How benchmarks and runs are named on a leaderboard: short, paper-style, unambiguous.

A benchmark given as a prompt file is registered under the path the user typed, often an
absolute one; as a column header that path is noise and pushes the table off the page, so a
header shows the file's stem (the footer still names the full path). Two runs of one model and
method are told apart by their seed, else by the shortest tail of their directories that
differs, so ``runs/main/none`` and ``runs/quick/none`` read ``none [main]`` and ``none [quick]``
rather than ``none [none]`` twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePath

from orbench_harness.runs import RunRecord

PRETTY = {
    "xstest": "XSTest",
    "xstestsafe": "XSTest",
    "scope": "SCOPE",
    "orbenchhard": "OR-Bench-Hard-1K",
    "orbenchhard1k": "OR-Bench-Hard-1K",
    "phtest": "PHTest",
    "oktest": "OKTest",
    "advbench": "AdvBench",
    "hexphi": "HEx-PHI",
    "orbench80k": "OR-Bench-80K",
}
PROMPT_FILE_SUFFIXES = (".csv", ".jsonl", ".json")


def norm(name: str) -> str:
    """Benchmark names compared loosely: ``or-bench-hard`` == ``OR_Bench_Hard``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_path_name(name: str) -> bool:
    """Whether a benchmark's name is a prompt file's path rather than a registered name."""
    return "/" in name or "\\" in name or name.lower().endswith(PROMPT_FILE_SUFFIXES)


def pretty(name: str) -> str:
    """The paper's spelling of a benchmark name, a prompt file's stem, or the name itself."""
    if is_path_name(name):
        return PurePath(name.replace("\\", "/")).stem or name
    return PRETTY.get(norm(name), name)


def row_labels(runs: Sequence[RunRecord]) -> list[str]:
    """Row labels, disambiguated by seed (else by directory) when one model has two runs with
    the same method and arguments."""
    labels = [r.label for r in runs]
    by_key: dict[tuple[str, str], list[int]] = {}
    for i, run in enumerate(runs):
        by_key.setdefault((run.model, labels[i]), []).append(i)
    for (_, label), same in by_key.items():
        if len(same) < 2:
            continue
        if len({runs[i].seed for i in same}) == len(same):
            suffixes = [f"seed {runs[i].seed}" for i in same]
        else:
            suffixes = distinct_tails([runs[i].path.resolve().parts for i in same], drop=label)
        for i, suffix in zip(same, suffixes, strict=True):
            labels[i] = f"{label} [{suffix}]" if suffix else label
    return labels


def distinct_tails(paths: Sequence[tuple[str, ...]], *, drop: str = "") -> list[str]:
    """For each path, the fewest trailing parts that tell it apart from the others; a last part
    equal to ``drop`` (the label itself, as in ``runs/main/none`` for ``none``) says nothing and
    is left out. Paths that are all equal get no suffix."""
    trimmed = [p[:-1] if p and p[-1] == drop and len(p) > 1 else p for p in paths]
    longest = max(len(p) for p in trimmed)
    for k in range(1, longest + 1):
        tails = ["/".join(p[-k:]) for p in trimmed]
        if len(set(tails)) == len(tails):
            return tails
    return [""] * len(paths)
