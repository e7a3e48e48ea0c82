"""Fault injection, damaged records: every kind of damage to every run file, then a re-run.

For each case a clean run is damaged one way (cut off, not UTF-8, binary garbage, valid JSON
missing each field, a field of the wrong type, duplicate ids that disagree, records of another
spec, records of prompts the run does not have) and the same command runs again. It must end
either with exactly the clean run's records and results, or with one ``error:`` line that names
the damaged file and what to do, and never with records of two specs side by side.

Real CLI, real tiny model, real files; one clean reference run per module.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orbench_harness.cli import main

Damage = Callable[[Path, Path], None]  # (run dir, a run of another spec) -> None
ARGS = ["--benchmark", "demo", "--limit", "3", "--judge", "strmatch", "--batch-size", "3"]
SAMPLE_FIELDS = ("benchmark", "id", "prompt", "completion")
VERDICT_FIELDS = ("benchmark", "id", "judge", "label")
RUN_FIELDS = ("identity", "spec", "model", "method", "judge")


def _run(model: Path, out: Path, tokens: int = 8) -> int:
    return main(["run", "--model", str(model), *ARGS, "--max-new-tokens", str(tokens), "--out", str(out)])


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _content(out: Path) -> dict[str, Any]:
    """What must match the clean run: each record (less per-run bookkeeping) and the results."""
    def strip(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        keep = [{k: v for k, v in r.items() if k not in ("run", "judge_version")} for r in rows]
        return sorted((f"{r['benchmark']}/{r['id']}", json.dumps(r, sort_keys=True)) for r in keep)

    results = json.loads((out / "results.json").read_text())
    return {"samples": strip(_rows(out / "samples.jsonl")), "verdicts": strip(_rows(out / "verdicts.jsonl")),
            "results": {k: {m: v for m, v in b.items() if m != "timing"} for k, b in results["benchmarks"].items()}}


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A clean run, and a clean run of another spec (4 new tokens instead of 8)."""
    root = tmp_path_factory.mktemp("fault-ref")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORBENCH_CACHE_DIR", str(root / "cache"))
        assert _run(tiny_model_dir, root / "clean") == 0
        assert _run(tiny_model_dir, root / "other", tokens=4) == 0
    return root / "clean", root / "other"


def _edit_line(name: str, n: int, edit: Callable[[dict[str, Any]], Any]) -> Damage:
    def damage(out: Path, _other: Path) -> None:
        path = out / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        lines[n] = json.dumps(edit(json.loads(lines[n]))) + "\n"
        path.write_text("".join(lines), encoding="utf-8")
    return damage


def _without(field: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda rec: {k: v for k, v in rec.items() if k != field}


def _bytes(name: str, edit: Callable[[bytes], bytes]) -> Damage:
    def damage(out: Path, _other: Path) -> None:
        (out / name).write_bytes(edit((out / name).read_bytes()))
    return damage


def _drop_json_field(field: str) -> Callable[[bytes], bytes]:
    return lambda raw: json.dumps(_without(field)(json.loads(raw))).encode()


def _copy_from_other(name: str) -> Damage:
    def damage(out: Path, other: Path) -> None:
        shutil.copyfile(other / name, out / name)
    return damage


def _append_line(name: str, make: Callable[[dict[str, Any]], dict[str, Any]]) -> Damage:
    def damage(out: Path, _other: Path) -> None:
        first = json.loads((out / name).read_text(encoding="utf-8").splitlines()[0])
        with (out / name).open("a", encoding="utf-8") as f:
            f.write(json.dumps(make(first)) + "\n")
    return damage


def _record_file_cases(name: str, fields: tuple[str, ...]) -> dict[str, Damage]:
    cases: dict[str, Damage] = {
        "cut mid-line": _bytes(name, lambda b: b[: len(b) - 17]),
        "emptied": _bytes(name, lambda b: b""),
        "not UTF-8": _bytes(name, lambda b: b.replace(b'"', b'"\xff\xfe', 1)),
        "binary garbage line": _bytes(name, lambda b: b"\x00\x9f\x12garbage\x00\n" + b),
        "a JSON list line": _bytes(name, lambda b: b"[1, 2, 3]\n" + b),
        "the id a number": _edit_line(name, 0, lambda r: {**r, "id": 7}),
        "duplicate id that disagrees": _append_line(name, lambda r: {**r, fields[-1]: "something else"}),
        "a prompt the run does not have": _append_line(name, lambda r: {**r, "id": "not-in-this-run"}),
        "a benchmark the run does not have": _append_line(name, lambda r: {**r, "benchmark": "xstest"}),
        "the file of another spec's run": _copy_from_other(name),
    }
    for f in fields:
        cases[f"without {f}"] = _edit_line(name, 1, _without(f))
    return {f"{name}: {k}": v for k, v in cases.items()}


CASES: dict[str, Damage] = {
    **_record_file_cases("samples.jsonl", SAMPLE_FIELDS),
    **_record_file_cases("verdicts.jsonl", VERDICT_FIELDS),
    "run.json: cut off": _bytes("run.json", lambda b: b[:200]),
    "run.json: not UTF-8": _bytes("run.json", lambda b: b"\xff\xfe" + b),
    "run.json: a JSON list": _bytes("run.json", lambda b: b"[]"),
    "run.json: another spec's": _copy_from_other("run.json"),
    **{f"run.json: without {f}": _bytes("run.json", _drop_json_field(f)) for f in RUN_FIELDS},
    "results.json: cut off": _bytes("results.json", lambda b: b[: len(b) // 2]),
    "results.json: not UTF-8": _bytes("results.json", lambda b: b"\xff" + b),
    "results.json: another spec's": _copy_from_other("results.json"),
    "results.json: without benchmarks": _bytes("results.json", lambda b: b'{"summary": {}}'),
    ".lock: garbage": _bytes(".lock", lambda b: b"\x00garbage"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_run_file_is_recomputed_or_one_line_never_mixed(
        case: str, reference: tuple[Path, Path], tiny_model_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    clean, other = reference
    out = tmp_path / "run"
    shutil.copytree(clean, out)
    (out / ".lock").touch()
    CASES[case](out, other)
    capsys.readouterr()
    code = _run(tiny_model_dir, out)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 0:
        assert _content(out) == _content(clean), err
        assert _run(tiny_model_dir, out) == 0  # and the repaired directory stays repaired
        assert _content(out) == _content(clean)
        return
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2 and len(errors) == 1, err
    flat = " ".join(err.split())
    damaged = case.split(":")[0]
    named = str(out / damaged) in flat or f"{out} holds a different run" in flat
    assert named, f"the error names neither {damaged} nor the run: {flat}"
    assert any(fix in flat for fix in ("--out", "move", "re-run", "delete", "remove")), flat
