"""The transformers backend on a tiny random model: batching, templates, log-probs, hooks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _device import load as load_on_device
from _device import memory_for_rows
from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.models import resolve
from orbench_harness.types import GenParams, Prompt

PROMPTS = [
    Prompt.user("How do I kill a Python process?"),
    Prompt.user("hi"),
    Prompt.user("Write a poem about the sea and the stars"),
    Prompt.user("What is the capital of France?", system="Be brief."),
    Prompt.user("Sure"),
]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> HFModel:
    spec = resolve(str(tiny_model_dir))
    assert spec is not None
    return load_on_device(spec)


def test_batched_generation_equals_one_at_a_time(model: HFModel) -> None:
    params = GenParams(max_new_tokens=12)
    batched = model.generate(PROMPTS, params, batch_size=3)
    single = [model.generate([p], params, batch_size=1)[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.n_new_tokens <= 12 for c in batched)


def test_on_batch_reports_input_positions_in_length_order(model: HFModel) -> None:
    seen: list[list[int]] = []
    out = model.generate(PROMPTS, GenParams(max_new_tokens=4), batch_size=2,
                         on_batch=lambda idx, comps: seen.append(idx))
    assert sorted(i for b in seen for i in b) == list(range(len(PROMPTS)))
    lengths = [len(model.encode_prompt(PROMPTS[i])) for b in seen for i in b]
    assert lengths == sorted(lengths, reverse=True)  # longest first
    assert len(out) == len(PROMPTS)


def test_out_of_memory_halves_the_batch_and_keeps_every_row(
        model: HFModel, capsys: pytest.CaptureFixture[str]) -> None:
    params = GenParams(max_new_tokens=8)
    expected = model.generate(PROMPTS, params, batch_size=4)
    seen: list[list[int]] = []
    with memory_for_rows(model, 1):
        got = model.generate(PROMPTS, params, batch_size=4, on_batch=lambda idx, comps: seen.append(idx))
    assert [c.text for c in got] == [c.text for c in expected]
    # 4 failed, then 2 failed, then batches of 1 for the rest: each prompt reported once
    assert [len(b) for b in seen] == [1] * len(PROMPTS)
    err = capsys.readouterr().err
    assert err.count("out of memory") == 2 and "continuing with batches of 1" in err


def test_out_of_memory_on_one_prompt_is_a_one_line_error(model: HFModel) -> None:
    with memory_for_rows(model, 0), \
            pytest.raises(HarnessError, match=r"out of memory .* for one prompt of .*lower --max-new-tokens"):
        model.generate(PROMPTS[:2], GenParams(max_new_tokens=8), batch_size=2)


def test_other_runtime_errors_are_not_taken_for_out_of_memory(model: HFModel) -> None:
    def broken(_module: torch.nn.Module, args: tuple[object, ...]) -> None:
        raise RuntimeError("shape mismatch")

    handle = model.model.register_forward_pre_hook(broken)
    try:
        with pytest.raises(RuntimeError, match="shape mismatch"):
            model.generate(PROMPTS[:2], GenParams(max_new_tokens=4), batch_size=2)
    finally:
        handle.remove()


def test_chat_template_is_applied(model: HFModel) -> None:
    text = model.render(Prompt.user("hello", system="sys"))
    assert text == "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_model_without_chat_template_is_an_error(tiny_model_no_template: Path) -> None:
    spec = resolve(str(tiny_model_no_template))
    assert spec is not None
    with pytest.raises(HarnessError, match="no chat template"):
        load_on_device(spec)


def test_token_logprobs_match_a_manual_forward_pass(model: HFModel) -> None:
    seqs = [model.encode("hello world and the sea"), model.encode("Paris")]
    got = model.token_logprobs(seqs)
    for seq, lp in zip(seqs, got, strict=True):
        ids = torch.tensor([seq], device=model.device)
        with torch.no_grad():
            logits = model.model(input_ids=ids).logits[0]
        want = torch.log_softmax(logits[:-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        assert lp == pytest.approx(want.tolist(), abs=1e-4)


def test_long_prompts_are_truncated_and_flagged(model: HFModel) -> None:
    long = Prompt.user("word " * 2000)
    comp = model.generate([long], GenParams(max_new_tokens=4))[0]
    assert comp.truncated_prompt
    assert comp.n_prompt_tokens == model.max_length - 4


def test_hooks_change_outputs_and_are_removed(model: HFModel) -> None:
    name = model.layer_name(1)
    base = model.hidden_states(PROMPTS[:2])

    def zero(module, inputs, output):  # type: ignore[no-untyped-def]
        hs = output[0] if isinstance(output, tuple) else output
        return (hs * 0, *output[1:]) if isinstance(output, tuple) else hs * 0

    with model.hooks(forward=[(name, zero)]):
        hooked = model.hidden_states(PROMPTS[:2])
    # transformers captures hidden_states[i + 1] with its own hook, which runs before ours on
    # the same block; the zeroed residual shows in the next block's output (no biases).
    assert torch.count_nonzero(hooked[:, 3]) == 0
    assert not torch.equal(hooked, base)
    assert torch.allclose(model.hidden_states(PROMPTS[:2]), base)  # removed on exit


def test_hooks_removed_when_the_body_raises_or_a_name_is_unknown(model: HFModel) -> None:
    name = model.layer_name(0)
    block = model.layers[0]
    before = len(block._forward_hooks)  # transformers installs hooks of its own
    with pytest.raises(RuntimeError), model.hooks(forward=[(name, lambda *a: None)]):
        assert len(block._forward_hooks) == before + 1
        raise RuntimeError("boom")
    assert len(block._forward_hooks) == before
    with pytest.raises(HarnessError, match="not found"), model.hooks(
        forward=[(name, lambda *a: None), ("model.nope", lambda *a: None)]
    ):
        pass
    assert len(block._forward_hooks) == before


def test_hidden_states_shape(model: HFModel) -> None:
    hs = model.hidden_states(PROMPTS)
    assert hs.shape == (len(PROMPTS), model.model.config.num_hidden_layers + 1, 32)


def test_hidden_states_do_not_depend_on_batch_padding(model: HFModel) -> None:
    together = model.hidden_states(PROMPTS, batch_size=len(PROMPTS))
    alone = torch.cat([model.hidden_states([p]) for p in PROMPTS])
    assert torch.allclose(together, alone, atol=1e-4, rtol=1e-4)  # float32 rounding, CPU or CUDA


def test_scoring_and_reading_states_back_off_on_out_of_memory(
        model: HFModel, capsys: pytest.CaptureFixture[str]) -> None:
    """Log-probabilities (MMLU, perplexity, the decoding methods) and hidden states (ACTOR's
    layer choice) halve their batch on out-of-memory like generation, with the same numbers."""
    seqs = [model.encode_prompt(p) for p in PROMPTS]
    want_lp, want_hs = model.token_logprobs(seqs, batch_size=4), model.hidden_states(PROMPTS, batch_size=4)
    capsys.readouterr()
    with memory_for_rows(model, 1):
        got_lp, got_hs = model.token_logprobs(seqs, batch_size=4), model.hidden_states(PROMPTS, batch_size=4)
    assert [len(x) for x in got_lp] == [len(s) - 1 for s in seqs]
    assert all(g == pytest.approx(w, rel=1e-4, abs=1e-4) for g, w in zip(got_lp, want_lp, strict=True))
    assert torch.allclose(got_hs, want_hs, atol=1e-4, rtol=1e-4)
    err = capsys.readouterr().err
    assert "scoring 4 sequences of up to" in err and "reading the states of 4 sequences" in err
    with memory_for_rows(model, 0), \
            pytest.raises(HarnessError, match=r"out of memory on \S+ scoring one sequence of \d+ tokens"):
        model.token_logprobs(seqs[:1])
