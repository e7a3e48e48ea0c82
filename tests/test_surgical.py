"""Surgical's mechanism on a tiny random model: candidates, selection, ablation, weight edit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from orbench_harness.backends.hf import HFModel
from orbench_harness.methodkit.directions import eoi_length, kl_divergence, refusal_scores, refusal_token_ids
from orbench_harness.testing import method_context, method_env
from orbench_harness.types import Capability, GenParams, Prompt
from orbench_methods.surgical import Candidate, Surgical, SurgicalConfig, build_data, create, orthogonalize, select

PROMPTS = [Prompt.user("How do I kill a Python process?"), Prompt.user("Write a poem about the sea")]
LOOSE = {"kl_threshold": "1e9", "full_table": "true"}  # a random model's KL says nothing; bound tested below


@pytest.fixture(scope="module")
def prepared(hf: HFModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Surgical, dict[str, Any]]:
    method = create(LOOSE, method_env())
    return method, method.prepare(hf, method_context(tmp_path_factory.mktemp("surgical")))


def _block_inputs_during(hf: HFModel, fn: Any) -> list[torch.Tensor]:
    """Every block input seen while ``fn`` runs (pre-hooks registered last see ablated inputs)."""
    seen: list[torch.Tensor] = []
    handles = [blk.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().float().cpu()))
               for blk in hf.layers]
    try:
        fn()
    finally:
        for h in handles:
            h.remove()
    return seen


def test_post_instruction_tokens_come_from_the_template(hf: HFModel) -> None:
    k = eoi_length(hf)
    ids = hf.encode_prompt(Prompt.user("hello there"))
    assert hf.tokenizer.decode(ids[-k:]) == "<|im_end|>\n<|im_start|>assistant\n"


def test_refusal_score_kl_and_orthogonalisation() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    assert refusal_scores(logits, [0]).tolist() == pytest.approx([0.0, math.log(0.1 / 0.9)], abs=1e-6)
    assert refusal_scores(logits, [0, 1]).tolist()[1] == pytest.approx(math.log(0.2 / 0.8), abs=1e-6)
    assert kl_divergence(logits, logits) == pytest.approx(0.0, abs=1e-9)
    assert kl_divergence(logits[:1], logits[1:]) > 0
    f, r = torch.randn(3, 2, 8), torch.randn(3, 2, 8)
    out = orthogonalize(f, r, 1.0)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3, 2), atol=1e-5)
    assert (out * r).sum(-1).abs().max() < 1e-5
    assert torch.allclose(orthogonalize(f, r, 0.0), f / f.norm(dim=-1, keepdim=True), atol=1e-6)


def test_refusal_tokens_are_first_tokens_of_the_phrases(hf: HFModel) -> None:
    ids = refusal_token_ids(hf, ["Sorry", "Sorry, no", "I cannot"])
    assert len(ids) == 2  # the two "Sorry" phrases share their first token
    assert hf.tokenizer.decode(ids[:1]) and "Sorry".startswith(hf.tokenizer.decode(ids[:1]))
    assert "I cannot".startswith(hf.tokenizer.decode(ids[1:]))


def test_selection_applies_the_kl_bound_and_the_layer_pruning() -> None:
    cands = [Candidate(0, -1, -3.0, 0.5), Candidate(1, -1, -2.0, 0.1), Candidate(3, -1, -9.0, 0.0, pruned=True),
             Candidate(2, -2, math.nan, 0.0), Candidate(2, -1, -1.0, 0.2)]
    assert select(cands, 0.2) == cands[1]  # -3.0 exceeds the KL bound, -9.0 is pruned, nan is skipped
    assert select(cands, 1.0) == cands[0]
    assert select(cands, 0.05) is None


def test_prepare_prunes_the_last_fifth_and_respects_the_bound(hf: HFModel, prepared: tuple[Surgical, Any],
                                                              tmp_path: Path) -> None:
    _, art = prepared
    meta = art["meta"]
    cands = [Candidate(**c) for c in meta["candidates"]]
    k = eoi_length(hf)
    assert len(cands) == 4 * k and meta["eoi_tokens"] == k
    assert all(c.pruned == (c.layer >= 3) for c in cands)  # int(4 * 0.8) = 3
    best = min((c for c in cands if not c.pruned), key=lambda c: c.score)
    assert (meta["layer"], meta["position"]) == (best.layer, best.position)
    assert torch.allclose(art["direction"].norm(), torch.tensor(1.0), atol=1e-5)
    assert all(math.isfinite(c.kl) for c in cands if not c.pruned)  # full table
    threshold = sorted(c.kl for c in cands if not c.pruned)[len(cands) // 3]
    lazy = create({"kl_threshold": str(threshold)}, method_env()).prepare(hf, method_context(tmp_path / "lazy"))
    want = select(cands, threshold)
    assert want is not None and want.kl <= threshold
    assert (lazy["meta"]["layer"], lazy["meta"]["position"], lazy["meta"]["kl"]) == (want.layer, want.position, want.kl)
    checked = [c for c in (Candidate(**c) for c in lazy["meta"]["candidates"]) if math.isfinite(c.kl)]
    assert len(checked) < sum(not c.pruned for c in cands)  # the lazy search stopped early
    assert all(c.score <= want.score for c in checked)  # and only looked at better-scoring ones


@pytest.mark.parametrize("mode", ["hooks", "weights"])
def test_ablated_direction_has_zero_projection_in_every_block_input(hf: HFModel, prepared: tuple[Surgical, Any],
                                                                    mode: str) -> None:
    base, art = prepared
    d = art["direction"]
    method = Surgical(SurgicalConfig(mode=mode, kl_threshold=1e9), base.data)
    plain = _block_inputs_during(hf, lambda: hf.generate(PROMPTS, GenParams(max_new_tokens=3)))
    assert max(float((x @ d).abs().max()) for x in plain) > 1e-2  # the direction is there before
    with method.apply(hf, art) as policy:
        seen = _block_inputs_during(hf, lambda: policy.generate(PROMPTS, GenParams(max_new_tokens=3)))
    assert len(seen) == len(plain) and len(seen) >= 4 * 3  # every block, prompt pass and decoding steps
    for x in seen:  # all positions, generated ones included
        assert float((x @ d).abs().max()) < 1e-4 * max(1.0, float(x.norm(dim=-1).max()))


def test_hooks_and_weights_give_the_same_logits_and_everything_is_restored(
        hf: HFModel, prepared: tuple[Surgical, Any]) -> None:
    base, art = prepared
    ids, mask = hf.left_pad([hf.encode_prompt(p) for p in PROMPTS])
    state = {k: v.clone() for k, v in hf.model.state_dict().items()}
    hooks = [(*m._forward_hooks, *m._forward_pre_hooks) for m in hf.model.modules()]
    with torch.no_grad():
        plain = hf.forward(ids, mask).logits
    out = {}
    for mode in ("hooks", "weights"):
        method = Surgical(SurgicalConfig(mode=mode, kl_threshold=1e9), base.data)
        assert method.requires == frozenset({Capability.HOOKS if mode == "hooks" else Capability.WEIGHTS})
        with method.apply(hf, art), torch.no_grad():
            out[mode] = hf.forward(ids, mask).logits
        assert [(*m._forward_hooks, *m._forward_pre_hooks) for m in hf.model.modules()] == hooks
        assert all(torch.equal(v, state[k]) for k, v in hf.model.state_dict().items())
        assert hf.model.lm_head.weight is hf.model.model.embed_tokens.weight  # tying restored
    assert torch.allclose(out["hooks"], out["weights"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out["hooks"], plain, atol=1e-3)
    with torch.no_grad():
        assert torch.equal(hf.forward(ids, mask).logits, plain)


def test_weights_mode_prepares_without_hooks_and_picks_the_same_direction(
        hf: HFModel, prepared: tuple[Surgical, Any], tmp_path: Path) -> None:
    _, art = prepared
    calls: list[int] = []
    originals = HFModel.hooks

    def spy(self: HFModel, *a: Any, **kw: Any) -> Any:
        calls.append(1)
        return originals(self, *a, **kw)

    HFModel.hooks = spy  # type: ignore[method-assign]
    try:
        weights = create({**LOOSE, "mode": "weights"}, method_env()).prepare(hf, method_context(tmp_path))
    finally:
        HFModel.hooks = originals  # type: ignore[method-assign]
    assert calls == []
    assert (weights["meta"]["layer"], weights["meta"]["position"]) == (art["meta"]["layer"], art["meta"]["position"])
    assert torch.allclose(weights["direction"], art["direction"], atol=1e-5)


def test_data_splits_are_seeded_and_disjoint(shared_datasets: Path) -> None:
    demo = build_data(SurgicalConfig(), method_env())
    assert {g: (len(demo.train[g]), len(demo.val[g])) for g in demo.train} == {
        "harmful": (16, 4), "pseudo": (16, 4), "harmless": (16, 4)}
    assert build_data(SurgicalConfig(), method_env()) == demo
    assert build_data(SurgicalConfig(seed=2), method_env()) != demo
    assert create({}, method_env()).fingerprint() != create({"seed": "2"}, method_env()).fingerprint()
    paper = build_data(SurgicalConfig(), method_env(data_dir=shared_datasets))
    assert (len(paper.train["pseudo"]), len(paper.val["pseudo"])) == (20, 5)  # OR-Bench-Hard's 25 train prompts
    assert (len(paper.train["harmless"]), len(paper.val["harmless"])) == (128, 32)
    for g in paper.train:
        assert not {s.id for s in paper.train[g]} & {s.id for s in paper.val[g]}
    assert paper.sources["harmful"] == ("harmful-train",)
