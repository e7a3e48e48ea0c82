"""The ACTOR paper's models, offline: tiny random-weight Llama-2 (32 blocks) and Gemma (28
blocks) built from their transformers configs, with the real Llama-2 SentencePiece vocabulary,
run through every method's ``prepare`` and ``apply``.

What only these architectures can show, and the CPU organism cannot: that the layer an alias
default names is the block that trains or is hooked (with the paper's layer numbering), that
hooks land on modules each architecture really has, and where the Llama-2 prompt's
end-of-instruction tokens, " Sure" and the refusal tokens fall once tokenised in context.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from _device import load as load_on_device
from orbench_harness.backends.chat import supports_system
from orbench_harness.backends.hf import HFModel
from orbench_harness.methodkit.directions import eoi_length, refusal_token_ids
from orbench_harness.models import resolve
from orbench_harness.testing import method_context, method_env
from orbench_harness.types import GenParams, Prompt
from orbench_methods import actor, dro, none, safe_decoding, scans, self_cd, sft, surgical
from orbench_methods.actor.config import MODEL_DEFAULTS, PAPER_LAYERS, paper_layer_to_block

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
LLAMA_VOCAB = "ggml-vocab-llama-spm.gguf"

# Llama-2-chat's prompt format as Meta's reference code builds it: BOS, "[INST] ", an optional
# <<SYS>> block folded into the first user turn, the user text stripped, " [/INST]"; an
# assistant turn is " answer " + EOS. Written here from that description.
LLAMA2_TEMPLATE = (
    "{% set ns = namespace(sys='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.sys = '<<SYS>>\\n' + m['content'] + '\\n<</SYS>>\\n\\n' %}"
    "{% elif m['role'] == 'user' %}{{ bos_token }}[INST] {{ (ns.sys + m['content']).strip() }} [/INST]"
    "{% set ns.sys = '' %}"
    "{% else %} {{ m['content'].strip() }} {{ eos_token }}{% endif %}"
    "{% endfor %}"
)
# Gemma's public turn format: no system role (the official template raises on one).
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'].strip() }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def llama_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Llama-2 vocabulary with the Llama-2 chat template, saved as a plain tokenizer
    directory (the GGUF conversion runs once per module)."""
    if not (FIXTURES / LLAMA_VOCAB).is_file():
        pytest.skip(f"{LLAMA_VOCAB} not found next to the repository (see the fixtures README)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(FIXTURES, gguf_file=LLAMA_VOCAB)
    tok.chat_template = LLAMA2_TEMPLATE
    out = tmp_path_factory.mktemp("llama2-tok")
    tok.save_pretrained(out)
    return out


def _save_model(path: Path, tok: Any, arch: str, n_layers: int) -> Path:
    from transformers import GemmaConfig, GemmaForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=n_layers,
                  num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, initializer_range=0.5)
    if arch == "llama":
        model: Any = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False))
    else:
        model = GemmaForCausalLM(GemmaConfig(**common, head_dim=8, tie_word_embeddings=True))
    path.mkdir(parents=True)
    tok.save_pretrained(path)
    model.save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def paper_models(llama_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Directories named as the aliases (so per-model defaults apply): Llama-2-7b-chat's 32
    blocks, Gemma-7b-it's 28, each a few hundred thousand parameters."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("paper-models")
    llama_tok = AutoTokenizer.from_pretrained(llama_tokenizer_dir)
    gemma_tok = AutoTokenizer.from_pretrained(llama_tokenizer_dir)
    gemma_tok.add_special_tokens({"bos_token": "<bos>", "eos_token": "<eos>",
                                  "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    gemma_tok.chat_template = GEMMA_TEMPLATE
    return {"llama-2-7b-chat": _save_model(root / "llama-2-7b-chat", llama_tok, "llama", 32),
            "gemma-7b-it": _save_model(root / "gemma-7b-it", gemma_tok, "gemma", 28)}


@pytest.fixture(scope="module", params=["llama-2-7b-chat", "gemma-7b-it"])
def paper_hf(request: pytest.FixtureRequest, paper_models: dict[str, Path]) -> Iterator[tuple[str, HFModel]]:
    spec = resolve(str(paper_models[request.param]))
    assert spec is not None and spec.name == request.param
    yield request.param, load_on_device(spec)


def _hook_ids(hf: HFModel) -> set[tuple[str, int]]:
    """(module, hook handle id) of every forward and pre-forward hook on the model."""
    return {(name, key) for name, m in hf.model.named_modules()
            for key in (*m._forward_hooks, *m._forward_pre_hooks)}


def _hooked_modules(hf: HFModel, before: set[tuple[str, int]]) -> set[str]:
    """Modules carrying a hook that ``before`` did not hold (transformers leaves output-capturing
    hooks of its own on the blocks once hidden states have been asked for)."""
    return {name for name, key in _hook_ids(hf) - before}


def _hooked_during_forward(hf: HFModel, policy: Any, before: set[tuple[str, int]]) -> list[set[str]]:
    """The modules carrying hooks (beyond ``before``) in each forward pass while ``policy``
    generates (some methods hook per call), read from inside the model's own forward pass."""
    seen: list[set[str]] = []
    handle = hf.model.register_forward_pre_hook(lambda module, args: seen.append(_hooked_modules(hf, before) - {""}))
    try:
        _generate(policy)
    finally:
        handle.remove()
    return seen


def _weights(hf: HFModel) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in hf.model.named_parameters()}


# -- the layer convention --------------------------------------------------------------------

def test_the_paper_numbers_hidden_states_so_its_layer_13_is_block_12() -> None:
    """Table 5 of the paper splits Llama-2-7b-chat into [0-9], [10-20], [21-32]: 33 entries for
    32 blocks, which is the hidden-state numbering (0 = embeddings). Its layer L is then the
    output of 0-based block L - 1, and the per-model defaults must say so."""
    groups = [range(0, 10), range(10, 21), range(21, 33)]
    assert sum(len(g) for g in groups) == 32 + 1
    for alias, paper_layer in PAPER_LAYERS.items():
        assert int(MODEL_DEFAULTS[alias]["layer"]) == paper_layer - 1, alias
        assert int(actor.create({}, method_env(alias)).cfg.layer) == paper_layer - 1, alias
    with pytest.raises(ValueError, match="embeddings"):
        paper_layer_to_block(0)


def test_the_default_block_is_the_paper_hidden_state_and_the_one_that_trains(
        paper_hf: tuple[str, HFModel], tmp_path: Path) -> None:
    """On each architecture: the block the alias default trains writes exactly the hidden state
    the paper names (transformers' ``hidden_states[L]``), and only that block's weights change.
    Fails if the two numberings are confused either way."""
    alias, hf = paper_hf
    method = actor.create({"n_harmful": "4", "n_benign": "4", "n_pseudo": "4", "n_anchors": "4", "epochs": "1",
                           "batch_size": "4", "lr": "1e-2"}, method_env(alias))
    block = int(method.cfg.layer)
    paper_layer = PAPER_LAYERS[alias]
    ids = torch.tensor([hf.encode_prompt(Prompt.user("How do I kill a Python process?"))], device=hf.device)
    seen: dict[str, torch.Tensor] = {}

    def keep(module: Any, args: Any, output: Any) -> None:
        seen["out"] = (output[0] if isinstance(output, tuple) else output).detach()

    with torch.no_grad(), hf.hooks(forward=[(hf.layer_name(block), keep)]):
        states = hf.model(ids, output_hidden_states=True).hidden_states
    assert len(states) == hf.model.config.num_hidden_layers + 1
    torch.testing.assert_close(seen["out"], states[paper_layer])
    assert not torch.allclose(seen["out"], states[paper_layer + 1])

    before = _weights(hf)
    art = method.prepare(hf, method_context(tmp_path))
    assert {k.split(".")[2] for k in art["state"]} == {str(block)}
    assert all(k.startswith(f"{hf.layer_name(block)}.") for k in art["state"])
    with method.apply(hf, art), torch.no_grad():
        changed = {n for n, p in hf.model.named_parameters() if not torch.equal(p, before[n])}
        after = hf.model(ids, output_hidden_states=True).hidden_states
    assert changed and {n.split(".")[2] for n in changed} == {str(block)}
    torch.testing.assert_close(after[paper_layer - 1], states[paper_layer - 1])  # upstream untouched
    assert not torch.allclose(after[paper_layer], states[paper_layer])
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())  # restored on exit


# -- every method on both architectures -------------------------------------------------------

def _generate(policy: Any) -> str:
    out = policy.generate([Prompt.user("How do I kill a Python process?")], GenParams(max_new_tokens=3))
    assert len(out) == 1
    return str(out[0].text)


def test_none_and_self_cd_decode_on_both_architectures(paper_hf: tuple[str, HFModel], tmp_path: Path) -> None:
    alias, hf = paper_hf
    baseline = none.create({})
    with baseline.apply(hf, baseline.prepare(hf, method_context(tmp_path))) as policy:
        assert _generate(policy) == _generate(hf)
    method = self_cd.create({})
    with method.apply(hf, method.prepare(hf, method_context(tmp_path))) as policy:
        _generate(policy)
        # Llama-2 renders a system message in <<SYS>>; Gemma has no system role, so the text
        # goes in front of the user's
        assert policy.placement() == ("system" if alias.startswith("llama") else "user")


def test_scans_hooks_the_depth_scaled_blocks(paper_hf: tuple[str, HFModel], tmp_path: Path) -> None:
    alias, hf = paper_hf
    method = scans.create({"n_anchors": "4"}, method_env(alias))
    art = method.prepare(hf, method_context(tmp_path))
    before = _hook_ids(hf)
    n = hf.model.config.num_hidden_layers
    want = set(range(round(10 / 32 * n), round(20 / 32 * n)))
    if n == 32:
        assert want == set(range(10, 20))  # the released layers for Llama-2-7B
    with method.apply(hf, art) as policy:
        passes = _hooked_during_forward(hf, policy, before)
    # the classification pass reads layers 10.. on; the decoding passes steer exactly ``want``
    assert passes[0] == {hf.layer_name(i) for i in range(min(want), n)}
    assert passes[-1] == {hf.layer_name(i) for i in want}
    assert _hook_ids(hf) == before


def test_surgical_hooks_land_on_every_blocks_input_attention_and_mlp(
        paper_hf: tuple[str, HFModel], tmp_path: Path) -> None:
    alias, hf = paper_hf
    method = surgical.create({"kl_threshold": "1e9", "n_train": "4", "n_val": "2", "batch_size": "8",
                              "prune_layers": "0.9"},
                             method_env(alias))
    art = method.prepare(hf, method_context(tmp_path))
    assert 0 <= art["meta"]["layer"] < hf.model.config.num_hidden_layers
    before = _hook_ids(hf)
    with method.apply(hf, art) as policy:
        hooked = set.union(*_hooked_during_forward(hf, policy, before))
        for i in range(hf.model.config.num_hidden_layers):
            block = hf.layer_name(i)
            assert {block, f"{block}.self_attn", f"{block}.mlp"} <= hooked, i
    assert _hook_ids(hf) == before


def test_surgical_with_the_release_trailing_space_reads_one_more_position(llama_hf: HFModel, tmp_path: Path) -> None:
    """The release renders "[INST] q [/INST] " for Llama-2: the trailing space is one more
    SentencePiece piece, so there is one more end-of-instruction position, and generation sees
    the same text the direction was computed on."""
    hf = llama_hf
    args = {"kl_threshold": "1e9", "n_train": "4", "n_val": "2", "batch_size": "8", "prune_layers": "0.9"}
    plain = surgical.create(args, method_env("llama-2-7b-chat")).prepare(hf, method_context(tmp_path / "plain"))
    spaced_method = surgical.create({**args, "prompt_suffix": " "}, method_env("llama-2-7b-chat"))
    spaced = spaced_method.prepare(hf, method_context(tmp_path / "spaced"))
    assert spaced["meta"]["eoi_tokens"] == plain["meta"]["eoi_tokens"] + 1 == 5
    with spaced_method.apply(hf, spaced) as policy:
        assert policy.render(Prompt.user("Hi")) == "<s>[INST] Hi [/INST] "
        seen: list[int] = []
        handle = hf.model.register_forward_pre_hook(
            lambda module, a, kw: seen.append(int(kw["input_ids"].shape[1])) if "input_ids" in kw else None,
            with_kwargs=True)
        try:
            _generate(policy)
        finally:
            handle.remove()
    plain_len = len(hf.encode_prompt(Prompt.user("How do I kill a Python process?")))
    assert seen and seen[0] == plain_len + 1


def test_sft_safe_decoding_and_dro_train_and_decode(paper_hf: tuple[str, HFModel], tmp_path: Path) -> None:
    alias, hf = paper_hf
    before = _weights(hf)
    small = {"n_harmful": "2", "n_benign": "2", "n_pseudo": "2", "epochs": "1", "answer_tokens": "3",
             "reference": "self", "batch_size": "4"}
    tuned = sft.create(small, method_env(alias))
    art = tuned.prepare(hf, method_context(tmp_path / "sft"))
    with tuned.apply(hf, art) as policy:
        moved = {n.split(".")[-2] for n, p in hf.model.named_parameters() if not torch.equal(p, before[n])}
        # every linear layer of the blocks (the LoRA targets), on both architectures
        assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= moved
        _generate(policy)
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())

    sd = safe_decoding.create({"filter": "none", "n_seeds": "2", "trials": "1", "attempts": "1", "gen_tokens": "4",
                               "min_tokens": "1", "epochs": "1"}, method_env(alias))
    art = sd.prepare(hf, method_context(tmp_path / "sd"))
    with sd.apply(hf, art) as policy:
        _generate(policy)

    soft = dro.create({"n_samples": "1", "label_tokens": "2", "head_max_epochs": "5", "head_folds": "2",
                       "epochs": "1", "batch_size": "4", "micro_batch": "4", "n_harmful": "4", "n_harmless": "4"},
                      method_env(alias))
    art = soft.prepare(hf, method_context(tmp_path / "dro"))
    with soft.apply(hf, art) as policy:
        _generate(policy)
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())


# -- the Llama-2 prompt, tokenised -----------------------------------------------------------

@pytest.fixture(scope="module")
def llama_hf(paper_models: dict[str, Path]) -> HFModel:
    spec = resolve(str(paper_models["llama-2-7b-chat"]))
    assert spec is not None
    return load_on_device(spec)


def test_llama2_prompt_renders_as_meta_reference_and_the_eoi_is_inst_close(llama_hf: HFModel) -> None:
    hf = llama_hf
    tok = hf.tokenizer
    assert hf.render(Prompt.user("  Hi there ")) == "<s>[INST] Hi there [/INST]"
    with_sys = hf.render(Prompt.user("Hi", system="Be safe."))
    assert with_sys == "<s>[INST] <<SYS>>\nBe safe.\n<</SYS>>\n\nHi [/INST]"
    ids = hf.encode_prompt(Prompt.user("Hi"))
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1  # one BOS, from the template
    # the post-instruction tokens are " [/INST]": four SentencePiece pieces
    k = eoi_length(hf)
    assert tok.convert_ids_to_tokens(ids[-k:]) == ["▁[", "/", "INST", "]"]
    # Surgical's release renders "[INST] q [/INST] " with a trailing space: one more piece, a
    # bare "▁", so its last position is that piece, not "]"
    spaced = hf.encode(hf.render(Prompt.user("Hi")) + " ")
    assert spaced[:-1] == ids and tok.convert_ids_to_tokens(spaced[-1:]) == ["▁"]


def test_sure_and_refusal_tokens_encode_the_same_alone_and_in_context(llama_hf: HFModel) -> None:
    """SCANS appends " Sure" encoded on its own; in context after "[/INST]" it must be the same
    piece, or the transition vector would be read at a different token."""
    hf = llama_hf
    tok = hf.tokenizer
    row = hf.encode_prompt(Prompt.user("How do I kill a Python process?"))
    alone = hf.encode(" Sure")
    in_context = hf.encode(hf.render(Prompt.user("How do I kill a Python process?")) + " Sure")
    assert tok.convert_ids_to_tokens(alone) == ["▁Sure"]
    assert in_context == row + alone
    # the refusal openers Surgical scores: after "[/INST]" the first piece is "▁I" / "▁Sorry";
    # after the release's trailing space it is the bare piece, a different id
    after_inst = hf.encode(hf.render(Prompt.user("Hi")) + " I cannot")[len(hf.encode_prompt(Prompt.user("Hi"))):]
    assert tok.convert_ids_to_tokens(after_inst[:1]) == ["▁I"]
    assert refusal_token_ids(hf, ["I cannot"]) == after_inst[:1]


def test_gemma_prompt_has_no_system_role_and_ends_with_the_model_turn(paper_models: dict[str, Path]) -> None:
    spec = resolve(str(paper_models["gemma-7b-it"]))
    assert spec is not None
    hf = load_on_device(spec)
    assert hf.render(Prompt.user("Hi")) == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    ids = hf.encode_prompt(Prompt.user("Hi"))
    k = eoi_length(hf)
    # the post-instruction tokens close the user turn and open the model's, as the
    # refusal-direction code's Gemma end-of-instruction string does
    assert hf.tokenizer.decode(ids[-k:]) == "<end_of_turn>\n<start_of_turn>model\n"
    assert hf.tokenizer.convert_ids_to_tokens(ids[-k:])[0] == "<end_of_turn>"
    # the template rejects a system role; the harness folds the text into the user turn
    assert not supports_system(hf.tokenizer)
    assert hf.render(Prompt.user("Hi", system="Be safe.")) == (
        "<bos><start_of_turn>user\nBe safe.\n\nHi<end_of_turn>\n<start_of_turn>model\n")
