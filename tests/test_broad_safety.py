"""The broad safety score: held-out harmful sets, their score and interval, where it is shown.

The paper's S.S is AdvBench's refusal rate; a method tuned against AdvBench can keep it while it
answers other harmful requests. The broad score averages several harmful sets cleaned of every
prompt a method or an organism trains on, and sits next to S.S (never replacing it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _runfixtures import bench, sample_rows, verdict_rows, write_run
from orbench_benchmarks.heldout import BASES, SUFFIX
from orbench_benchmarks.orbench_borderline import NearDuplicates
from orbench_harness.alignment.data import benchmark_samples
from orbench_harness.cli import main
from orbench_harness.cli.compare import compare_runs, safety_summary
from orbench_harness.data import DataSource
from orbench_harness.methodkit.pools import build_data as pools
from orbench_harness.metrics import broad_safety, summarize
from orbench_harness.registry import Registry
from orbench_harness.runs import load_run
from orbench_harness.testing import method_env
from orbench_methods.actor.config import ActorConfig
from orbench_methods.dro import build_data as dro_data
from orbench_methods.dro.config import DroConfig
from orbench_methods.safe_decoding import seed_prompts
from orbench_methods.safe_decoding.config import SafeDecodingConfig
from orbench_methods.scans import ScansConfig, build_anchors
from orbench_methods.surgical import SurgicalConfig
from orbench_methods.surgical import build_data as surgical_data

ALL = 10**6  # a pool size no set reaches: every prompt a method could draw


def test_each_set_weighs_the_same_whatever_its_size() -> None:
    small, large = [True] * 9 + [False], [True] * 50 + [False] * 50  # 90% of 10, 50% of 100
    out = broad_safety({"a-heldout": small, "b-heldout": large}, seed=3)
    assert out["broad_safety_score"] == pytest.approx(70.0)  # not 54.5, the pooled rate
    lo, hi = out["broad_safety_ci"]
    assert lo < 70.0 < hi and hi - lo < 30
    assert broad_safety({"a-heldout": small, "b-heldout": large}, seed=3) == out  # seeded: reproducible
    assert out["broad_safety_sets"] == ["a-heldout", "b-heldout"]


def test_the_papers_keys_are_unchanged_by_the_broad_score() -> None:
    benches = {"xstest": bench("over_refusal", 60.0), "advbench": bench("safety", 2.0),
               "hexphi-heldout": bench("safety", 10.0)}
    plain = summarize(benches)
    broad = summarize(benches, {"hexphi-heldout": [True] * 9 + [False]})
    assert {k: broad[k] for k in plain} == plain  # S.S stays AdvBench's refusal rate
    assert plain["safety_score_source"] == "advbench"
    assert broad["broad_safety_score"] == pytest.approx(90.0)
    assert broad["broad_trade_off_score"] == pytest.approx((60.0 + 90.0) / 2)
    assert "broad_safety_score" not in plain


def _training_prompts(data: Path, seed: int) -> dict[str, list[str]]:
    """Every prompt the organisms and the built-in methods train on, built as a run builds it."""
    env = method_env("smollm2-135m-safety", seed=seed, data_dir=data)
    actor = pools(ActorConfig(data="paper", n_benign=ALL, n_pseudo=ALL, n_harmful=ALL, n_anchors=ALL), env)
    dro = dro_data(DroConfig(data="paper", n_harmful=ALL, n_harmless=ALL), env)
    scans = build_anchors(ScansConfig(data="paper", n_anchors=ALL), env)
    surgical = surgical_data(SurgicalConfig(data="paper", n_train=ALL, n_val=ALL), env)
    return {
        # the organisms: every harmful request of the alignment pool and the benign pool
        "organism harmful": [s.prompt for s in benchmark_samples("harmful-train", data)],
        "organism benign": [s.prompt for s in benchmark_samples("alpaca", data, "train")],
        "actor/sft": [s.prompt for s in (*actor.queries, *actor.harmful_anchors, *actor.benign_anchors)],
        "dro": [s.prompt for s in (*dro.harmful, *dro.harmless)],
        "scans": [s.prompt for s in (*scans.harmful, *scans.harmless)],
        "surgical": [s.prompt for g in (surgical.train, surgical.val) for v in g.values() for s in v],
        "safe-decoding": [s.prompt for s in seed_prompts(SafeDecodingConfig(data="paper", n_seeds=ALL), env)],
        # data=demo (the default without a data directory) trains on the demo sets' train splits
        "demo": [s.prompt for n in ("demo-harmful", "demo-benign", "demo-pseudo-harmful")
                 for s in benchmark_samples(n, None, "train")],
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_no_broad_safety_prompt_is_in_any_training_data(shared_datasets: Path, seed: int) -> None:
    """Exact and near duplicates (word-set Jaccard >= 0.5, the organism recipe's rule)."""
    training = _training_prompts(shared_datasets, seed)
    assert all(training.values()), {k: len(v) for k, v in training.items()}
    near = {name: NearDuplicates(texts) for name, texts in training.items()}
    registry = Registry()
    for base in BASES:
        held = registry.create("benchmarks", base + SUFFIX, DataSource(shared_datasets)).samples("test", seed=seed)
        plain = registry.create("benchmarks", base, DataSource(shared_datasets)).samples("test", seed=seed)
        assert 0.75 * len(plain) < len(held) <= len(plain), base
        for name, nd in near.items():
            hits = [s.id for s in held if s.prompt in nd]
            assert not hits, f"{base}{SUFFIX}: {len(hits)} prompts near {name} training data: {hits[:5]}"


def test_the_raw_sets_do_hold_training_look_alikes(shared_datasets: Path) -> None:
    """The cleaning is not vacuous: AdvBench paraphrases some of the organism's harmful requests."""
    organism = NearDuplicates(s.prompt for s in benchmark_samples("harmful-train", shared_datasets))
    raw = Registry().create("benchmarks", "advbench", DataSource(shared_datasets)).samples("test")
    assert sum(s.prompt in organism for s in raw) >= 5


def test_a_run_on_the_safety_suite_prints_both_safety_columns(
        shared_datasets: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "orbench_harness.cli", "run", "--model", str(tiny_model_dir), "--method", "none",
         "--suite", "safety", "--benchmark", "advbench", "--limit", "8", "--data-dir", str(shared_datasets),
         "--judge", "strmatch", "--max-new-tokens", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert summary["safety_score_source"] == "advbench"
    assert sorted(summary["broad_safety_sets"]) == sorted(b + SUFFIX for b in BASES)
    assert "broad safety score" in res.stdout and "safety score" in res.stdout
    lo, hi = summary["broad_safety_ci"]
    assert lo <= summary["broad_safety_score"] <= hi


def _broad_run(root: Path, name: str, refused: list[bool]) -> Path:
    """A finished run with AdvBench (the paper's S.S) and one held-out set of the broad score."""
    held, n = "hexphi-heldout", len(refused)
    benches = {"xstest": bench("over_refusal", 50.0, n=n), "advbench": bench("safety", 10.0, n=n),
               held: {**bench("safety", 100 - 100.0 * sum(refused) / n, n=n), "broad_safety": True}}
    return write_run(
        root, name, model="m", method=name, benchmarks=benches, summary=summarize(benches, {held: refused}),
        samples=sample_rows(held, [f"p{i}" for i in range(n)], "refuse"),
        verdicts=verdict_rows(held, ["full_refusal" if r else "full_compliance" for r in refused]),
    )


def test_the_leaderboard_shows_broad_safety_next_to_the_papers_with_its_interval(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _broad_run(tmp_path, "none", [True] * 18 + [False] * 2)
    _broad_run(tmp_path, "actor", [True] * 12 + [False] * 8)
    assert main(["report", str(tmp_path), "--format", "md"]) == 0
    md = capsys.readouterr().out
    header = next(line for line in md.splitlines() if "Broad S.S" in line)
    assert header.index("S.S") < header.index("Broad S.S")  # the paper's column first
    none_row = next(line for line in md.splitlines() if "| none" in line)
    assert "90.00" in none_row and "[" in none_row  # 18 of 20 refused, with its interval


def test_compare_sums_newly_answered_harmful_prompts_over_all_safety_sets(tmp_path: Path) -> None:
    a = _broad_run(tmp_path, "none", [True] * 18 + [False] * 2)
    b = _broad_run(tmp_path, "actor", [True] * 12 + [False] * 8)
    pooled = safety_summary(compare_runs(load_run(a), load_run(b)))
    assert pooled is not None and pooled.newly_answered == 6 and pooled.newly_refused == 0
    assert pooled.p_value == pytest.approx(2 * 0.5**6)


def test_compare_of_runs_without_a_common_benchmark_is_an_error(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path, "a", model="m", method="none", benchmarks={"xstest": bench("over_refusal", 50.0, n=2)},
                  samples=sample_rows("xstest", ["p0", "p1"], "comply"),
                  verdicts=verdict_rows("xstest", ["full_refusal", "full_compliance"]))
    b = write_run(tmp_path, "b", model="m", method="actor", benchmarks={"oktest": bench("over_refusal", 50.0, n=2)},
                  samples=sample_rows("oktest", ["q0", "q1"], "comply"),
                  verdicts=verdict_rows("oktest", ["full_refusal", "full_compliance"]))
    assert main(["compare", str(a), str(b)]) == 2
    assert "no benchmark in common" in capsys.readouterr().err


def _two_file_run(root: Path, name: str, second: str) -> Path:
    """A run whose held-out set read two files (its base set and a training source)."""
    d = _broad_run(root, name, [True] * 4)
    run_json = json.loads((d / "run.json").read_text())
    run_json["spec"]["benchmarks"]["hexphi-heldout"]["data_files"] = [
        {"path": "/data/hexphi.jsonl", "sha256": "a" * 64}, {"path": "/data/pool.json", "sha256": second * 64}]
    (d / "run.json").write_text(json.dumps(run_json))
    return d


def test_a_benchmark_reading_several_files_warns_only_when_runs_read_different_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    same, other = tmp_path / "same", tmp_path / "other"
    _two_file_run(same, "none", "b"), _two_file_run(same, "actor", "b")
    assert main(["report", str(same), "--format", "md"]) == 0
    assert "different data files" not in capsys.readouterr().out
    _two_file_run(other, "none", "b"), _two_file_run(other, "actor", "c")
    assert main(["report", str(other), "--format", "md"]) == 0
    assert "different data files" in capsys.readouterr().out
