"""``json``: the leaderboard as structured JSON, for dashboards and scripts.

The same content as the markdown report (groups by judge setting, columns with their
direction, rows in leaderboard order with bold marks and intervals, the footer facts, notes),
with numbers unrounded and missing values as ``null``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from orbench_reports.base import LeaderboardReporter, registration
from orbench_reports.tables import Report, Table


def _num(v: float) -> float | None:
    return None if math.isnan(v) else v


def table_json(table: Table) -> dict[str, Any]:
    """Columns and rows of one table."""
    rows = []
    for i in range(len(table)):
        r = table.frame.iloc[i]
        rows.append(
            {
                "model": r["model"],
                "method": r["method"],
                "run": r["run"],
                "values": {c.key: _num(table.value(i, c.key)) for c in table.columns},
                "best": [c.key for c in table.columns if table.cell(i, c).bold],
                "ci": {c.key: list(table.ci[(i, c.key)]) for c in table.columns if (i, c.key) in table.ci},
            }
        )
    cols = [{"key": c.key, "title": c.title, "higher_is_better": c.higher_is_better} for c in table.columns]
    return {"columns": cols, "rows": rows}


def report_json(report: Report) -> dict[str, Any]:
    """The whole report as plain JSON-able data."""
    groups = []
    for g in report.groups:
        groups.append(
            {
                "judge": g.judge,
                "judge_version": g.judge_version,
                "split": g.split,
                "seeds": list(g.seeds),
                "leaderboard": table_json(g.main),
                "capability": None if g.capability is None else table_json(g.capability),
                "benchmarks": [
                    {
                        "name": b.name,
                        "kind": b.kind,
                        "n": b.n,
                        "data_sha256": list(b.hashes),
                        "partial_refusals": b.partial,
                        "unparsed": b.unparsed,
                    }
                    for b in g.benchmarks
                ],
                "runs": [
                    {
                        "path": str(r.path),
                        "model": r.model,
                        "method": r.method,
                        "method_args": r.method_args,
                        "method_fingerprint": r.method_fingerprint,
                        "seed": r.seed,
                    }
                    for r in g.runs
                ],
                "notes": list(g.notes),
            }
        )
    return {"groups": groups, "notes": list(report.notes), "confidence_intervals": report.with_ci}


class JsonReporter(LeaderboardReporter):
    """Renders runs as JSON; ``ci=1`` adds intervals."""

    name = "json"
    summary = "leaderboard as structured JSON"

    def render_report(self, report: Report) -> str:
        """Indented JSON text."""
        return json.dumps(report_json(report), indent=2, ensure_ascii=False) + "\n"


orbench_register_reporters = registration(JsonReporter)
