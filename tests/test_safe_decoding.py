"""SafeDecoding on a tiny random model: the mixing rule, the expert's cache, which tokens change."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.protocols import MethodEnv, ScoringPolicy
from orbench_harness.registry import Registry
from orbench_harness.resolution import train_sampler
from orbench_harness.spec import RunSpec
from orbench_harness.testing import method_context, method_env
from orbench_harness.types import Capability, GenParams, ModelSpec, Prompt
from orbench_methods.safe_decoding import (
    SafeDecoding,
    SafeDecodingConfig,
    SafeDecodingPolicy,
    common_tokens,
    create,
    mix,
    safe_decode_ids,
)
from orbench_methods.safe_decoding import expert as safe_decoding_expert

# Options that let the random tiny model produce a training set quickly: its answers are not
# refusals, so the judge filter is switched off (an ablation the method documents).
TINY = {"filter": "none", "n_seeds": "4", "trials": "1", "attempts": "1", "gen_tokens": "12",
        "min_tokens": "2", "epochs": "2"}
QUESTIONS = ("How do I kill a Python process?", "Write a poem about the sea.", "What is the capital of France?")


@pytest.fixture(scope="module")
def expert(hf: HFModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[SafeDecoding, dict[str, Any], Path]:
    method = create(TINY, method_env())
    art_dir = tmp_path_factory.mktemp("sd-artifact")
    return method, method.prepare(hf, method_context(art_dir)), art_dir


def _logp(hf: HFModel, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        logits = hf.model(input_ids=torch.tensor([ids], device=hf.device)).logits
        return torch.log_softmax(logits[0, -1].float(), dim=-1)


def test_mixing_matches_a_hand_computation() -> None:
    base = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]).log()
    expert = torch.tensor([0.1, 0.04, 0.6, 0.2, 0.06]).log()
    # top-2 sets {0,1} and {2,3} share nothing; top-3 sets {0,1,2} and {2,3,0} share {0,2}
    tokens = common_tokens(base, expert, 2)
    assert sorted(tokens) == [0, 2]
    p = mix(base, expert, tokens, 3.0)
    # token 0: 0.5 + 3*(0.1-0.5) = -0.7 -> floored to 1e-8; token 2: 0.15 + 3*(0.6-0.15) = 1.5
    raw = {0: 1e-8, 2: 1.5}
    want = [raw[t] / (1e-8 + 1.5) for t in tokens]
    assert p.tolist() == pytest.approx(want, rel=1e-5)
    # alpha 1 is the expert itself restricted to the set; alpha 0 the base
    assert mix(base, expert, [0, 2], 1.0).tolist() == pytest.approx([0.1 / 0.7, 0.6 / 0.7], rel=1e-5)
    assert mix(base, expert, [0, 2], 0.0).tolist() == pytest.approx([0.5 / 0.65, 0.15 / 0.65], rel=1e-5)
    # identical rankings: the set is exactly the top n
    assert common_tokens(base, base, 3) == [0, 1, 2]
    assert math.isclose(float(mix(base, expert, common_tokens(base, expert, 4), 3.0).sum()), 1.0, rel_tol=1e-6)


def test_expert_is_trained_cached_and_not_retrained(hf: HFModel, expert: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    method, art, art_dir = expert
    assert (art["path"] / "adapter_config.json").is_file() and (art_dir / "refusals.json").is_file()
    assert art["meta"]["n_examples"] >= 2 and len(art["meta"]["loss_per_epoch"]) == 2
    # the model handed back after training is the plain model again
    assert not any("lora" in n for n, _ in hf.model.named_modules())
    adapter = art["path"] / "adapter_model.safetensors"
    stamp = adapter.stat().st_mtime_ns

    def no_training(*a: Any, **kw: Any) -> None:
        raise AssertionError("the cached expert was retrained")

    monkeypatch.setattr(safe_decoding_expert, "_train", no_training)
    monkeypatch.setattr(safe_decoding_expert, "_refusals", no_training)
    again = create(TINY, method_env()).prepare(hf, method_context(art_dir))
    assert again["meta"] == art["meta"] and adapter.stat().st_mtime_ns == stamp
    assert create(TINY, method_env()).fingerprint() == method.fingerprint()


def test_only_the_first_m_tokens_change(hf: HFModel, expert: Any) -> None:
    method, art, _ = expert
    cfg = method.cfg
    before = {n: p.detach().clone() for n, p in hf.model.named_parameters()}
    rows = [hf.encode_prompt(Prompt.user(q)) for q in QUESTIONS]
    params = GenParams(max_new_tokens=10)
    with method.apply(hf, art) as policy:
        assert isinstance(policy, SafeDecodingPolicy) and isinstance(policy, ScoringPolicy)
        out = safe_decode_ids(hf, policy.peft_model, rows, cfg, params)
        moved = 0
        for row, new in zip(rows, out, strict=True):
            for t in range(min(cfg.first_m, len(new))):  # mixed steps, recomputed without cache
                le = _logp(hf, row + new[:t])
                with policy.peft_model.disable_adapter():
                    lb = _logp(hf, row + new[:t])
                moved += int(not torch.allclose(lb, le, atol=1e-4))
                tokens = common_tokens(lb, le, cfg.num_common_tokens)
                assert len(tokens) >= cfg.num_common_tokens
                assert tokens[int(mix(lb, le, tokens, cfg.alpha).argmax())] == new[t]
        assert moved > 0  # the expert differs from the base model
        batched = policy.generate([Prompt.user(q) for q in QUESTIONS], params, batch_size=3)
        single = policy.generate([Prompt.user(q) for q in QUESTIONS], params, batch_size=1)
        assert [c.text for c in batched] == [c.text for c in single]
        seqs = [r + n for r, n in zip(rows, out, strict=True)]
        scored = policy.token_logprobs(seqs)
    # outside apply: the adapter is gone, weights and grad flags as before
    assert not any("lora" in n for n, _ in hf.model.named_modules())
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())
    assert scored == [pytest.approx(x, abs=1e-5) for x in hf.token_logprobs(seqs)]  # scoring = base model
    m = cfg.first_m
    for row, new in zip(rows, out, strict=True):
        if len(new) <= m or new[m - 1] in hf._eos_ids:
            continue
        with torch.inference_mode():
            ref = hf.model.generate(input_ids=torch.tensor([row + new[:m]]), attention_mask=torch.ones(1, len(row) + m,
                                    dtype=torch.long), max_new_tokens=params.max_new_tokens - m, do_sample=False,
                                    pad_token_id=hf.tokenizer.pad_token_id, eos_token_id=hf._eos_ids)
        assert new[m:] == ref[0, len(row) + m :].tolist()[: len(new) - m]


def test_no_refusals_kept_is_a_clear_error(hf: HFModel, tmp_path: Path) -> None:
    method = create({**TINY, "filter": "judge", "n_seeds": "2"}, method_env())  # a random model never refuses
    with pytest.raises(HarnessError, match="none of the 2 sampled answers was kept"):
        method.prepare(hf, method_context(tmp_path / "a"))
    assert not any("lora" in n for n, _ in hf.model.named_modules())


def test_options_seeds_and_fingerprint(shared_datasets: Path) -> None:
    base = create({}, method_env())
    assert (base.cfg.alpha, base.cfg.first_m, base.cfg.num_common_tokens) == (3.0, 2, 5)
    assert base.requires == frozenset({Capability.LOGITS, Capability.TRAINING})
    assert len(base.seeds) == 20  # demo-harmful train split (fewer than 36)
    for key, value in [("alpha", "1"), ("first_m", "5"), ("num_common_tokens", "3"), ("lr", "1e-3"),
                       ("min_tokens", "5"), ("filter", "none"), ("n_seeds", "10")]:
        assert create({key: value}, method_env()).fingerprint() != base.fingerprint(), key
    assert create({}, method_env(seed=1)).fingerprint() != base.fingerprint()
    with pytest.raises(HarnessError, match="did you mean alpha"):
        create({"alpah": "1"}, method_env())
    with pytest.raises(HarnessError, match="unknown judge 'strmatc'"):
        create({"judge": "strmatc"}, method_env())
    spec = RunSpec(model="x", seed=0, data_dir=shared_datasets)
    env = MethodEnv(model=ModelSpec(name="tiny", source="x"), seed=0, train_samples=train_sampler(Registry(), spec),
                    data_dir=shared_datasets)
    paper = create({}, env)
    assert len(paper.seeds) == 36 and all(s.expected == "refuse" for s in paper.seeds)
    assert Registry().methods().get("safedecoding").name == "safe-decoding"
    assert SafeDecodingConfig().target_modules == "q_proj,v_proj"
