"""``csv``: one row per run with every leaderboard number at full precision.

For spreadsheets and pandas: the same columns as the markdown tables (keys such as
``cr:xstest``, ``avg_cr``, ``ss:advbench``, ``ts``, ``mmlu:accuracy``) plus the identity of each
run (judge, split, model, method and its arguments, seed, directory), unrounded; with ``ci=1``
each interval adds ``<key>:ci_low`` and ``<key>:ci_high`` columns.
"""

from __future__ import annotations

import json
from typing import Any

from orbench_reports.base import LeaderboardReporter, registration
from orbench_reports.tables import Report


def rows(report: Report) -> list[dict[str, Any]]:
    """One flat dict per run, groups one after the other, in leaderboard order."""
    out = []
    for group in report.groups:
        cap = group.capability
        cap_by_run = {} if cap is None else {r["run"]: r for _, r in cap.frame.iterrows()}
        for i, run in enumerate(group.runs):
            main = group.main.frame.iloc[i]
            row: dict[str, Any] = {
                "judge": group.judge,
                "judge_version": group.judge_version or "",
                "split": group.split,
                "model": run.model,
                "method": run.method,
                "label": main["method"],
                "method_args": json.dumps(run.method_args, sort_keys=True),
                "seed": "" if run.seed is None else run.seed,
                "run": str(run.path),
            }
            for col in group.main.columns:
                row[col.key] = main[col.key]
                if report.with_ci and (i, col.key) in group.main.ci:
                    row[f"{col.key}:ci_low"], row[f"{col.key}:ci_high"] = group.main.ci[(i, col.key)]
            if cap is not None:
                for col in cap.columns:
                    crow = cap_by_run.get(str(run.path))
                    row[col.key] = None if crow is None else crow[col.key]
            out.append(row)
    return out


class CsvReporter(LeaderboardReporter):
    """Renders runs as CSV; ``ci=1`` adds interval columns."""

    name = "csv"
    summary = "one row per run, all numbers unrounded (CSV)"

    def render_report(self, report: Report) -> str:
        """The CSV text (header row first; missing values empty)."""
        import pandas as pd  # not at registration: see tables._frame

        text: str = pd.DataFrame(rows(report)).to_csv(index=False, lineterminator="\n")
        return text


orbench_register_reporters = registration(CsvReporter)
