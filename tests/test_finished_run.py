"""A finished run is recognised from its directory and the spec alone: the re-run says so and
imports neither torch nor transformers; anything that makes the directory not (or not
certainly) this finished run goes through the full runner instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orbench_harness.cli import main
from orbench_harness.finished import RUN_FINISHED, finished_results
from orbench_harness.registry import Registry
from orbench_harness.resolution import train_sampler
from orbench_harness.spec import RunSpec

HEAVY = ("torch", "transformers", "datasets", "sentence_transformers")


def _argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--benchmark", "demo", "--limit", "2", "--judge", "strmatch",
            "--max-new-tokens", "4", "--out", str(out), *extra]


def _spec(model: Path, **kw: object) -> RunSpec:
    """The spec ``_argv`` gives, with ``kw`` changed."""
    base: dict[str, object] = {"benchmarks": ("demo",), "limit": 2, "judge": "strmatch", "max_new_tokens": 4}
    return RunSpec(model=str(model), **{**base, **kw})  # type: ignore[arg-type]


def _done(spec: RunSpec, out: Path) -> dict[str, object] | None:
    """``finished_results`` as ``runner.run`` asks it."""
    reg = Registry()
    return finished_results(spec, out, reg, train_sampler(reg, spec))


def _imported(stderr: str) -> set[str]:
    """Top-level module names in ``-X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_a_rerun_of_a_finished_run_imports_nothing_heavy_and_says_so(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(_argv(tiny_model_dir, out)) == 0
    first = json.loads((out / "results.json").read_text())
    samples = (out / "samples.jsonl").read_bytes()
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "orbench_harness.cli",
                          *_argv(tiny_model_dir, out)], capture_output=True, text=True, env=dict(os.environ),
                         check=False, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert RUN_FINISHED in res.stderr
    loaded = _imported(res.stderr)
    assert "orbench_harness" in loaded  # the parse saw the import lines at all
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    again = json.loads((out / "results.json").read_text())
    assert again["benchmarks"] == first["benchmarks"] and again["summary"] == first["summary"]
    assert again["timing"]["model_loaded"] is False
    assert (out / "samples.jsonl").read_bytes() == samples


def test_only_the_same_untouched_finished_run_is_recognised(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(_argv(tiny_model_dir, out)) == 0
    assert _done(_spec(tiny_model_dir), out) is not None
    # batch size is not part of a run's identity; generation length is
    assert _done(_spec(tiny_model_dir, batch_size=3), out) is not None
    assert _done(_spec(tiny_model_dir, max_new_tokens=5), out) is None
    assert _done(_spec(tiny_model_dir, judge="keywords"), out) is None
    assert _done(_spec(tiny_model_dir, method="actor"), out) is None
    # a record appended after results.json (a resumed run stopped half-way): not finished
    samples = out / "samples.jsonl"
    os.utime(out / "results.json", ns=(1, 1))
    assert _done(_spec(tiny_model_dir), out) is None
    (out / "results.json").touch()
    assert _done(_spec(tiny_model_dir), out) is not None
    # an unparsed verdict is asked again by a re-run, so such a run is not finished
    res = json.loads((out / "results.json").read_text())
    name = next(iter(res["benchmarks"]))
    res["benchmarks"][name]["unparsed"] = 1
    (out / "results.json").write_text(json.dumps(res))
    assert _done(_spec(tiny_model_dir), out) is None
    # a damaged run.json: the runner's own check reports it
    (out / "results.json").write_text(json.dumps({**res, "benchmarks": {
        **res["benchmarks"], name: {**res["benchmarks"][name], "unparsed": 0}}}))
    assert _done(_spec(tiny_model_dir), out) is not None
    run_json = out / "run.json"
    run_json.write_bytes(run_json.read_bytes()[:100])
    (out / "results.json").touch()
    assert _done(_spec(tiny_model_dir), out) is None
    assert samples.exists()


def test_data_that_changed_since_the_run_is_not_a_finished_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(_argv(tiny_model_dir, out)) == 0
    run_json = out / "run.json"
    meta = json.loads(run_json.read_text())
    files = [f for b in meta["benchmarks"].values() for f in b["files"]]
    assert files and all(Path(f["path"]).is_file() for f in files)  # the run pinned its data
    # the pinned file's bytes no longer match what the run read (as after an edit of the file)
    files[0]["sha256"] = "0" * 64
    run_json.write_text(json.dumps(meta))
    (out / "results.json").touch()
    assert _done(_spec(tiny_model_dir), out) is None


def test_a_method_that_fingerprints_its_training_data_is_recognised_too(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SCANS hashes its train prompts when built: the check builds it with the run's own train access."""
    out = tmp_path / "scans"
    args = ["--method", "scans", "--method-arg", "layers=1-2", "--method-arg", "n_anchors=8"]
    assert main(_argv(tiny_model_dir, out, *args)) == 0
    spec = _spec(tiny_model_dir, method="scans", method_args={"layers": "1-2", "n_anchors": "8"})
    assert _done(spec, out) is not None
    assert _done(_spec(tiny_model_dir, method="scans", method_args={"layers": "1-2", "n_anchors": "4"}), out) is None
