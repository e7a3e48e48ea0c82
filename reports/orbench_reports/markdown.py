"""``markdown`` (alias ``md``): the paper-style leaderboard as GitHub-flavoured markdown.

Meant to be pasted into a paper draft or a README: the ACTOR paper's Table 1/2 layout (see
``reports/_tables.py``), the capability table (its Table 4), and a footer with what a reader
needs to trust the numbers: judge, split, n per benchmark, data hashes, partial refusals and
unparsed verdicts.
"""

from __future__ import annotations

from orbench_reports.base import LeaderboardReporter, registration
from orbench_reports.names import pretty
from orbench_reports.tables import Group, Report, Table, kind_text

CAPTION = (
    "C.R: compliance rate (%) on over-refusal benchmarks; S.S: safety score (% of harmful "
    "prompts refused); TS = (Avg C.R + S.S) / 2. Higher is better except where marked ↓. "
    "Rows sorted by TS within each model; best value per model in bold."
)
CAPABILITY_CAPTION = (
    "MT-Bench: 1-10 judge score; WikiText-2: perplexity (lower is better); MMLU: accuracy (%) "
    "by category. Best value per model in bold."
)


def _esc(text: str) -> str:
    return text.replace("|", "\\|")


def md_table(table: Table) -> list[str]:
    """Markdown lines of one table: model and method columns, then the numeric columns."""
    header = ["Model", "Method", *(_esc(c.title) for c in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * len(table.columns)]
    for i in range(len(table)):
        row = table.frame.iloc[i]
        cells = [_esc(str(row["model"])), _esc(str(row["method"]))]
        for col in table.columns:
            cell = table.cell(i, col)
            text = f"**{cell.text}**" if cell.bold else cell.text
            text += cell.mark
            if cell.ci_text:
                text += f" {cell.ci_text}"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _footer(group: Group) -> list[str]:
    seeds = ", ".join(map(str, group.seeds)) or "?"
    version = f" (version `{group.judge_version}`)" if group.judge_version else ""
    lines = [
        f"**Setting:** judge `{group.judge}`{version} · split `{group.split}` · "
        f"seed {seeds} · {len(group.runs)} run(s)",
        "",
        "| Benchmark | Kind | n | Data sha256 | Partial refusals | Unparsed |",
        "|---|---|---:|---|---:|---:|",
    ]
    for b in group.benchmarks:
        hashes = ", ".join(f"`{h}`" for h in b.hashes) or "—"
        name = pretty(b.name)
        label = name if name == b.name else f"{name} (`{b.name}`)"
        partial = "—" if b.kind == "capability" else str(b.partial)
        lines.append(f"| {_esc(label)} | {kind_text(b.kind)} | {b.n} | {hashes} | {partial} | {b.unparsed} |")
    if not all(b.same_data for b in group.benchmarks):
        lines += [
            "",
            "**Warning:** some benchmarks were read from different data files across runs.",
        ]
    lines += ["", "Runs:", ""]
    for run, label in zip(group.runs, group.main.frame["method"], strict=True):
        fp = f" (fingerprint `{run.method_fingerprint[:12]}`)" if run.method_fingerprint else ""
        lines.append(f"- {_esc(run.model)} / {_esc(str(label))}: `{run.path}`{fp}")
    if group.notes:
        lines += ["", *(f"- {n}" for n in group.notes)]
    return lines


def render_report(report: Report) -> str:
    """The whole markdown document."""
    lines = ["# Over-refusal leaderboard", ""]
    for note in report.notes:
        lines += [f"> **Note:** {note}", ""]
    if report.with_ci:
        lines += ["Brackets: 95% bootstrap confidence intervals from the per-sample verdicts.", ""]
    for group in report.groups:
        lines += [f"## {group.title}", "", CAPTION, "", *md_table(group.main), ""]
        if group.capability is not None:
            lines += [
                "### Capability",
                "",
                CAPABILITY_CAPTION,
                "",
                *md_table(group.capability),
                "",
            ]
        lines += ["### Footer", "", *_footer(group), ""]
    return "\n".join(lines).rstrip() + "\n"


class MarkdownReporter(LeaderboardReporter):
    """Renders runs as the paper-style markdown leaderboard; ``ci=1`` adds bootstrap intervals."""

    name = "markdown"
    summary = "paper-style leaderboard (markdown)"
    aliases = ("md",)

    def render_report(self, report: Report) -> str:
        """The markdown text."""
        return render_report(report)


orbench_register_reporters = registration(MarkdownReporter)
