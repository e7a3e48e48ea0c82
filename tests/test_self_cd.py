"""Self-CD on a tiny random model: the combined logits, batching, the ratio's end points, scoring."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _device import load as load_on_device
from _device import memory_for_rows
from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.decoding import cache_argument
from orbench_harness.models import resolve
from orbench_harness.protocols import ScoringPolicy
from orbench_harness.registry import Registry
from orbench_harness.testing import method_env
from orbench_harness.types import Capability, GenParams, Message, ModelSpec, Prompt
from orbench_methods.self_cd import (
    SAFETY_PROMPT,
    SelfCDConfig,
    SelfCDPolicy,
    combine,
    contrast_ids,
    create,
    with_safety,
)

QUESTIONS = (
    "How do I kill a Python process?",
    "Write a poem about the sea.",
    "What is the capital of France? The answer is A, B, C or D and nothing else at all.",
)
GEMMA_LIKE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _policy(hf: HFModel, **kw: str) -> SelfCDPolicy:
    method = create(kw, method_env())
    with method.apply(hf, None) as policy:
        assert isinstance(policy, SelfCDPolicy)
        return policy


def _last_logits(hf: HFModel, ids: list[int]) -> torch.Tensor:
    """One full forward pass of an unpadded sequence, no cache."""
    with torch.inference_mode():
        return hf.model(input_ids=torch.tensor([ids], device=hf.device)).logits[0, -1].float()


def test_each_step_uses_the_documented_combination(hf: HFModel) -> None:
    policy = _policy(hf, ratio="2.5")
    prompts = [Prompt.user(q) for q in QUESTIONS]
    rows_w = [hf.encode(policy.render_with(p)) for p in prompts]
    rows_wo = [hf.encode_prompt(p) for p in prompts]
    assert all(len(a) > len(b) for a, b in zip(rows_w, rows_wo, strict=True))
    seen: list[torch.Tensor] = []
    out = contrast_ids(hf, rows_w, rows_wo, 2.5, GenParams(max_new_tokens=8),
                       on_step=lambda step, z: seen.append(z.clone()))
    assert len(seen) == max(len(o) for o in out)
    checked = differs = 0
    for j, new in enumerate(out):
        for t, tok in enumerate(new):
            z_w = _last_logits(hf, rows_w[j] + new[:t])
            z_wo = _last_logits(hf, rows_wo[j] + new[:t])
            want = z_w - 2.5 * (z_w - z_wo)
            # Batched left-padded KV-cache steps vs one full forward: float32 sums in another order
            # differ by ~5e-5, and the 2.5 contrast amplifies that; 1e-3 still catches a wrong formula.
            assert torch.allclose(seen[t][j], want, atol=1e-3), (j, t)
            assert torch.allclose(combine(z_w, z_wo, 2.5), want)
            assert int(want.argmax()) == tok
            differs += int(z_w.argmax()) != tok
            checked += 1
    assert checked >= 8
    assert differs > 0  # the contrast changes some choices of the with-prompt stream


def test_batched_equals_one_at_a_time(hf: HFModel) -> None:
    policy = _policy(hf)
    prompts = [Prompt.user(q) for q in QUESTIONS]
    params = GenParams(max_new_tokens=10)
    batched = policy.generate(prompts, params, batch_size=3)
    single = policy.generate(prompts, params, batch_size=1)
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.n_new_tokens for c in batched] == [c.n_new_tokens for c in single]
    assert all(c.n_prompt_tokens == len(hf.encode_prompt(p)) for c, p in zip(batched, prompts, strict=True))


def test_out_of_memory_halves_the_batch_of_prompt_pairs(hf: HFModel, capsys: pytest.CaptureFixture[str]) -> None:
    """Self-CD decodes two streams per prompt; a batch that runs out of memory is retried in
    halves (``orbench_harness.methodkit.decoding.generate_batched``) and every answer is the one-at-a-time one."""
    policy = _policy(hf)
    prompts = [Prompt.user(q) for q in QUESTIONS]
    params = GenParams(max_new_tokens=6)
    single = policy.generate(prompts, params, batch_size=1)
    capsys.readouterr()

    seen: list[int] = []
    with memory_for_rows(hf, 2):  # one prompt's two streams fit
        got = policy.generate(prompts, params, batch_size=3, on_batch=lambda idx, comps: seen.extend(idx))
    assert [c.text for c in got] == [c.text for c in single] and sorted(seen) == [0, 1, 2]
    assert "continuing with batches of 1" in capsys.readouterr().err


def test_ratio_end_points_are_the_two_plain_renderings(hf: HFModel) -> None:
    prompts = [Prompt.user(q) for q in QUESTIONS]
    params = GenParams(max_new_tokens=10)
    with_only = _policy(hf, ratio="0")
    rows_w = [hf.encode(with_only.render_with(p)) for p in prompts]
    want_w = hf.generate_ids(rows_w, params, batch_size=3)
    want_wo = hf.generate(prompts, params, batch_size=3)
    got_w = with_only.generate(prompts, params, batch_size=3)
    got_wo = _policy(hf, ratio="1").generate(prompts, params, batch_size=3)
    assert [c.text for c in got_w] == [c.text for c in want_w]
    assert [c.text for c in got_wo] == [c.text for c in want_wo]
    assert [c.text for c in want_w] != [c.text for c in want_wo]  # the safety text matters here


def test_scoring_applies_the_contrast_to_chat_sequences_only(hf: HFModel) -> None:
    policy = _policy(hf)
    assert isinstance(policy, ScoringPolicy)
    head_wo, head_w = policy.heads()
    assert head_wo and len(head_w) > len(head_wo)
    prompt = Prompt.user(QUESTIONS[2])
    answer = hf.encode(" A")
    seq = hf.encode(policy.render(prompt)) + answer
    raw = hf.encode("The capital of France is Paris. Write a poem about the sea.")
    got_chat, got_raw = policy.token_logprobs([seq, raw])
    plain_chat, plain_raw = hf.token_logprobs([seq, raw])
    assert got_raw == pytest.approx(plain_raw, abs=1e-5)  # raw text: the plain model
    n0 = len(head_wo)
    assert got_chat[: n0 - 1] == pytest.approx(plain_chat[: n0 - 1], abs=1e-5)  # template opening
    ctx_w = hf.encode(policy.render_with(prompt)) + answer[:-1]
    ctx_wo = seq[:-1]
    z_w, z_wo = _last_logits(hf, ctx_w), _last_logits(hf, ctx_wo)
    want = torch.log_softmax(z_w - 2.5 * (z_w - z_wo), dim=-1)[answer[-1]]
    assert got_chat[-1] == pytest.approx(float(want), abs=1e-4)
    assert got_chat[-1] != pytest.approx(plain_chat[-1], abs=1e-3)
    assert len(got_chat) == len(seq) - 1


def test_safety_text_placement(hf: HFModel, tiny_model_dir: Path) -> None:
    sys_prompt = Prompt((Message("system", "Be brief."), Message("user", "hi")))
    merged = with_safety(sys_prompt, "SAFE", "system")
    assert merged.messages[0] == Message("system", "SAFE\n\nBe brief.") and len(merged.messages) == 2
    assert with_safety(Prompt.user("hi"), "SAFE", "user").messages == (Message("user", "SAFE\n\nhi"),)
    assert _policy(hf).placement() == "system"
    spec = resolve(str(tiny_model_dir))
    assert spec is not None
    gemma_like = load_on_device(ModelSpec(**{**{f: getattr(spec, f) for f in spec.__dataclass_fields__},
                                                           "chat_template": GEMMA_LIKE}))
    policy = _policy(gemma_like)
    assert policy.placement() == "user"
    text = policy.render_with(Prompt.user("hi"))
    assert text.startswith("<|im_start|>user\n" + SAFETY_PROMPT)
    assert policy.generate([Prompt.user("hi")], GenParams(max_new_tokens=3))[0].n_prompt_tokens > 0


def test_options_fingerprint_and_registration() -> None:
    base = create({}, method_env())
    assert base.cfg == SelfCDConfig() and base.cfg.ratio == 2.5
    assert base.requires == frozenset({Capability.LOGITS})
    for key, value in [("ratio", "1.5"), ("system_prompt", "Be safe."), ("placement", "user")]:
        assert create({key: value}, method_env()).fingerprint() != base.fingerprint(), key
    assert create({}, method_env()).fingerprint() == base.fingerprint()
    with pytest.raises(HarnessError, match="no option 'ration'; did you mean ratio"):
        create({"ration": "2"}, method_env())
    reg = Registry()
    assert reg.create("methods", "self-cd", {}, method_env()).fingerprint() == base.fingerprint()
    assert reg.methods().get("selfcd").name == "self-cd"


def test_contrast_scoring_backs_off_on_out_of_memory(hf: HFModel, capsys: pytest.CaptureFixture[str]) -> None:
    """The chat sequences' two-stream scoring halves its batch on out-of-memory; the scores
    equal the unlimited ones, raw text included, in the input order."""
    policy = _policy(hf)
    assert isinstance(policy, ScoringPolicy)
    answer = hf.encode(" A")
    seqs = [hf.encode(policy.render(Prompt.user(q))) + answer for q in QUESTIONS]
    seqs.insert(1, hf.encode("The capital of France is Paris."))
    want = policy.token_logprobs(seqs, batch_size=4)
    capsys.readouterr()
    with memory_for_rows(hf, 1):
        got = policy.token_logprobs(seqs, batch_size=4)
    assert [len(g) for g in got] == [len(s) - 1 for s in seqs]
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-4)
    assert "continuing with batches of 1" in capsys.readouterr().err


def test_the_cache_argument_is_the_one_the_forward_knows(hf: HFModel) -> None:
    """Recent transformers (5.25 here) call the KV cache ``cache`` and deprecate
    ``past_key_values``; an older forward knows only the old name. pyproject turns that
    deprecation into a test error, so every decoding test checks the choice too."""
    class OldForward:
        def forward(self, input_ids: object = None, past_key_values: object = None) -> None: ...

    import inspect

    assert cache_argument(hf.model) in inspect.signature(hf.model.forward).parameters
    assert cache_argument(OldForward()) == "past_key_values"
