"""Leaderboard display fixes: short headers for prompt files, distinct row labels, daggers on
rows that average other benchmark sets, scatter points off the frame, a caption that matches
what is drawn, and the within-noise mark shown by default."""

from __future__ import annotations

import re
from pathlib import Path

from _runfixtures import bench, verdict_rows, write_run
from orbench_harness.runs import load_run
from orbench_reports.html import HtmlReporter
from orbench_reports.markdown import MarkdownReporter
from orbench_reports.svg import BOTTOM, LEFT, RIGHT, TOP, H, W
from test_reports import md_tables


def _main(text: str) -> list[list[str]]:
    return md_tables(text)[0]


def _same_named_runs(tmp_path: Path, benchmark: str) -> list[Path]:
    return [write_run(tmp_path / parent, "none", model="m", method="none",
                      benchmarks={benchmark: bench("over_refusal", cr), "advbench": bench("safety", 10)})
            for parent, cr in (("main", 70), ("quick", 60))]


def test_a_prompt_file_column_is_headed_by_its_stem(tmp_path: Path) -> None:
    prompts = str(tmp_path / "elsewhere" / "my_prompts.csv")
    runs = [load_run(d) for d in _same_named_runs(tmp_path, prompts)]
    text = MarkdownReporter().render(runs)
    assert _main(text)[0][2] == "my_prompts" and prompts not in _main(text)[0]
    assert f"my_prompts (`{prompts}`)" in text  # the footer keeps the full path
    assert "<th>my_prompts</th>" in HtmlReporter().render(runs)


def test_runs_in_directories_named_alike_are_told_apart_by_their_parents(tmp_path: Path) -> None:
    text = MarkdownReporter().render([load_run(d) for d in _same_named_runs(tmp_path, "xstest")])
    assert sorted(r[1] for r in _main(text)[1:]) == ["none [main]", "none [quick]"]
    assert "[none]" not in text


def test_rows_averaging_other_sets_carry_a_dagger_on_avg_and_ts(tmp_path: Path) -> None:
    demo = write_run(tmp_path / "main", "none", model="m", method="none",
                     benchmarks={"demo-benign": bench("over_refusal", 50), "demo-harmful": bench("safety", 20)})
    quick = write_run(tmp_path / "quick", "none", model="m", method="none",
                      benchmarks={"xstest": bench("over_refusal", 80), "advbench": bench("safety", 10)})
    full = write_run(tmp_path / "full", "actor", model="m", method="actor",
                     benchmarks={"xstest": bench("over_refusal", 90), "demo-benign": bench("over_refusal", 70),
                                 "advbench": bench("safety", 5)})
    text = MarkdownReporter().render([load_run(p) for p in (demo, quick, full)])
    main = _main(text)
    header = main[0]
    rows = {r[1]: dict(zip(header, r, strict=True)) for r in main[1:]}
    assert rows["actor"]["Avg C.R"].strip("*") == "80.00" and "†" not in rows["actor"]["TS"]
    for label in ("none [main]", "none [quick]"):
        assert rows[label]["Avg C.R"].endswith("†") and rows[label]["TS"].endswith("†")
    assert "m / none [main]: C.R over demo-benign; S.S from demo-harmful" in text
    assert "m / none [quick]: C.R over XSTest; S.S from AdvBench" in text


def _circles(svg: str) -> list[tuple[float, float, float]]:
    return [(float(x), float(y), float(r)) for x, y, r in
            re.findall(r'<circle[^>]*cx="([\d.]+)" cy="([\d.]+)" r="([\d.]+)"', svg)]


def _scatter_runs(tmp_path: Path) -> list[Path]:
    """(C.R, S.S): none (0, 0), actor (100, 0): actor beats none, so the model's front is one run."""
    return [
        write_run(tmp_path, "none", model="m", method="none",
                  benchmarks={"xstest": bench("over_refusal", 0), "advbench": bench("safety", 100)}),
        write_run(tmp_path, "actor", model="m", method="actor",
                  benchmarks={"xstest": bench("over_refusal", 100), "advbench": bench("safety", 100)}),
    ]


def _scatter(dirs: list[Path]) -> tuple[str, str]:
    html = HtmlReporter().render([load_run(d) for d in dirs])
    svg, caption = html.split("<figure>")[1].split("</figure>")[0].split("<figcaption>")
    return svg, caption


def test_scatter_points_stay_inside_the_frame(tmp_path: Path) -> None:
    svg, _ = _scatter(_scatter_runs(tmp_path))  # points at 0% and 100% on both axes
    circles = _circles(svg)
    assert len(circles) >= 2
    for cx, cy, r in circles:  # whole circle strictly inside the plot frame
        assert cx - r > LEFT and cx + r < W - RIGHT, (cx, r)
        assert cy - r > TOP and cy + r < H - BOTTOM, (cy, r)


def test_scatter_caption_describes_what_is_drawn(tmp_path: Path) -> None:
    dirs = _scatter_runs(tmp_path)
    svg, caption = _scatter(dirs)
    assert 'class="front"' in svg  # the one-run front is drawn (a ring)
    assert ("dashed" in caption) == ("stroke-dasharray" in svg and "<polyline" in svg)
    # two runs on one front: the line is drawn and the caption says so
    dirs.append(write_run(tmp_path, "sft", model="m", method="sft",
                          benchmarks={"xstest": bench("over_refusal", 40), "advbench": bench("safety", 0)}))
    svg, caption = _scatter(dirs)
    assert "<polyline" in svg and "dashed" in caption


def _run_with_verdicts(root: Path, name: str, method: str, xs_ok: int, adv_refused: int, n: int = 40) -> Path:
    xs = ["full_compliance"] * xs_ok + ["full_refusal"] * (n - xs_ok)
    adv = ["full_refusal"] * adv_refused + ["full_compliance"] * (n - adv_refused)
    return write_run(root, name, model="m", method=method,
                     benchmarks={"xstest": bench("over_refusal", 100 * xs_ok / n, n=n),
                                 "advbench": bench("safety", 100 - 100 * adv_refused / n, n=n)},
                     verdicts=verdict_rows("xstest", xs) + verdict_rows("advbench", adv))


def test_within_noise_mark_is_shown_without_ci(tmp_path: Path) -> None:
    close = [_run_with_verdicts(tmp_path, "a", "none", 30, 20), _run_with_verdicts(tmp_path, "b", "actor", 31, 20)]
    text = MarkdownReporter().render([load_run(d) for d in close])
    rows = {r[1]: r for r in _main(text)[1:]}
    assert rows["actor"][2] == "**77.50**" and rows["none"][2] == "75.00≈"
    assert "≈ within noise of the bold value" in text and "[" not in rows["none"][2]
    html = HtmlReporter().render([load_run(d) for d in close])
    assert "<sup>≈</sup>" in html
    far = [_run_with_verdicts(tmp_path, "c", "none", 2, 20), _run_with_verdicts(tmp_path, "d", "actor", 38, 20)]
    text = MarkdownReporter().render([load_run(d) for d in far])
    rows = {r[1]: r for r in _main(text)[1:]}
    assert rows["none"][2] == "5.00" and "≈" not in rows["none"][2]


def test_a_capability_benchmarks_counts_are_not_leaderboard_columns(tmp_path: Path) -> None:
    wiki = {"kind": "capability", "n": 4, "perplexity": 20.55, "n_tokens": 2559, "n_windows": 4}
    runs = [write_run(tmp_path, m, model="m", method=m,
                      benchmarks={"xstest": bench("over_refusal", 50), "advbench": bench("safety", 90),
                                  "wikitext2": dict(wiki)}) for m in ("none", "actor")]
    capability = md_tables(MarkdownReporter().render([load_run(d) for d in runs]))[1]
    assert "WikiText-2 PPL ↓" in capability[0]
    assert not [h for h in capability[0] if "n_tokens" in h or "n_windows" in h], capability[0]
