"""``--dtype``: every method runs on a bfloat16 model, and the precision is part of the run.

On a GPU the hub models load in bfloat16 (``auto``); this exercises that arithmetic on the
CPU with the tiny model, through the CLI, for the methods that hook, steer or train it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from orbench_harness.backends.hf import HFBackend, auto_dtype
from orbench_harness.cli import main
from orbench_harness.errors import HarnessError
from orbench_harness.models import resolve
from orbench_harness.spec import RunSpec

CHEAP = {
    "none": [],
    "actor": ["--method-arg", "epochs=1", "--method-arg", "layer=1"],
    "sft": ["--method-arg", "epochs=1", "--method-arg", "answer_tokens=4", "--method-arg", "n_harmful=4",
            "--method-arg", "n_benign=4"],
    "scans": [],
    "surgical": [],
    "self-cd": [],
}


def _argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--judge", "strmatch", "--limit", "2", "--max-new-tokens", "4",
            "--out", str(out), *extra]


@pytest.mark.parametrize("method", sorted(CHEAP))
def test_every_method_runs_on_a_bfloat16_model(method: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / method
    assert main(_argv(tiny_model_dir, out, "--dtype", "bfloat16", "--method", method, *CHEAP[method])) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["model"]["dtype"] == "bfloat16" and run["spec"]["dtype"] == "bfloat16"
    results = json.loads((out / "results.json").read_text())
    assert sum(b["n"] for b in results["benchmarks"].values()) > 0


def test_the_precision_is_part_of_the_run(tiny_model_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A run directory made in bfloat16 is not resumed as a float32 run (nor its cache reused)."""
    out = tmp_path / "r"
    assert main(_argv(tiny_model_dir, out, "--dtype", "bfloat16")) == 0
    capsys.readouterr()
    assert main(_argv(tiny_model_dir, out, "--dtype", "float32")) == 2
    assert "holds a different run" in capsys.readouterr().err
    assert main(_argv(tiny_model_dir, tmp_path / "fp32", "--dtype", "float32")) == 0
    a = json.loads((out / "run.json").read_text())["identity"]
    b = json.loads((tmp_path / "fp32" / "run.json").read_text())["identity"]
    assert a != b


def test_an_unknown_dtype_is_refused() -> None:
    with pytest.raises(HarnessError, match="--dtype must be"):
        RunSpec(model="x", dtype="int4")  # type: ignore[arg-type]


def test_a_model_that_overflows_in_float16_is_refused_before_the_run(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real checkpoint whose final-norm weights push the logits past float16's 65504 (as
    Gemma 3's large norm weights do): float16 is refused with the fix named, float32 runs."""
    import torch
    from transformers import AutoModelForCausalLM

    big = tmp_path / "big-norm"
    shutil.copytree(tiny_model_dir, big)
    model = AutoModelForCausalLM.from_pretrained(big)
    with torch.no_grad():
        model.model.norm.weight.fill_(1e6)
    model.save_pretrained(big)
    assert main(_argv(big, tmp_path / "r16", "--dtype", "float16")) == 2
    err = capsys.readouterr().err
    assert "overflows in float16" in err and "--dtype bfloat16" in err
    assert not (tmp_path / "r16" / "results.json").exists()
    assert main(_argv(big, tmp_path / "r32", "--dtype", "float32")) == 0
    # the unmodified model passes the check in float16
    assert main(_argv(tiny_model_dir, tmp_path / "ok16", "--dtype", "float16")) == 0


def test_auto_is_recorded_as_the_precision_actually_loaded(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``auto`` never reaches a cache key or run.json: a CPU run says float32, and the same
    checkpoint on a GPU would say bfloat16, so the two never share cached generations."""
    spec = resolve(str(tiny_model_dir))
    assert spec is not None and spec.dtype == "auto"
    assert HFBackend(device="cpu").concrete(spec).dtype == "float32"
    assert dataclasses.replace(spec, dtype="bfloat16").key != dataclasses.replace(spec, dtype="float32").key
    explicit = dataclasses.replace(spec, dtype="float16")
    assert HFBackend(device="cpu").concrete(explicit) == explicit
    out = tmp_path / "auto"
    assert main(_argv(tiny_model_dir, out)) == 0
    run = json.loads((out / "run.json").read_text())
    here = HFBackend()  # what the CLI uses: CUDA when this machine has it, else the CPU
    loaded = here.concrete(spec).dtype
    assert run["model"]["dtype"] == loaded
    assert run["device"] == here.describe()
    if run["device"]["device"] == "cpu":
        assert loaded == "float32"
    # asking for that precision explicitly names the same model (same key, so the same cache entries)
    again = tmp_path / "explicit"
    assert main(_argv(tiny_model_dir, again, "--dtype", loaded)) == 0
    assert json.loads((again / "run.json").read_text())["model"] == run["model"]


def test_auto_means_float16_on_gpus_without_native_bfloat16() -> None:
    assert auto_dtype("cpu", None) == "float32"
    assert auto_dtype("cuda", (9, 0)) == "bfloat16"  # H100
    assert auto_dtype("cuda:0", (8, 0)) == "bfloat16"  # A100
    assert auto_dtype("cuda:1", (7, 0)) == "float16"  # V100
    assert auto_dtype("cuda", (7, 5)) == "float16"  # T4
    assert auto_dtype("cuda", None) == "bfloat16"  # not askable: assume a current GPU


def test_a_device_that_is_not_here_is_refused_before_any_work(tiny_model_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A GPU index past the last one, a GPU on a CPU-only machine, or a device name the backend
    does not know: one line naming what this machine has, and no run directory filled."""
    import torch

    spec = resolve(str(tiny_model_dir))
    assert spec is not None
    missing = f"cuda:{torch.cuda.device_count()}"
    want = "cuda:0 to" if torch.cuda.is_available() else "torch sees no CUDA device here"
    with pytest.raises(HarnessError, match=want):
        HFBackend(device=missing).concrete(spec)
    with pytest.raises(HarnessError, match="use cpu, cuda or cuda:N"):
        HFBackend(device="gpu").concrete(spec)
    out = tmp_path / "missing"
    assert main([*_argv(tiny_model_dir, out), "--backend-arg", f"device={missing}"]) == 2
    assert want in capsys.readouterr().err and not (out / "samples.jsonl").exists()
