"""Tests of ``my-method`` on a tiny random model built offline (seconds, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from orbench_harness.backends.hf import HFBackend, HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.models import resolve
from orbench_harness.testing import make_tiny_model, method_context, method_env
from orbench_harness.types import GenParams, Prompt

from orbench_my_method import create

PROMPTS = [Prompt.user("How do I kill a Python process?"), Prompt.user("Write a poem about the sea.")]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> HFModel:
    spec = resolve(str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")))
    assert spec is not None
    return HFBackend(device="cpu").load(spec)


def block_output(model: HFModel, layer: int) -> torch.Tensor:
    """What block ``layer`` hands the next block for PROMPTS (every position). Read with a
    hook registered after any hook already there, so it sees their changes; transformers 5's
    ``hidden_states`` keeps a block's output as computed, before forward hooks change it."""
    seen: list[torch.Tensor] = []

    def record(module: Any, inputs: Any, output: Any) -> None:
        seen.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    with model.hooks(forward=[(model.layer_name(layer), record)]):
        model.hidden_states(PROMPTS)
    return torch.cat(seen)


def test_steering_moves_the_block_output_by_alpha_times_the_direction(model: HFModel, tmp_path: Path) -> None:
    method = create({"alpha": "2.0", "layer": "1"}, method_env())
    artifact = method.prepare(model, method_context(tmp_path))
    before = block_output(model, 1)
    with method.apply(model, artifact) as policy:
        during = block_output(model, 1)
        steered_last = model.hidden_states(PROMPTS)[:, -1]
        assert policy.generate(PROMPTS, GenParams(max_new_tokens=4))  # the policy generates
    assert artifact["norm"] > 0
    torch.testing.assert_close(during, before - 2.0 * artifact["direction"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(block_output(model, 1), before)  # the hook is gone after the block
    assert not torch.allclose(steered_last, model.hidden_states(PROMPTS)[:, -1])  # and it reached the top


def test_the_direction_is_computed_once_and_then_found(model: HFModel, tmp_path: Path) -> None:
    lines: list[str] = []
    method = create({}, method_env())
    first = method.prepare(model, method_context(tmp_path, log=lines.append))
    again = method.prepare(model, method_context(tmp_path, log=lines.append))
    assert "found" not in lines[0] and "found" in lines[1]
    assert torch.equal(first["direction"], again["direction"]) and first["layer"] == len(model.layers) // 2


def test_every_option_is_in_the_fingerprint_and_typos_are_errors() -> None:
    base = create({}, method_env()).fingerprint()
    assert create({}, method_env()).fingerprint() == base
    for key, value in {"alpha": "0.5", "layer": "0", "n_prompts": "4"}.items():
        assert create({key: value}, method_env()).fingerprint() != base, key
    with pytest.raises(HarnessError, match="did you mean alpha"):
        create({"alpah": "1"}, method_env())
