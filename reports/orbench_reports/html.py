"""``html``: the leaderboard as one self-contained HTML page with plots.

The same tables as the markdown leaderboard, plus inline SVG charts (no external files, no
scripts, no network): compliance vs safety per model with its Pareto front, per-benchmark
bars, and, when runs sweep one numeric method argument, C.R and S.S against that argument
(the ACTOR paper's Figure 6 plots them against alpha).
"""

from __future__ import annotations

import argparse
from html import escape

from orbench_harness.hookspecs import hookimpl
from orbench_reports.base import LeaderboardReporter, registration
from orbench_reports.markdown import CAPABILITY_CAPTION, CAPTION
from orbench_reports.names import pretty
from orbench_reports.stats import find_sweeps, pareto_front
from orbench_reports.svg import bars, lines, scatter
from orbench_reports.tables import Group, Report, Table, kind_text
from orbench_reports.view import add_parser as add_view_parser

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #eef7ee; }
span.ci { color: #777; font-size: 12px; display: block; white-space: nowrap; }
.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: 6px 10px; }
figure { margin: 1em 0; }
figcaption { font-size: 13px; color: #555; }
code { font-size: 12px; }
"""


def html_table(table: Table, caption: str, css_class: str) -> str:
    """An HTML table: model, method, then numeric cells (bold best, mark, interval)."""
    head = "".join(f"<th>{escape(c.title)}</th>" for c in table.columns)
    rows = []
    for i in range(len(table)):
        row = table.frame.iloc[i]
        tds = [f"<td>{escape(str(row['model']))}</td>", f"<td>{escape(str(row['method']))}</td>"]
        for col in table.columns:
            cell = table.cell(i, col)
            text = escape(cell.text)
            if cell.bold:
                text = f"<b>{text}</b>"
            if cell.mark:
                text += f"<sup>{escape(cell.mark)}</sup>"
            if cell.ci_text:
                text += f' <span class="ci">{escape(cell.ci_text)}</span>'
            cls = "num best" if cell.bold else "num"
            tds.append(f'<td class="{cls}">{text}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return (
        f'<table class="{css_class}"><caption>{escape(caption)}</caption>'
        f"<thead><tr><th>Model</th><th>Method</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>" if svg else ""


def plots(group: Group) -> list[str]:
    """The group's figures as HTML fragments."""
    frame = group.main.frame
    out = []
    series = []
    for model, block in frame.groupby("model", sort=False):
        pts = [(float(r["avg_cr"]), float(r["ss"]), str(r["method"])) for _, r in block.iterrows()]
        series.append((str(model), pts, pareto_front([(x, y) for x, y, _ in pts])))
    joined = any(len(front) >= 2 for _, _, front in series)
    out.append(
        _figure(
            scatter("Compliance vs safety", "Avg C.R (%)", "S.S (%)", series),
            "Each point is a run; a ring marks each model's Pareto front (runs no other run of that "
            "model beats on both axes)" + (", and a dashed line joins a model's front where it has "
                                           "more than one run." if joined else "."),
        )
    )
    rate_cols = [c for c in group.main.columns if c.key.startswith(("cr:", "ss:"))]
    cats = [c.title for c in rate_cols]
    bar_series = [(f"{r['model']} / {r['method']}", [float(r[c.key]) for c in rate_cols]) for _, r in frame.iterrows()]
    out.append(
        _figure(
            bars("Per-benchmark scores", "%", cats, bar_series),
            "Compliance rate per over-refusal benchmark and safety score per safety benchmark.",
        )
    )
    for sw in find_sweeps(group.runs, group.main.frame):
        xs = [p[0] for p in sw.points]
        fixed = ", ".join(f"{k}={v}" for k, v in sw.fixed)
        title = f"{sw.model} / {sw.method}: sweep over {sw.arg}"
        svg = lines(
            title,
            sw.arg,
            "%",
            xs,
            [("Avg C.R", [p[1] for p in sw.points]), ("S.S", [p[2] for p in sw.points])],
        )
        out.append(_figure(svg, f"Avg C.R and S.S against {sw.arg}" + (f" ({fixed})" if fixed else "") + "."))
    return [f for f in out if f]


def _footer(group: Group) -> str:
    seeds = ", ".join(map(str, group.seeds)) or "?"
    version = f" (version <code>{escape(group.judge_version)}</code>)" if group.judge_version else ""
    parts = [
        f"<p><b>Setting:</b> judge <code>{escape(group.judge)}</code>{version} · split "
        f"<code>{escape(group.split)}</code> · seed {escape(seeds)} · {len(group.runs)} run(s)</p>",
        '<table class="footer"><thead><tr><th>Benchmark</th><th>Kind</th><th>n</th>'
        "<th>Data sha256</th><th>Partial refusals</th><th>Unparsed</th></tr></thead><tbody>",
    ]
    for b in group.benchmarks:
        hashes = ", ".join(f"<code>{escape(h)}</code>" for h in b.hashes) or "—"
        partial = "—" if b.kind == "capability" else str(b.partial)
        parts.append(
            f"<tr><td>{escape(pretty(b.name))} (<code>{escape(b.name)}</code>)</td>"
            f'<td>{escape(kind_text(b.kind))}</td><td class="num">{escape(b.n)}</td>'
            f"<td>{hashes}</td>"
            f'<td class="num">{partial}</td><td class="num">{b.unparsed}</td></tr>'
        )
    parts.append("</tbody></table><ul>")
    for run, label in zip(group.runs, group.main.frame["method"], strict=True):
        fp = run.method_fingerprint
        fp_text = f" (fingerprint <code>{escape(fp[:12])}</code>)" if fp else ""
        parts.append(
            f"<li>{escape(run.model)} / {escape(str(label))}: <code>{escape(str(run.path))}</code>{fp_text}</li>"
        )
    parts.append("</ul>")
    parts += [f'<p class="note">{escape(n)}</p>' for n in group.notes]
    return "\n".join(parts)


def render_report(report: Report) -> str:
    """The whole HTML document."""
    body = ["<h1>Over-refusal leaderboard</h1>"]
    body += [f'<p class="note"><b>Note:</b> {escape(n)}</p>' for n in report.notes]
    if report.with_ci:
        body.append("<p>Brackets: 95% bootstrap confidence intervals from the per-sample verdicts.</p>")
    for group in report.groups:
        body += [
            f"<section><h2>{escape(group.title)}</h2>",
            html_table(group.main, CAPTION, "leaderboard"),
        ]
        if group.capability is not None:
            body += [
                "<h3>Capability</h3>",
                html_table(
                    group.capability,
                    CAPABILITY_CAPTION,
                    "capability",
                ),
            ]
        body += ["<h3>Plots</h3>", *plots(group), "<h3>Footer</h3>", _footer(group), "</section>"]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Over-refusal leaderboard</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


class HtmlReporter(LeaderboardReporter):
    """Renders runs as a self-contained HTML report; ``ci=1`` adds bootstrap intervals."""

    name = "html"
    summary = "leaderboard with plots (self-contained HTML)"

    def render_report(self, report: Report) -> str:
        """The HTML text."""
        return render_report(report)


orbench_register_reporters = registration(HtmlReporter)


@hookimpl
def orbench_register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``harness view``: the runs' prompts and answers as one HTML page, the other HTML
    this plugin writes (the command lives here, not in the core, which never imports a plugin)."""
    add_view_parser(subparsers)
