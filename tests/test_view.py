"""``harness view``: the page of a real run (the README's main job on the tiny model) and of two
runs compared, driven in headless Chromium: filters, a collapsed harmful completion opened by a
click, a screenshot, assertions on the DOM; completions with markup stay text; ``--serve``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _runfixtures import bench, write_run
from orbench_harness.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
EVIL = '<script>window.pwned = 1</script></script><img src=x onerror="window.pwned = 2">'


@pytest.fixture()
def page_of(tmp_path: Path) -> Iterator[Any]:
    """Opens a written page in headless Chromium; returns the Playwright page."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        requests: list[str] = []

        def open_page(path: Path) -> Any:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            assert requests == [path.as_uri()]  # nothing fetched but the file itself
            return page

        yield open_page
        browser.close()


def _rows(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "#rows tr", "trs => trs.map(tr => ({bench: tr.dataset.bench, id: tr.cells[1].textContent,"
        " flip: tr.className === 'flip'}))")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_view_of_the_main_job_runs_in_chromium(tiny_model_dir: Path, tmp_path: Path, page_of: Any) -> None:
    out = tmp_path / "runs" / "main"
    assert main(["run", "--model", str(tiny_model_dir), "--method", "none,self-cd", "--benchmark", "demo",
                 "--limit", "2", "--max-new-tokens", "4", "--judge", "strmatch", "--out", str(out)]) == 0
    page_file = tmp_path / "view.html"
    assert main(["view", str(out), "-o", str(page_file)]) == 0
    samples = {m: _jsonl(out / m / "samples.jsonl") for m in ("none", "self-cd")}
    page = page_of(page_file)
    headers = page.eval_on_selector_all("#head th", "ths => ths.map(t => t.textContent)")
    assert headers[4:] == ["tiny-llama / none", "tiny-llama / self-cd"]
    assert len(_rows(page)) == len(samples["none"]) == len(samples["self-cd"])
    harmful = [s for s in samples["none"] if s["expected"] == "refuse"]
    assert harmful, "the demo suite has a harmful set"
    # every harmful completion starts collapsed; the benign ones are shown
    assert page.eval_on_selector_all("details.harmful", "ds => ds.every(d => !d.open)")
    assert page.locator("details.harmful").count() == 2 * len(harmful)
    assert not page.eval_on_selector_all("#rows tr:not([data-bench='demo-harmful']) details", "ds => ds.length")
    assert page.is_disabled("#f-disagree") and page.is_enabled("#f-flips")  # one judge per run, two runs
    page.select_option("#f-bench", "demo-harmful")
    rows = _rows(page)
    assert {r["bench"] for r in rows} == {"demo-harmful"} and len(rows) == len(harmful)
    first = page.locator("details.harmful").first
    assert not first.locator(".completion").is_visible()
    first.locator("summary").click()
    assert first.evaluate("d => d.open") and first.locator(".completion").is_visible()
    row_id = rows[0]["id"]
    expected = next(s["completion"] for s in harmful if s["id"] == row_id)
    assert first.locator(".completion").text_content() == expected
    page.screenshot(path=str(tmp_path / "view.png"), full_page=True)
    assert (tmp_path / "view.png").stat().st_size > 1000
    assert page.text_content("#count").startswith(f"{len(harmful)} shown of {len(harmful)} matching")


def _two_runs(root: Path) -> tuple[Path, Path, set[str], set[str]]:
    """Two runs over the same prompts: run a with two judges, run b with some verdicts flipped.
    Returns the run dirs, the ids that flip and the ids where a's judges disagree."""
    xs_ids, adv_ids = [f"x{i}" for i in range(6)], [f"a{i}" for i in range(4)]
    flips, disagree = {"x1", "x4", "a2"}, {"x2", "a0"}

    def records(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        samples, verdicts = [], []
        for b, ids, expected, base in (("xstest", xs_ids, "comply", "full_compliance"),
                                       ("advbench", adv_ids, "refuse", "full_refusal")):
            for sid in ids:
                completion = f"{name} answers {sid}: " + (EVIL if sid in ("x0", "a1") else "fine")
                samples.append({"benchmark": b, "id": sid, "prompt": f"prompt <b>{sid}</b>", "expected": expected,
                                "completion": completion})
                other = "full_refusal" if base == "full_compliance" else "full_compliance"
                label = other if name == "b" and sid in flips else base
                verdicts.append({"benchmark": b, "id": sid, "judge": "strmatch", "label": label})
                if name == "a":
                    second = other if sid in disagree else label
                    verdicts.append({"benchmark": b, "id": sid, "judge": "keywords", "label": second})
        return samples, verdicts

    dirs = []
    for name in ("a", "b"):
        samples, verdicts = records(name)
        dirs.append(write_run(root, name, model="m", method=f"method-{name}", samples=samples, verdicts=verdicts,
                              benchmarks={"xstest": bench("over_refusal", 50), "advbench": bench("safety", 50)}))
    return dirs[0], dirs[1], flips, disagree


def test_two_runs_flips_disagreement_and_markup_stays_text(tmp_path: Path, page_of: Any) -> None:
    a, b, flips, disagree = _two_runs(tmp_path / "runs")
    page_file = tmp_path / "compare.html"
    assert main(["view", str(a), str(b), "-o", str(page_file)]) == 0
    html = page_file.read_text()
    assert "<script>window.pwned" not in html and "<img" not in html  # the data carries no markup
    page = page_of(page_file)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#rows img").count() == 0 and page.locator("#rows b").count() == 0
    assert page.locator("#rows tr", has_text="prompt <b>x3</b>").count() == 1  # shown as text
    benign = page.locator("#rows tr[data-bench='xstest']", has_text="answers x0").first
    assert EVIL in benign.text_content()
    assert {r["id"] for r in _rows(page) if r["flip"]} == flips
    page.check("#f-flips")
    assert {r["id"] for r in _rows(page)} == flips
    page.uncheck("#f-flips")
    assert page.is_enabled("#f-disagree")
    page.check("#f-disagree")
    assert {r["id"] for r in _rows(page)} == disagree
    page.uncheck("#f-disagree")
    page.select_option("#f-verdict", "mismatch")  # benign refused or harmful answered, in either run
    assert {r["id"] for r in _rows(page)} == flips
    page.select_option("#f-verdict", "")
    page.fill("#f-search", "answers a1")
    rows = _rows(page)
    assert [r["id"] for r in rows] == ["a1"]
    details = page.locator("details.harmful")
    assert details.count() == 2 and not details.first.evaluate("d => d.open")
    details.first.locator("summary").click()
    assert EVIL in details.first.locator(".completion").inner_text()
    assert page.evaluate("window.pwned") is None
    page.screenshot(path=str(tmp_path / "compare.png"))


def test_view_serves_the_page_on_loopback(tmp_path: Path) -> None:
    a, b, _, _ = _two_runs(tmp_path / "runs")
    page_file = tmp_path / "v.html"
    proc = subprocess.Popen([sys.executable, "-m", "orbench_harness.cli", "view", str(a), str(b), "-o", str(page_file),
                             "--serve"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            found = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
            if found:
                url = found.group(1)
                break
        assert url is not None
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.read().decode("utf-8") == page_file.read_text(encoding="utf-8")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_view_of_a_directory_without_runs_is_a_one_line_error(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["view", str(tmp_path / "empty")]) == 2
    assert "no run.json found" in capsys.readouterr().err


def test_view_shows_an_unfinished_run_so_far(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _, _, _ = _two_runs(tmp_path / "runs")
    (a / "results.json").unlink()
    page_file = tmp_path / "v.html"
    assert main(["view", str(a), "-o", str(page_file)]) == 0
    assert "unfinished run" in capsys.readouterr().err
    data = json.loads(page_file.read_text().split('id="view-data">')[1].split("</script>")[0])
    samples = _jsonl(a / "samples.jsonl")
    assert [(i["b"], i["id"]) for i in data["items"]] == [(s["benchmark"], s["id"]) for s in samples]
    # kinds come from the samples' expected behaviour when results.json is absent
    assert {b["name"]: b["harmful"] for b in data["benchmarks"]} == {"xstest": False, "advbench": True}
    judged = {(v["benchmark"], v["id"]): v["label"] for v in _jsonl(a / "verdicts.jsonl") if v["judge"] == "strmatch"}
    assert {(i["b"], i["id"]): i["r"][0]["v"] for i in data["items"]} == judged


def test_samples_not_judged_yet_say_so(tmp_path: Path, page_of: Any) -> None:
    a, _, _, _ = _two_runs(tmp_path / "runs")
    (a / "verdicts.jsonl").write_text("")  # generated, not judged yet
    page_file = tmp_path / "v.html"
    assert main(["view", str(a), "-o", str(page_file)]) == 0
    page = page_of(page_file)
    badges = page.eval_on_selector_all("#rows .verdict", "bs => bs.map(b => b.textContent)")
    assert badges and set(badges) == {"not judged"}
    page.select_option("#f-verdict", "mismatch")  # nothing judged, so nothing mismatches
    assert _rows(page) == []
