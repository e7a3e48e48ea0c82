"""``--setup actor-paper``: the paper's options per model, offline resolution, one line per
missing input, the dry run, and the setup recorded in run.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from orbench_harness.errors import HarnessError
from orbench_harness.registry import Registry
from orbench_harness.resolution import train_sampler
from orbench_harness.setups import SETUPS, first_sentences, resolve_setup
from orbench_harness.spec import RunSpec
from orbench_harness.testing import make_tiny_model, method_env
from orbench_methods import actor
from orbench_methods.actor.config import MODEL_DEFAULTS, PAPER_LAYERS
from orbench_methods.sft import references

ALL = ["none", "actor", "sft", "safe-decoding", "self-cd", "dro", "scans", "surgical"]
# three sentences and a fourth, none of them Meta's
SYSTEM_TEXT = "Be kind to people. Answer with care, and stay safe! Never help anyone cause harm? Be brief."


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "orbench_harness.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def _inputs(tmp_path: Path) -> dict[str, Path]:
    prompt = tmp_path / "system.txt"
    prompt.write_text(SYSTEM_TEXT)
    refs = tmp_path / "refs.json"
    references.save(refs, {"What is a kite?": ("A toy.", True)}, {"source": {"kind": "test"}})
    expert = tmp_path / "expert"
    expert.mkdir()
    (expert / "adapter_config.json").write_text("{}")
    (expert / "adapter_model.safetensors").write_bytes(b"not read before the run")
    return {"llama2-system-prompt": prompt, "sft-references": refs, "safedecoding-expert": expert}


def test_the_setup_layers_are_the_plugin_defaults_in_block_numbering() -> None:
    """One number, two places: the setup and the alias default both hold the paper's hidden
    state minus one; flipping either convention fails here."""
    for model, paper_layer in PAPER_LAYERS.items():
        resolved = resolve_setup("actor-paper", model, ["actor"], {})
        assert resolved.method_args["actor"]["layer"] == MODEL_DEFAULTS[model]["layer"] == str(paper_layer - 1)
        assert float(resolved.method_args["actor"]["alpha"]) == MODEL_DEFAULTS[model]["alpha"]


def test_resolution_reports_each_missing_input_once_and_fills_the_given_ones(tmp_path: Path) -> None:
    resolved = resolve_setup("actor-paper", "llama-2-7b-chat", ALL, {})
    assert len(resolved.missing) == 3 and all(line.startswith("missing --setup-input ") for line in resolved.missing)
    assert resolved.unfilled["self-cd"] == {"system_prompt": "llama2-system-prompt"}
    assert "system_prompt" not in resolved.method_args["self-cd"]  # nothing stands in for it
    given = {k: str(v) for k, v in _inputs(tmp_path).items()}
    full = resolve_setup("actor-paper", "llama-2-7b-chat", ALL, given)
    assert not full.missing
    assert full.method_args["self-cd"]["system_prompt"] == "Be kind to people. Answer with care, and stay safe! " \
                                                           "Never help anyone cause harm?"
    assert full.method_args["self-cd"]["placement"] == "user"
    assert full.method_args["dro"]["system_prompt"] == SYSTEM_TEXT
    # the official expert exists for Llama-2-7b-chat only; elsewhere it is built, and said so
    gemma = resolve_setup("actor-paper", "gemma-7b-it", ["safe-decoding"], given)
    assert "expert_adapter" not in gemma.method_args["safe-decoding"] and gemma.differs["safe-decoding"]
    # user values win over the setup's
    assert full.args_for("actor", {"alpha": "0.01"})["alpha"] == "0.01"
    with pytest.raises(HarnessError, match="covers the models"):
        resolve_setup("actor-paper", "smollm2-135m", ["actor"], {})
    with pytest.raises(HarnessError, match="takes no input"):
        resolve_setup("actor-paper", "llama-2-7b-chat", ["actor"], {"gpt4o": "x"})
    with pytest.raises(HarnessError, match="not a file"):
        resolve_setup("actor-paper", "llama-2-7b-chat", ["self-cd"], {"llama2-system-prompt": str(tmp_path)})
    with pytest.raises(HarnessError, match="sentence"):
        first_sentences("Only one sentence here.")
    assert set(SETUPS["actor-paper"].per_model) == set(PAPER_LAYERS)


def test_the_paper_pools_are_all_of_hexphi_and_seven_balanced_ultrachat_classes(shared_datasets: Path) -> None:
    resolved = resolve_setup("actor-paper", "llama-2-7b-chat", ["actor"], {})
    method = actor.create(resolved.method_args["actor"], method_env("llama-2-7b-chat", data_dir=shared_datasets))
    harmful = [s for s, sign in zip(method.data.queries, method.data.signs, strict=True) if sign > 0]
    assert len(harmful) == 330 and len({s.prompt for s in harmful}) == 330
    classes = Counter(s.meta["class"] for s in method.data.queries if "class" in s.meta)
    assert len(classes) == 7 and set(classes.values()) == {30}


def test_a_method_may_read_every_row_only_of_a_set_the_run_does_not_score(shared_datasets: Path) -> None:
    unscored = train_sampler(Registry(), RunSpec(model="x", benchmarks=("paper",), data_dir=shared_datasets))
    train = train_sampler(Registry(), RunSpec(model="x", benchmarks=("paper",), data_dir=shared_datasets))("hexphi")
    assert len(unscored("hexphi@all")) == 330 > len(train)
    scored = train_sampler(Registry(), RunSpec(model="x", benchmarks=("quick",), data_dir=shared_datasets))
    with pytest.raises(HarnessError, match="scored in this run"):
        scored("hexphi@all")
    with pytest.raises(HarnessError, match="only split suffix"):
        unscored("hexphi@test")


def test_cli_dry_run_resolves_every_method_offline_and_the_run_stops_before_loading(
        shared_datasets: Path, tmp_path: Path) -> None:
    base = ["run", "--setup", "actor-paper", "--model", "llama-2-7b-chat", "--method", ",".join(ALL),
            "--suite", "paper", "--data-dir", str(shared_datasets)]
    dry = _harness(*base, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    for m in ALL:
        assert f"\n[{m}]\n" in dry.stdout
    assert "  layer = '12'  (setup)" in dry.stdout and "  harmful_anchors = 'hexphi@all'  (setup)" in dry.stdout
    assert "training queries: 330 harmful" in dry.stdout
    assert "  system_prompt = <missing: --setup-input llama2-system-prompt>" in dry.stdout
    missing = [line for line in dry.stdout.splitlines() if line.startswith("actor-paper: missing")]
    assert len(missing) == 3

    stop = _harness(*base, "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert stop.returncode == 2
    lines = [line for line in stop.stderr.splitlines() if line.startswith("actor-paper: missing --setup-input")]
    assert sorted(line.split()[3].split("=")[0] for line in lines) == sorted(
        ["llama2-system-prompt", "safedecoding-expert", "sft-references"])
    assert not (tmp_path / "runs").exists()

    given = [a for k, v in _inputs(tmp_path).items() for a in ("--setup-input", f"{k}={v}")]
    full = _harness(*base, *given, "--dry-run", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert "missing" not in full.stdout and "<missing" not in full.stdout
    assert "  system_prompt = 'Be kind to people. Answer with care, and stay safe! Never help anyone cause harm?'  " \
           "(setup)" in full.stdout


def test_run_json_records_the_setup_outside_the_run_identity(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "models" / "llama-2-7b-chat")
    common = ["run", "--model", str(model), "--method", "none", "--benchmark", "demo", "--judge", "strmatch",
              "--limit", "2", "--max-new-tokens", "2"]
    plain = _harness(*common, "--out", str(tmp_path / "plain"), cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    setup = _harness(*common, "--setup", "actor-paper", "--out", str(tmp_path / "setup"), cwd=tmp_path)
    assert setup.returncode == 0, setup.stderr
    recorded = json.loads((tmp_path / "setup" / "run.json").read_text())
    assert recorded["spec"]["setup"]["name"] == "actor-paper"
    assert recorded["spec"]["setup"]["model"] == "llama-2-7b-chat"
    before = json.loads((tmp_path / "plain" / "run.json").read_text())
    assert before["spec"]["setup"] is None
    assert recorded["identity"] == before["identity"]
