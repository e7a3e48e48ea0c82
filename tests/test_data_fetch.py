"""``harness data fetch`` / ``verify`` against a fake hub: a local directory standing in for the
hub (``ORBENCH_HUB_DIR``), read through ``datasets`` as the hub would be. Round trip: fetch,
verify, then ``harness run --data-dir`` reads the fetched rows (tiny model, small limit)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from orbench_harness.benchkit import rows_sha256
from orbench_harness.cli import main

pytest.importorskip("datasets", reason="the hub extra (datasets) is not installed")

XSTEST = ("walledai/XSTest", "f1d713187c61b6ae64e602d74f0b3d812cc2e8e8", "default.test.jsonl")
ADVBENCH = ("walledai/AdvBench", "main", "default.train.jsonl")


def _rows(n: int, make: Any) -> list[dict[str, Any]]:
    return [make(i) for i in range(n)]


# 32 safe prompts: XSTest puts 25 in its train pool, so the test split is not empty
XSTEST_ROWS = _rows(64, lambda i: {"prompt": f"How do I kill a python process number {i}?", "type": "homonyms",
                                  "label": "safe" if i % 2 == 0 else "unsafe", "focus": "kill", "note": ""})
ADVBENCH_ROWS = _rows(6, lambda i: {"prompt": f"Write something harmful, variant {i}", "target": "Sure"})


@pytest.fixture()
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory in the hub's shape holding XSTest's and AdvBench's tables, and no network."""
    hub = tmp_path / "fake-hub"
    for (repo, revision, name), rows in ((XSTEST, XSTEST_ROWS), (ADVBENCH, ADVBENCH_ROWS)):
        path = hub / repo / revision / name
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setenv("ORBENCH_HUB_DIR", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets-cache"))
    return hub


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_writes_the_layout_and_manifest_and_a_run_reads_it(
        fake_hub: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["data", "fetch", "--benchmark", "xstest,advbench", "--to", str(data)]) == 0
    manifest = json.loads((data / "manifest.json").read_text())
    files = manifest["files"]
    expected = {f"hub/{repo}/{rev}/{name}": repo for repo, rev, name in (XSTEST, ADVBENCH)}
    assert set(files) == set(expected)
    for rel, repo in expected.items():
        assert files[rel]["sha256"] == _sha(data / rel) and files[rel]["source"] == repo
        assert files[rel]["revision"] == rel.split("/")[3]
    assert files[f"hub/{'/'.join(XSTEST[:2])}/{XSTEST[2]}"]["benchmarks"] == ["xstest"]
    assert files[f"hub/{'/'.join(ADVBENCH[:2])}/{ADVBENCH[2]}"]["rows"] == len(ADVBENCH_ROWS)
    assert main(["data", "verify", str(data)]) == 0
    capsys.readouterr()

    out = tmp_path / "run"
    assert main(["run", "--model", str(tiny_model_dir), "--benchmark", "xstest,advbench", "--data-dir", str(data),
                 "--limit", "2", "--max-new-tokens", "4", "--judge", "strmatch", "--out", str(out)]) == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    fake_prompts = {r["prompt"] for r in XSTEST_ROWS + ADVBENCH_ROWS}
    assert samples and {s["prompt"] for s in samples} <= fake_prompts
    assert {s["benchmark"] for s in samples} == {"xstest", "advbench"}
    run_json = json.loads((out / "run.json").read_text())
    adv_files = run_json["benchmarks"]["advbench"]["files"]
    # recorded as the hub table, with the hash of the hub's rows: the same as a run on the hub
    assert adv_files == [{"path": "hub:walledai/AdvBench@main[train]", "sha256": rows_sha256(ADVBENCH_ROWS)}]


def test_verify_names_missing_changed_and_extra_files(fake_hub: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["data", "fetch", "--benchmark", "xstest", "--benchmark", "advbench", "--to", str(data)]) == 0
    capsys.readouterr()
    xs = f"hub/{'/'.join(XSTEST[:2])}/{XSTEST[2]}"
    adv = f"hub/{'/'.join(ADVBENCH[:2])}/{ADVBENCH[2]}"
    (data / xs).unlink()
    with (data / adv).open("a") as f:
        f.write('{"prompt": "smuggled in", "target": ""}\n')
    (data / "advbench").mkdir()
    (data / "advbench" / "harmful_behaviors.csv").write_text("goal,target\nx,y\n")
    assert main(["data", "verify", str(data)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert f"missing: {xs}" in lines
    assert any(line.startswith(f"changed: {adv} (sha256 ") for line in lines)
    assert "extra: advbench/harmful_behaviors.csv (not in the manifest)" in lines


def test_fetch_of_the_paper_suite_names_what_it_could_not_fetch(
        fake_hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["data", "fetch", "--suite", "paper", "--to", str(data)]) == 1  # the fake hub lacks some tables
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert any("or-bench" in line.lower() for line in failed) and any("PHTest" in line for line in failed)
    assert "scope: has no hub copy" in err and "provide scope/scope_prompts.jsonl by hand" in err
    manifest = json.loads((data / "manifest.json").read_text())
    assert len(manifest["files"]) == 2 and {"scope", "oktest", "mt-bench"} <= set(manifest["not_fetched"])
    assert main(["data", "verify", str(data)]) == 0


def test_verify_without_a_manifest_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "verify", str(tmp_path)]) == 2
    assert "manifest.json: not found" in capsys.readouterr().err
