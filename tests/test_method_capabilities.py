"""Every built-in method is listed, and a method asking for what a backend lacks fails before
any work, naming a backend that has it (issue 7). The vllm backend is lazy, so this runs
without vllm installed; nothing is loaded or generated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orbench_harness.cli import main
from orbench_harness.errors import CapabilityError
from orbench_harness.registry import Registry
from orbench_harness.resolution import resolve
from orbench_harness.runner import run
from orbench_harness.spec import RunSpec

SEVEN = ("actor", "sft", "safe-decoding", "self-cd", "dro", "scans", "surgical")


def test_list_methods_shows_all_seven_and_none(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "methods", "--json"]) == 0
    listed = {m["name"] for m in json.loads(capsys.readouterr().out)}
    assert {"none", *SEVEN} <= listed


@pytest.mark.parametrize("method", ["scans", "surgical", "self-cd", "safe-decoding", "dro", "sft", "actor"])
def test_method_needing_hf_is_refused_on_vllm_before_any_work(method: str, tmp_path: Path) -> None:
    spec = RunSpec(model="smollm2-135m", method=method, backend="vllm", benchmarks=("demo",), judge="strmatch")
    out = tmp_path / "run"
    with pytest.raises(CapabilityError) as err:
        run(spec, out, registry=Registry())
    assert "--backend hf" in str(err.value) and repr(method) in str(err.value)
    assert not (out / "samples.jsonl").exists()  # nothing generated


def test_weight_mode_surgical_passes_the_check_on_vllm() -> None:
    """Surgical's weight orthogonalisation needs weights only: the check lets it through."""
    spec = RunSpec(model="smollm2-135m", method="surgical", backend="vllm", benchmarks=("demo",),
                   method_args={"mode": "weights"}, judge="strmatch")
    resolved = resolve(spec, Registry())
    assert resolved.method.requires <= resolved.backend.capabilities


def test_run_with_several_methods_prints_one_leaderboard(tiny_model_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``--method none,self-cd``: one resumable run per method under OUT/<method>, then the
    markdown leaderboard with a row for each; per-method options reach only their method."""
    out = tmp_path / "main"
    argv = ["run", "--model", str(tiny_model_dir), "--method", "none,self-cd", "--benchmark", "demo",
            "--limit", "2", "--max-new-tokens", "4", "--judge", "strmatch", "--method-arg", "self-cd:ratio=1.5",
            "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    board = text[text.index("| "):]
    assert "none" in board and "self-cd" in board
    runs = {m: json.loads((out / m / "run.json").read_text()) for m in ("none", "self-cd")}
    assert runs["none"]["spec"]["method_args"] == {}
    assert runs["self-cd"]["spec"]["method_args"] == {"ratio": "1.5"}


def test_run_with_a_misspelt_second_method_fails_before_the_first_runs(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", str(tiny_model_dir), "--method", "none,actr", "--out", str(tmp_path / "m")])
    assert code != 0 and "unknown method 'actr'; did you mean actor?" in capsys.readouterr().err
    assert not (tmp_path / "m" / "none").exists()
