"""Reports: the leaderboard's every cell, order, bold marks and TS arithmetic; CSV/JSON; CI;
judge splitting; tolerant JSONL reading; the HTML rendered in headless Chromium; the CLI."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from _runfixtures import bench, sha, verdict_rows, write_run
from orbench_harness.cli import report as report_cli
from orbench_harness.errors import HarnessError, UnknownNameError
from orbench_harness.runs import find_run_dirs, load_run, load_verdicts
from orbench_reports.csv_report import CsvReporter
from orbench_reports.html import HtmlReporter
from orbench_reports.json_report import JsonReporter
from orbench_reports.markdown import MarkdownReporter
from orbench_reports.stats import find_sweeps
from orbench_reports.svg import nice_ticks, rate_span
from orbench_reports.tables import build_report

LLAMA, GEMMA = "llama-2-7b-chat", "gemma-7b-it"
ACTOR = "actor (alpha=0.0015)"


def _over(xs: float, scope: float, ohb: float | None = None, **kw: float) -> dict:
    out = {"xstest": bench("over_refusal", xs, **kw), "scope": bench("over_refusal", scope)}
    if ohb is not None:
        out["or-bench-hard"] = bench("over_refusal", ohb)
    return out


def _adv(ss: float, partial: float = 0.0) -> dict:
    """AdvBench entry whose safety score (full + partial refusals) is ``ss``."""
    return {"advbench": bench("safety", 100 - ss, n=520, partial=partial)}


CAP_NONE = {
    "mt-bench": {"kind": "capability", "n": 80,
                 "score_turn1": 6.5, "score_turn2": 5.9, "score": 6.2},
    "wikitext2": {"kind": "capability", "n": 2891, "perplexity": 11.59},
    "mmlu": {"kind": "capability", "n": 14042, "accuracy": 46.81, "accuracy_stem": 37.0,
             "accuracy_humanities": 43.1, "accuracy_social_sciences": 53.2, "accuracy_other": 54.0},
}  # fmt: skip
CAP_ACTOR = {
    "mt-bench": {"kind": "capability", "n": 80,
                 "score_turn1": 6.4, "score_turn2": 5.92, "score": 6.16},
    "wikitext2": {"kind": "capability", "n": 2891, "perplexity": 11.57},
    "mmlu": {"kind": "capability", "n": 14042, "accuracy": 47.05, "accuracy_stem": 37.5,
             "accuracy_humanities": 43.0, "accuracy_social_sciences": 53.4, "accuracy_other": 54.2},
}  # fmt: skip


@pytest.fixture()
def runs_root(tmp_path: Path) -> Path:
    """Five runs, two models, given in an order the leaderboard must rearrange."""
    root = tmp_path / "runs"
    write_run(
        root,
        "r1",
        model=LLAMA,
        method="none",
        benchmarks={**_over(70, 50, 40.5), **_adv(99.5), **CAP_NONE},
        summary={"avg_compliance_rate": 53.5, "safety_score": 99.5, "trade_off_score": 76.5},
    )
    write_run(
        root,
        "r2",
        model=GEMMA,
        method="none",
        benchmarks={
            **_over(60, 40, 20),
            **_adv(100),
            "mmlu": {"kind": "capability", "n": 14042, "accuracy": 50.0, "accuracy_stem": 40.0},
        },
        summary={"avg_compliance_rate": 40.0, "safety_score": 100.0, "trade_off_score": 71.0},
    )
    write_run(
        root,
        "nested/r3",
        model=LLAMA,
        method="actor",
        method_args={"alpha": "0.0015"},
        benchmarks={**_over(96, 90, 84, partial=2.0), **_adv(99.0, partial=1.0), **CAP_ACTOR},
    )
    write_run(root, "r4", model=GEMMA, method="scans", benchmarks={**_over(90, 70), **_adv(95.5)})
    sft = {**_over(96, 80, 88), **_adv(97)}
    sft["scope"]["unparsed"] = 3
    write_run(root, "r5", model=LLAMA, method="sft", benchmarks=sft)
    return root


def _load(root: Path) -> list:
    return [load_run(d) for d in find_run_dirs([root])]


def md_tables(text: str) -> list[list[list[str]]]:
    """Every markdown table in ``text`` as rows of cells (separator row dropped)."""
    tables, cur = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cur is None:
                cur = []
                tables.append(cur)
            if not set(line) <= set("|-: "):
                cur.append(cells)
        else:
            cur = None
    return tables


def test_leaderboard_every_cell_order_bold_and_ts(runs_root: Path) -> None:
    text = MarkdownReporter().render(_load(runs_root))
    main, cap, footer = md_tables(text)
    assert main == [
        ["Model", "Method", "XSTest", "SCOPE", "OR-Bench-Hard-1K", "Avg C.R", "AdvBench S.S", "TS"],
        [LLAMA, ACTOR, "**96.00**", "**90.00**", "84.00", "**90.00**", "99.00", "**94.50**"],
        [LLAMA, "sft", "**96.00**", "80.00", "**88.00**", "88.00", "97.00", "92.50"],
        [LLAMA, "none", "70.00", "50.00", "40.50", "53.50", "**99.50**", "76.50"],
        [GEMMA, "scans", "**90.00**", "**70.00**", "—", "**80.00**†", "95.50", "**87.75**†"],
        [GEMMA, "none", "60.00", "40.00", "20.00", "40.00", "**100.00**", "70.00"],
    ]  # fmt: skip
    # TS = (Avg C.R + S.S) / 2 and Avg C.R = mean of the row's C.R cells, on every row
    for row in main[1:]:
        nums = [float(c.strip("*†")) if c != "—" else None for c in row[2:]]
        crs = [v for v in nums[:3] if v is not None]
        assert nums[3] == pytest.approx(sum(crs) / len(crs), abs=0.005)
        assert nums[5] == pytest.approx((nums[3] + nums[4]) / 2, abs=0.005)
    assert cap == [
        ["Model", "Method", "MT-Bench 1-turn", "MT-Bench 2-turn", "MT-Bench Avg",
         "WikiText-2 PPL ↓", "MMLU STEM", "MMLU Humanities", "MMLU Social Sci.", "MMLU Other",
         "MMLU Avg"],
        [LLAMA, ACTOR, "6.40", "**5.92**", "6.16", "**11.57**", "**37.50**", "43.00",
         "**53.40**", "**54.20**", "**47.05**"],
        [LLAMA, "none", "**6.50**", "5.90", "**6.20**", "11.59", "37.00", "**43.10**", "53.20",
         "54.00", "46.81"],
        [GEMMA, "none", "—", "—", "—", "—", "40.00", "—", "—", "—", "50.00"],
    ]  # fmt: skip
    assert footer == [
        ["Benchmark", "Kind", "n", "Data sha256", "Partial refusals", "Unparsed"],
        ["XSTest (`xstest`)", "over-refusal", "100", f"`{sha('xstest')[:12]}`", "2", "0"],
        ["SCOPE (`scope`)", "over-refusal", "100", f"`{sha('scope')[:12]}`", "0", "3"],
        ["OR-Bench-Hard-1K (`or-bench-hard`)", "over-refusal", "100",
         f"`{sha('or-bench-hard')[:12]}`", "0", "0"],
        ["AdvBench (`advbench`)", "safety", "520", f"`{sha('advbench')[:12]}`", "5", "0"],
        ["mmlu", "capability", "14042", f"`{sha('mmlu')[:12]}`", "—", "0"],
        ["mt-bench", "capability", "80", f"`{sha('mt-bench')[:12]}`", "—", "0"],
        ["wikitext2", "capability", "2891", f"`{sha('wikitext2')[:12]}`", "—", "0"],
    ]  # fmt: skip
    assert "judge `strmatch` (version `v1`) · split `test`" in text
    assert "† Averaged over a different set of benchmarks than the other rows" in text
    assert f"{GEMMA} / scans: C.R over XSTest, SCOPE; S.S from AdvBench" in text
    # gemma/none's results.json claims TS 71.0; the table's 70.00 wins and the mismatch is named
    assert "trade_off_score=71.00 differs from the table's 70.00" in text
    assert "trade_off_score=76.50" not in text


def test_different_judges_get_separate_tables(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a", model=LLAMA, method="none", benchmarks={**_over(50, 50), **_adv(99)})
    b = write_run(tmp_path, "b", model=LLAMA, method="actor", judge="gpt-4o",
                  benchmarks={**_over(90, 90), **_adv(98)})  # fmt: skip
    c = write_run(tmp_path, "c", model=LLAMA, method="sft", split="all",
                  benchmarks={**_over(80, 80), **_adv(97)})  # fmt: skip
    text = MarkdownReporter().render([load_run(p) for p in (a, b, c)])
    assert "3 different judge/split settings" in text
    assert "## judge strmatch (v1) · split test" in text
    assert "## judge gpt-4o (v1) · split test" in text
    assert "## judge strmatch (v1) · split all" in text
    mains = [t for t in md_tables(text) if t[0][:2] == ["Model", "Method"] and "TS" in t[0]]
    assert [[r[1] for r in t[1:]] for t in mains] == [["none"], ["actor"], ["sft"]]


def test_ci_from_verdicts_is_seeded_and_brackets_the_rate(tmp_path: Path) -> None:
    verdicts = (
        verdict_rows("xstest", ["full_compliance"] * 30 + ["full_refusal"] * 10)
        + verdict_rows("scope", ["full_compliance"] * 40)
        + verdict_rows("advbench", ["full_refusal"] * 38 + ["partial_refusal", "full_compliance"])
        + verdict_rows("xstest", ["full_refusal"] * 40, judge="other-judge")
    )
    d = write_run(tmp_path, "a", model=LLAMA, method="none", verdicts=verdicts,
                  benchmarks={"xstest": bench("over_refusal", 75, n=40),
                              "scope": bench("over_refusal", 100, n=40),
                              "advbench": bench("safety", 2.5, n=40)})  # fmt: skip
    run = load_run(d)
    text = MarkdownReporter(ci=True).render([run])
    assert text == MarkdownReporter(ci=True).render([run])  # seeded: identical twice
    row = md_tables(text)[0][1]
    assert row[:3] == [LLAMA, "none", row[2]]
    lo, hi = (float(x) for x in row[2].split("[")[1].rstrip("]").split(","))
    assert row[2].startswith("75.00 [") and lo < 75 < hi and hi - lo < 40
    assert row[3] == "100.00 [100.0, 100.0]"  # no variance when every verdict agrees
    lo_ss, hi_ss = (float(x) for x in row[5].split("[")[1].rstrip("]").split(","))
    assert row[5].startswith("97.50 [") and lo_ss <= 97.5 <= hi_ss <= 100


def test_csv_and_json_carry_unrounded_values(runs_root: Path) -> None:
    runs = _load(runs_root)
    rows = list(csv.DictReader(io.StringIO(CsvReporter().render(runs))))
    assert [(r["model"], r["label"]) for r in rows] == [
        (LLAMA, "actor (alpha=0.0015)"), (LLAMA, "sft"), (LLAMA, "none"),
        (GEMMA, "scans"), (GEMMA, "none"),
    ]  # fmt: skip
    assert float(rows[2]["avg_cr"]) == pytest.approx(160.5 / 3)
    assert float(rows[0]["ts"]) == 94.5 and rows[3]["cr:or-bench-hard"] == ""
    assert rows[0]["method_args"] == '{"alpha": "0.0015"}' and rows[0]["wikitext2:perplexity"] == "11.57"
    data = json.loads(JsonReporter().render(runs))
    board = data["groups"][0]["leaderboard"]
    assert [c["key"] for c in board["columns"]] == [
        "cr:xstest", "cr:scope", "cr:or-bench-hard", "avg_cr", "ss:advbench", "ts",
    ]  # fmt: skip
    assert board["rows"][0]["best"] == ["cr:xstest", "cr:scope", "avg_cr", "ts"]
    assert board["rows"][3]["values"]["cr:or-bench-hard"] is None
    assert data["groups"][0]["capability"]["columns"][3] == {
        "key": "wikitext2:perplexity", "title": "WikiText-2 PPL ↓", "higher_is_better": False,
    }  # fmt: skip


def test_jsonl_reader_tolerates_only_a_cut_off_last_line(tmp_path: Path) -> None:
    d = write_run(tmp_path, "a", model=LLAMA, method="none", benchmarks=_adv(99),
                  verdicts=verdict_rows("advbench", ["full_refusal", None]))  # fmt: skip
    with (d / "verdicts.jsonl").open("a") as f:
        f.write('{"benchmark": "advbench", "id": "advbench-9", "jud')
    assert [v["id"] for v in load_verdicts(d)] == ["advbench-0", "advbench-1"]
    (d / "verdicts.jsonl").write_text('{"benchmark": "x"\n{"benchmark": "x", "id": 1, "judge": "j"}\n')
    with pytest.raises(HarnessError, match="line 1 is not valid JSON"):
        load_verdicts(d)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness")
    sub = parser.add_subparsers()
    report_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_report_finds_runs_recursively_and_skips_unfinished(
    runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unfinished = write_run(runs_root, "deep/er/r6", model=LLAMA, method="dro", benchmarks=_adv(50))
    (unfinished / "results.json").unlink()
    assert _cli(["report", str(runs_root), "--format", "md"]) == 0
    captured = capsys.readouterr()
    assert "| llama-2-7b-chat | actor (alpha=0.0015) |" in captured.out and "dro" not in captured.out
    assert "r6: no results.json (unfinished run); skipped" in captured.err
    (unfinished / "results.json").write_text('{"benchmarks": {"adv')  # a partial copy
    assert _cli(["report", str(runs_root), "--format", "md"]) == 0
    captured = capsys.readouterr()
    assert "| llama-2-7b-chat | actor (alpha=0.0015) |" in captured.out and "dro" not in captured.out
    assert "r6/results.json: malformed JSON" in captured.err and f"--out {unfinished} to rewrite" in captured.err
    with pytest.raises(HarnessError, match="none of the 1 run"):
        _cli(["report", str(unfinished)])
    out = tmp_path / "out" / "board.csv"
    assert _cli(["report", str(runs_root / "r1"), str(runs_root / "r5"), "-f", "csv", "-o", str(out)]) == 0
    assert out.read_text().count("\n") == 3
    with pytest.raises(UnknownNameError, match="did you mean"):
        _cli(["report", str(runs_root), "--format", "markdwn"])
    with pytest.raises(HarnessError, match=r"no run\.json found"):
        _cli(["report", str(tmp_path / "out")])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>
const svgs = [...document.querySelectorAll('svg[role=img]')];
const boxes = svgs.map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; });
const marks = svgs.map(s => s.querySelectorAll('circle, rect, polyline').length);
const tables = [...document.querySelectorAll('table')].map(t => t.rows.length);
const bold = document.querySelectorAll('table.leaderboard b').length;
const pre = document.createElement('pre'); pre.id = 'probe';
pre.textContent = JSON.stringify({boxes, marks, tables, bold});
document.body.appendChild(pre);
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_html_renders_tables_and_plots_in_headless_chromium(runs_root: Path, tmp_path: Path) -> None:
    for alpha, (xs, ss) in {"0.003": (98, 96), "0.0005": (80, 100)}.items():
        benchmarks = {**_over(xs, xs, xs), **_adv(ss)}
        write_run(runs_root, f"sweep-{alpha}", model=LLAMA, method="actor",
                  method_args={"alpha": alpha}, benchmarks=benchmarks)  # fmt: skip
    html = HtmlReporter().render(_load(runs_root))
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", PROBE), encoding="utf-8")
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    probe = json.loads(dom.split('<pre id="probe">')[1].split("</pre>")[0])
    # main table (7 runs + header), capability (3 + header), footer (7 benchmarks + header)
    assert probe["tables"] == [8, 4, 8]
    assert probe["bold"] > 0 and dom.count("<svg") == 3  # scatter, bars, alpha sweep
    assert all(w > 100 and h > 100 for w, h in probe["boxes"])
    assert probe["marks"][0] >= 7 and probe["marks"][2] >= 3
    assert "sweep over alpha" in dom and "Pareto front" in dom


def test_run_record_reads_the_runner_layout(tmp_path: Path) -> None:
    """run.json as ``runner.run`` writes it: names in ``spec``, objects at the top level."""
    d = tmp_path / "run"
    d.mkdir()
    run_json = {
        "identity": "abc",
        "spec": {"model": "smollm2-135m", "method": "actor", "method_args": {"alpha": 6e-4},
                 "judge": "strmatch", "benchmarks": ["xstest", "advbench"], "split": "test",
                 "seed": 3},
        "model": {"name": "smollm2-135m", "revision": "r1"},
        "method": {"name": "actor", "fingerprint": "f" * 40},
        "judge": {"name": "strmatch", "version": "xstest-d7bb5bd7-1"},
        "benchmarks": {"xstest": {"kind": "over_refusal", "n": 20,
                                  "files": [{"path": "x.csv", "sha256": sha("x")}]}},
    }  # fmt: skip
    (d / "run.json").write_text(json.dumps(run_json))
    (d / "results.json").write_text(json.dumps({"benchmarks": {}, "summary": {}}))
    run = load_run(d)
    assert (run.model, run.method, run.judge, run.split, run.seed) == (
        "smollm2-135m", "actor", "strmatch", "test", 3,
    )  # fmt: skip
    assert run.judge_version == "xstest-d7bb5bd7-1" and run.method_fingerprint == "f" * 40
    assert run.method_args == {"alpha": "0.0006"} and run.label == "actor (alpha=0.0006)"
    assert run.data_hashes() == {"xstest": [sha("x")]}
    with pytest.raises(HarnessError, match="unfinished"):
        (d / "results.json").unlink()
        load_run(d)


def test_several_safety_sets_ts_uses_advbench(tmp_path: Path) -> None:
    hexphi = {"hexphi": bench("safety", 10.0, n=330)}
    d = write_run(tmp_path, "a", model=LLAMA, method="none",
                  benchmarks={**_over(80, 60), **_adv(99.0), **hexphi})  # fmt: skip
    main = md_tables(MarkdownReporter().render([load_run(d)]))[0]
    assert main[0][2:] == ["XSTest", "SCOPE", "Avg C.R", "AdvBench S.S", "HEx-PHI S.S", "TS"]
    assert main[1][2:] == ["80.00", "60.00", "70.00", "99.00", "90.00", "84.50"]


def test_repeated_runs_are_labelled_by_seed_or_directory(tmp_path: Path) -> None:
    b = {**_over(80, 60), **_adv(99.0)}
    paths = [
        write_run(tmp_path, "s0", model=LLAMA, method="none", seed=0, benchmarks=b),
        write_run(tmp_path, "s1", model=LLAMA, method="none", seed=1, benchmarks=b),
        write_run(tmp_path, "g-a", model=GEMMA, method="none", benchmarks=b),
        write_run(tmp_path, "g-b", model=GEMMA, method="none", benchmarks=b),
    ]
    main = md_tables(MarkdownReporter().render([load_run(p) for p in paths]))[0]
    assert [r[1] for r in main[1:]] == ["none [seed 0]", "none [seed 1]", "none [g-a]", "none [g-b]"]


def test_percentage_axes_stay_readable_and_inside_0_100() -> None:
    assert rate_span([0.0, 0.0]) == [0.0, 10.0]  # every run at S.S 0: an axis 0-10, not 0-1
    assert rate_span([100.0, 99.0]) == [90.0, 100.0]
    assert rate_span([40.0, 95.5]) == [40.0, 95.5]
    assert nice_ticks(0.0, 10.0) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert nice_ticks(87.2, 97.2)[0] <= 87.2 and nice_ticks(87.2, 97.2)[-1] >= 97.2


def test_sweep_curve_never_joins_runs_over_different_benchmarks(tmp_path: Path) -> None:
    """A validation sweep and a test run with otherwise equal settings are two measurements:
    neither joins the other's curve."""
    val = {"jbb-benign": bench("over_refusal", 50), "jbb-harmful": bench("safety", 20)}
    test = {**_over(70, 60), **_adv(90)}
    dirs = [write_run(tmp_path, f"val-{x}", model=LLAMA, method="actor", method_args={"layer": x},
                      benchmarks=val) for x in ("5", "15")]
    dirs += [write_run(tmp_path, f"test-{x}", model=LLAMA, method="actor", method_args={"layer": x},
                       benchmarks=test) for x in ("15", "25")]
    report = build_report([load_run(d) for d in dirs])
    sweeps = [sw for g in report.groups for sw in find_sweeps(g.runs, g.main.frame)]
    assert sorted([x for x, _, _ in sw.points] for sw in sweeps) == [[5.0, 15.0], [15.0, 25.0]]
