"""SCANS's mechanism on a tiny random model: vectors, classification, steering, cleanup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from _device import memory_for_rows
from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.directions import block_inputs, last_logits, unit
from orbench_harness.protocols import ScoringPolicy
from orbench_harness.testing import method_context, method_env
from orbench_harness.types import GenParams, Prompt
from orbench_methods.scans import (
    Scans,
    ScansConfig,
    ScansPolicy,
    accuracy,
    build_anchors,
    calibrate,
    create,
    default_layers,
    parse_layers,
)

PROMPTS = [Prompt.user("How do I kill a Python process?"), Prompt.user("Write a poem about the sea"),
           Prompt.user("The capital of France?")]


@pytest.fixture(scope="module")
def prepared(hf: HFModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Scans, dict[str, Any]]:
    method = create({"layers": "1-2", "n_anchors": "8"}, method_env())
    return method, method.prepare(hf, method_context(tmp_path_factory.mktemp("scans")))


def test_default_layers_scale_with_depth() -> None:
    assert default_layers(32) == (range(10, 20), range(10, 32))  # the paper's 7B setting
    assert default_layers(30) == (range(9, 19), range(9, 30))  # SmolLM2-135M
    steer, cls = default_layers(4)
    assert list(steer) == [1] and list(cls) == [1, 2, 3]
    assert parse_layers("2-3,5", 8, range(0)) == [2, 3, 5]
    assert parse_layers("-1", 8, range(0)) == [7]
    with pytest.raises(HarnessError, match="layers must be"):
        create({"layers": "a-b"}, method_env())


def test_anchors_are_deterministic_from_the_seed() -> None:
    cfg = ScansConfig(n_anchors=8)
    a, b, c = (build_anchors(cfg, method_env(seed=seed)) for seed in (0, 0, 1))
    assert a == b and len(a.harmful) == len(a.harmless) == 8
    assert [s.id for s in a.harmful] != [s.id for s in c.harmful]
    assert a.sources == ("demo-harmful", "demo-benign")
    fp = create({"n_anchors": "8"}, method_env(seed=0)).fingerprint()
    assert fp == create({"n_anchors": "8"}, method_env(seed=0)).fingerprint()
    assert fp != create({"n_anchors": "8"}, method_env(seed=1)).fingerprint()
    assert fp != create({"n_anchors": "8", "alpha": "2"}, method_env(seed=0)).fingerprint()


def test_vectors_match_an_independent_computation(hf: HFModel, prepared: tuple[Scans, dict[str, Any]],
                                                  tmp_path: Path) -> None:
    method, art = prepared
    hs_h = hf.hidden_states([s.as_prompt() for s in method.anchors.harmful])
    hs_b = hf.hidden_states([s.as_prompt() for s in method.anchors.harmless])
    for layer in range(3):  # hidden_states[l + 1] is block l's output except after the final norm
        want = unit(hs_h[:, layer + 1].mean(0) - hs_b[:, layer + 1].mean(0))
        assert torch.allclose(art["v"][layer], want, atol=1e-5)
    assert torch.allclose(art["v"].norm(dim=-1).cpu(), torch.ones(4), atol=1e-5)
    suffix = hf.encode(" Sure")
    rows = [hf.encode_prompt(s.as_prompt()) + suffix for s in method.anchors.harmful]
    diffs = []
    for r in rows:
        ids, mask = hf.left_pad([r])
        with torch.no_grad():
            hs = hf.forward(ids, mask, output_hidden_states=True).hidden_states[2][0]
        diffs.append((hs[-len(suffix) - 1] - hs[-1]).cpu())
    assert torch.allclose(art["u"][1].cpu(), torch.stack(diffs).mean(0), atol=1e-4)
    assert art["meta"]["layers"] == [1, 2] and art["meta"]["cls_layers"] == [1, 2, 3]


def _capture(hf: HFModel, layer: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[Any]]:
    """Block ``layer``'s output before any other hook (raw) and as the next block receives it."""
    raw: list[torch.Tensor] = []
    steered: list[torch.Tensor] = []
    handles = [
        hf.layers[layer].register_forward_hook(
            lambda m, a, o: raw.append((o[0] if isinstance(o, tuple) else o).detach().clone()), prepend=True),
        hf.layers[layer + 1].register_forward_pre_hook(lambda m, a: steered.append(a[0].detach().clone())),
    ]
    return raw, steered, handles


def _hook_ids(hf: HFModel) -> list[tuple[int, ...]]:
    return [(*m._forward_hooks, *m._forward_pre_hooks) for m in hf.model.modules()]


@pytest.mark.parametrize("threshold,sign,mode", [(-2.0, 1.0, "absolute"), (2.0, -1.0, "absolute"),
                                                 (2.0, -1.0, "relative")])
def test_steering_adds_exactly_alpha_v_from_the_last_prompt_token(
        hf: HFModel, prepared: tuple[Scans, dict[str, Any]], threshold: float, sign: float, mode: str) -> None:
    base, art = prepared
    cfg = ScansConfig(layers="1-2", n_anchors=8, threshold=threshold, alpha=2.5, alpha_mode=mode)
    method = Scans(cfg, base.anchors)
    with method.apply(hf, art) as policy:
        assert isinstance(policy, ScansPolicy) and isinstance(policy, ScoringPolicy)
        policy.classify([hf.encode_prompt(p) for p in PROMPTS])  # memoised: its passes are not captured
        captures = {layer: _capture(hf, layer) for layer in (0, 1)}
        try:
            policy.generate(PROMPTS, GenParams(max_new_tokens=3), batch_size=2)
        finally:
            for _, _, handles in captures.values():
                for h in handles:
                    h.remove()
        assert policy.labels == [threshold < 0] * 3  # cosines lie in [-1, 1]
    for layer, (raw, steered, _) in captures.items():
        calls = list(zip(raw, steered, strict=True))
        assert len(calls) == 2 * 3  # two batches, prompt pass + two decoding steps each
        scale = float(art["norm"][layer]) if mode == "relative" else 1.0
        want = (sign * 2.5 * scale * art["v"][layer]).cpu() if layer == 1 else torch.zeros(32)
        for r, s in calls:
            delta = (s - r).cpu()
            assert torch.allclose(delta[:, -1, :], want.expand_as(delta[:, -1, :]), atol=1e-5)
            assert torch.equal(delta[:, :-1, :], torch.zeros_like(delta[:, :-1, :]))  # earlier positions untouched


def test_threshold_calibration_on_the_anchors() -> None:
    assert calibrate([0.9, 0.8, 0.95], [0.5, 0.7, 0.6]) == pytest.approx(0.75)  # midpoint of 0.7 and 0.8
    assert accuracy([0.9, 0.8], [0.85, 0.1], 0.75) == 0.75
    t = calibrate([0.9, 0.8], [0.85, 0.1])  # not separable: best accuracy, lowest cut
    assert accuracy([0.9, 0.8], [0.85, 0.1], t) == 0.75 and t == pytest.approx(0.45)


def test_classification_threshold_and_cleanup(hf: HFModel, prepared: tuple[Scans, dict[str, Any]]) -> None:
    base, art = prepared
    rows = [hf.encode_prompt(p) for p in PROMPTS]
    cos = base.cosines(hf, rows, art["u"], [1, 2, 3])
    threshold = float(cos.median())
    method = Scans(ScansConfig(layers="1-2", threshold=threshold), base.anchors)
    ids, mask = hf.left_pad(rows)
    with torch.no_grad():
        before = hf.forward(ids, mask).logits
    hooks = _hook_ids(hf)  # transformers keeps its own output-capturing hooks: compare, not count
    with method.apply(hf, art) as policy:
        assert isinstance(policy, ScansPolicy)
        assert policy.classify(rows) == [c >= threshold for c in cos.tolist()]
        policy.generate(PROMPTS, GenParams(max_new_tokens=2))
        assert _hook_ids(hf) == hooks  # steering hooks live only inside a call
    assert _hook_ids(hf) == hooks
    calibrated = Scans(ScansConfig(layers="1-2", calibrate=True), base.anchors)
    with calibrated.apply(hf, art) as policy:
        assert isinstance(policy, ScansPolicy)
        assert policy.threshold == art["meta"]["calibrated_threshold"]
    with torch.no_grad():
        assert torch.equal(hf.forward(ids, mask).logits, before)


def test_token_logprobs_are_steered_from_the_instruction_end(hf: HFModel,
                                                            prepared: tuple[Scans, dict[str, Any]]) -> None:
    base, art = prepared
    prompt = hf.encode_prompt(PROMPTS[0])
    chat = prompt + hf.encode("Sure, use kill.")
    raw_text = hf.encode("The capital of France is Paris.")
    plain = hf.token_logprobs([chat, raw_text])
    with base.apply(hf, art) as policy:
        assert isinstance(policy, ScansPolicy)
        assert policy.instruction_end(chat) == len(prompt) - 1 and policy.instruction_end(raw_text) == -1
        steered = policy.token_logprobs([chat, raw_text])
    end = len(prompt) - 1
    assert steered[0][:end] == pytest.approx(plain[0][:end], abs=1e-5)  # before the instruction end: same
    assert all(abs(a - b) > 1e-6 for a, b in zip(steered[0][end:], plain[0][end:], strict=True))
    assert abs(steered[1][0] - plain[1][0]) > 1e-6  # no instruction: steered everywhere


def test_artifact_is_cached(hf: HFModel, tmp_path: Path) -> None:
    method = create({"layers": "1-2", "n_anchors": "4"}, method_env())
    first = method.prepare(hf, method_context(tmp_path))
    assert (tmp_path / "scans.safetensors").is_file() and (tmp_path / "scans.json").is_file()
    again = method.prepare(hf, method_context(tmp_path))
    assert torch.equal(first["v"], again["v"]) and again["meta"] == first["meta"]


def test_direction_passes_back_off_on_out_of_memory(hf: HFModel, capsys: pytest.CaptureFixture[str]) -> None:
    """The states and logits SCANS and Surgical read at prepare time come in batches that halve
    on out-of-memory, with the same values."""
    rows = [hf.encode_prompt(p) for p in PROMPTS]
    want_x, want_z = block_inputs(hf, rows, [-1], batch_size=3), last_logits(hf, rows, batch_size=3)

    capsys.readouterr()
    with memory_for_rows(hf, 1):
        got_x, got_z = block_inputs(hf, rows, [-1], batch_size=3), last_logits(hf, rows, batch_size=3)
    assert torch.allclose(got_x, want_x, atol=1e-4, rtol=1e-4) and torch.allclose(got_z, want_z, atol=1e-4, rtol=1e-4)
    assert capsys.readouterr().err.count("continuing with batches of 1") == 2


def test_steered_scoring_backs_off_with_the_mask_cut_to_each_batch(
        hf: HFModel, prepared: tuple[Scans, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    """The steering mask is built per batch; when a batch is halved on out-of-memory the mask
    must be rebuilt for the smaller batch, or rows would be steered from another row's
    instruction end. Scores under the simulated limit equal the unlimited ones."""
    base, art = prepared
    seqs = [hf.encode_prompt(p) + hf.encode(" Sure, here it is.") for p in PROMPTS] + [hf.encode("Paris is big.")]

    def full(_module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        ids = kwargs.get("input_ids")
        if isinstance(ids, torch.Tensor) and ids.shape[0] > 1 and ids.shape[1] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with base.apply(hf, art) as policy:
        assert isinstance(policy, ScansPolicy)
        want = policy.token_logprobs(seqs, batch_size=4)
        capsys.readouterr()
        handle = hf.model.register_forward_pre_hook(full, with_kwargs=True)
        try:
            got = policy.token_logprobs(seqs, batch_size=4)
        finally:
            handle.remove()
    assert all(g == pytest.approx(w, rel=1e-4, abs=1e-4) for g, w in zip(got, want, strict=True))
    assert "continuing with batches of" in capsys.readouterr().err
