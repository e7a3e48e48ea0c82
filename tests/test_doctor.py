"""``harness doctor``: damaged, incomplete and duplicate lines are named by file and line and
``--fix`` removes only them; a hand-edited identity, orphan verdicts, an unreadable
results.json, a garbage cache file and a stale conversion temporary are reported; a running
run is never written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from _runfixtures import sample_rows, verdict_rows
from orbench_harness.cache import Cache
from orbench_harness.cli import main
from orbench_harness.spec import RunSpec, identity
from orbench_harness.store import RunStore

MODEL_KEY = {"source": "org/m", "revision": "main", "gguf_file": None, "chat_template": None, "dtype": "auto",
             "adapter": None}


def make_run(root: Path, *, samples: list[str], verdicts: list[str], finished: bool = True) -> Path:
    """A run directory as the runner writes it: run.json with a real identity, raw log lines."""
    d = root / "run"
    d.mkdir(parents=True)
    spec = RunSpec(model="org/m", benchmarks=("demo",), judge="strmatch")
    meta = {"identity": identity(spec, MODEL_KEY, "fp0", "strmatch@v1"), "spec": spec.to_json(),
            "model": {"name": "m", **MODEL_KEY}, "method": {"name": "none", "fingerprint": "fp0"},
            "judge": {"name": "strmatch", "version": "v1"}, "command": "harness run --model org/m"}
    (d / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    (d / "samples.jsonl").write_text("".join(samples), encoding="utf-8")
    (d / "verdicts.jsonl").write_text("".join(verdicts), encoding="utf-8")
    if finished:
        (d / "results.json").write_text(json.dumps({"benchmarks": {}}), encoding="utf-8")
    return d


def lines(rows: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) + "\n" for r in rows]


def doctor(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    code = main(["doctor", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_healthy_run_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_run(tmp_path, samples=lines(sample_rows("demo", ["a", "b"], "comply")),
                 verdicts=lines(verdict_rows("demo", ["full_compliance", "full_refusal"])))
    code, [report] = doctor([str(tmp_path)], capsys)
    assert (code, report["path"], report["healthy"]) == (0, str(d), True)
    assert not [f for f in report["findings"] if f["problem"]]


def test_damaged_and_duplicate_lines_reported_then_fixed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = lines(sample_rows("demo", ["a", "b", "c"], "comply"))
    no_completion = json.dumps({"benchmark": "demo", "id": "demo-9", "prompt": "x"}) + "\n"
    dup = good[0]  # the same record twice: harmless, the first is kept
    samples = [good[0], "{not json\n", good[1], no_completion, dup, good[2], '{"benchmark": "demo", "id": "cut']
    verdicts = lines(verdict_rows("demo", ["full_compliance", "full_refusal", "full_refusal"]))
    d = make_run(tmp_path, samples=samples, verdicts=verdicts)

    code, [report] = doctor([str(d)], capsys)
    found = {f["where"]: f["message"] for f in report["findings"] if f["problem"]}
    s = d / "samples.jsonl"
    assert code == 1 and set(found) == {f"{s}:2", f"{s}:4", f"{s}:5", f"{s}:7"}
    assert "JSON" in found[f"{s}:2"] and "completion" in found[f"{s}:4"]
    assert "duplicate of line 1" in found[f"{s}:5"] and "cut off" in found[f"{s}:7"]
    assert s.read_text(encoding="utf-8") == "".join(samples)  # checking writes nothing

    code, [report] = doctor([str(d), "--fix"], capsys)
    assert (code, report["healthy"]) == (0, True) and len(report["fixed"]) == 1
    assert s.read_text(encoding="utf-8") == good[0] + good[1] + good[2]  # first record kept, every good one kept
    assert (d / "verdicts.jsonl").read_text(encoding="utf-8") == "".join(verdicts)


def test_two_different_records_for_one_prompt_are_both_removed(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    good = lines(sample_rows("demo", ["a", "b"], "comply"))
    other = json.dumps({**sample_rows("demo", ["a"], "comply")[0], "completion": "second"}) + "\n"
    d = make_run(tmp_path, samples=[good[0], good[1], other], verdicts=[])
    code, [report] = doctor([str(d)], capsys)
    s = d / "samples.jsonl"
    found = {f["where"]: f["message"] for f in report["findings"] if f["problem"]}
    assert code == 1 and set(found) == {f"{s}:1", f"{s}:3"}
    assert "disagrees with line 1" in found[f"{s}:3"] and "both removed" in found[f"{s}:1"]
    code, [report] = doctor([str(d), "--fix"], capsys)
    assert (code, report["healthy"]) == (0, True)
    assert s.read_text(encoding="utf-8") == good[1]  # neither answer for demo/a is trusted


def test_a_record_stamped_by_another_run_is_foreign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = sample_rows("demo", ["a", "b"], "comply")
    d = make_run(tmp_path, samples=[], verdicts=[])
    stamp = json.loads((d / "run.json").read_text(encoding="utf-8"))["identity"][:16]
    (d / "samples.jsonl").write_text(json.dumps({**rows[0], "run": stamp}) + "\n"
                                     + json.dumps({**rows[1], "run": "0123456789abcdef"}) + "\n", encoding="utf-8")
    code, [report] = doctor([str(d)], capsys)
    found = {f["where"]: f["message"] for f in report["findings"] if f["problem"]}
    where = f"{d / 'samples.jsonl'}:2"
    assert code == 1 and list(found) == [where] and "another spec" in found[where]
    assert doctor([str(d), "--fix"], capsys)[0] == 0
    kept = (d / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["id"] for x in kept] == [rows[0]["id"]]


def test_identity_orphans_and_results_are_problems_fix_cannot_hide(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    d = make_run(tmp_path, samples=lines(sample_rows("demo", ["a"], "comply")),
                 verdicts=lines(verdict_rows("demo", ["full_compliance", "full_refusal"])))
    meta = json.loads((d / "run.json").read_text(encoding="utf-8"))
    meta["spec"]["seed"] = 7  # a hand edit: the recorded identity no longer follows from the spec
    (d / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    (d / "results.json").write_text("{", encoding="utf-8")
    verdicts_before = (d / "verdicts.jsonl").read_text(encoding="utf-8")

    code, [report] = doctor([str(d), "--fix"], capsys)
    messages = {f["where"]: f["message"] for f in report["findings"] if f["problem"]}
    assert code == 1 and report["fixed"] == []
    assert "identity does not match" in messages[str(d / "run.json")]
    assert "demo/demo-1" in messages[str(d / "verdicts.jsonl")]
    assert "unreadable" in messages[str(d / "results.json")]
    assert (d / "verdicts.jsonl").read_text(encoding="utf-8") == verdicts_before  # an orphan is not deleted


def test_a_running_run_is_never_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/proc/locks").exists():
        pytest.skip("reads Linux's /proc/locks")
    samples = [*lines(sample_rows("demo", ["a"], "comply")), "garbage\n"]
    d = make_run(tmp_path, samples=samples, verdicts=[], finished=False)
    with RunStore(d).locked():
        code, [report] = doctor([str(d), "--fix"], capsys)
    assert code == 1 and report["fixed"] == []
    assert any("running" in f["message"] for f in report["findings"])
    assert (d / "samples.jsonl").read_text(encoding="utf-8") == "".join(samples)


def test_stopped_run_shows_its_stale_lock_as_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_run(tmp_path, samples=[], verdicts=[], finished=False)
    (d / ".lock").touch()
    code, [report] = doctor([str(d)], capsys)
    assert code == 0
    assert any("stale lock" in f["message"] and not f["problem"] for f in report["findings"])


def use_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache directory of this test's own (the shared one links the session's models)."""
    cache = tmp_path / "own-cache"
    (cache / "models").mkdir(parents=True)
    monkeypatch.setenv("ORBENCH_CACHE_DIR", str(cache))
    return cache


def test_cache_rows_counted_and_garbage_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cache_dir = use_cache_dir(tmp_path, monkeypatch)
    cache = Cache(cache_dir / "cache.sqlite")
    cache.put_many([("k1", {"a": 1}), ("k2", "b")])
    cache.close()
    code, [report] = doctor(["--cache"], capsys)
    assert code == 0 and any("2 row(s)" in f["message"] for f in report["findings"])

    for name in ("cache.sqlite-wal", "cache.sqlite-shm"):
        (cache_dir / name).unlink(missing_ok=True)
    (cache_dir / "cache.sqlite").write_bytes(b"this is not an SQLite database\n" * 200)
    code, [report] = doctor(["--cache", "--fix"], capsys)
    assert code == 1 and any("integrity check failed" in f["message"] for f in report["findings"])
    assert (cache_dir / "cache.sqlite").read_bytes().startswith(b"this is not")  # reported, not deleted


def test_stale_temporary_listed_with_size_then_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cache_dir = use_cache_dir(tmp_path, monkeypatch)
    stale, fresh = cache_dir / "models" / ".tmp-killed", cache_dir / "models" / ".tmp-live"
    for tmp in (stale, fresh):
        tmp.mkdir()
        (tmp / "model.gguf").write_bytes(b"\0" * 2_500_000)
    old = time.time() - 2 * 3600
    for p in (stale / "model.gguf", stale):
        os.utime(p, (old, old))

    code, [report] = doctor(["--cache"], capsys)
    [finding] = [f for f in report["findings"] if f["problem"]]
    assert code == 1 and finding["where"] == str(stale) and "2.5 MB" in finding["message"] and finding["fixable"]

    code, [report] = doctor(["--cache", "--fix"], capsys)
    assert code == 0 and not stale.exists() and fresh.exists() and len(report["fixed"]) == 1


def test_nothing_to_check_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 2
    assert "--cache" in capsys.readouterr().err
