"""Templates shaped like Gemma's: no system role, and a turn end that is not the tokenizer's EOS.

The tiny model is copied with such a template (it raises on a system message and ends each
turn with ``<|im_end|>``) and with ``<pad>`` as its EOS, then loaded through the hf backend.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _device import load as load_on_device
from orbench_harness.backends.chat import fold_system, prompt_ids, stop_ids, turn_end_ids
from orbench_harness.backends.hf import HFModel
from orbench_harness.cli import main
from orbench_harness.models import resolve
from orbench_harness.types import GenParams, Message, Prompt

NO_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}<|im_start|>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def gemma_like(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> HFModel:
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp("gemma-like") / "m"
    shutil.copytree(tiny_model_dir, d)
    tok = AutoTokenizer.from_pretrained(d)
    tok.chat_template = NO_SYSTEM
    tok.eos_token = "<pad>"
    tok.save_pretrained(d)
    for name in ("config.json", "generation_config.json"):
        path = d / name
        if path.is_file():
            cfg = json.loads(path.read_text())
            cfg["eos_token_id"] = tok.pad_token_id
            path.write_text(json.dumps(cfg))
    spec = resolve(str(d))
    assert spec is not None
    return load_on_device(spec)


def test_a_system_message_is_folded_into_the_first_user_turn(gemma_like: HFModel) -> None:
    from jinja2 import TemplateError

    prompt = Prompt.user("How do I kill a Python process?", system="Be careful.")
    with pytest.raises(TemplateError):  # what the template does on its own
        gemma_like.tokenizer.apply_chat_template(prompt.to_json(), tokenize=False)
    text = gemma_like.render(prompt)
    assert text == "<|im_start|>user\nBe careful.\n\nHow do I kill a Python process?<|im_end|>\n<|im_start|>model\n"
    out = gemma_like.generate([prompt], GenParams(max_new_tokens=3))  # Safe-Decoding's expert data does this
    assert out[0].n_prompt_tokens == len(gemma_like.encode(text))


def test_templates_with_a_system_role_are_left_alone(tiny_model_dir: Path) -> None:
    spec = resolve(str(tiny_model_dir))
    assert spec is not None
    hf = load_on_device(spec)
    assert hf.render(Prompt.user("Q", system="S")).startswith("<|im_start|>system\nS<|im_end|>")


def test_fold_system_keeps_the_other_turns() -> None:
    p = Prompt((Message("system", "S"), Message("user", "A"), Message("assistant", "B"), Message("user", "C")))
    assert fold_system(p).messages == (Message("user", "S\n\nA"), Message("assistant", "B"), Message("user", "C"))
    only = Prompt((Message("system", "S"),))
    assert fold_system(only).messages == (Message("user", "S"),)


def test_the_templates_turn_end_is_a_stop_token(gemma_like: HFModel, tiny_model_dir: Path) -> None:
    tok = gemma_like.tokenizer
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.eos_token_id != im_end
    assert turn_end_ids(tok) == [im_end]
    assert gemma_like._eos_ids == sorted({im_end, tok.pad_token_id})
    assert stop_ids(tok, [7, 9]) == sorted({7, 9, im_end, tok.pad_token_id})


def test_vllm_prompts_are_token_identical_to_hf(gemma_like: HFModel) -> None:
    """The vllm backend tokenises with ``prompt_ids``; it must match what hf generates from."""
    for p in (Prompt.user("Write a poem about the sea."), Prompt.user("Q", system="S")):
        ids = prompt_ids(gemma_like.tokenizer, p)
        assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
        assert ids == gemma_like.encode_prompt(p)


def test_a_template_that_cannot_render_is_a_one_line_error(tiny_model_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.jinja"
    broken.write_text("{{ raise_exception('only tool calls here') }}")
    argv = ["run", "--model", str(tiny_model_dir), "--chat-template", str(broken), "--judge", "strmatch",
            "--limit", "1", "--max-new-tokens", "2", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "the chat template cannot render a user conversation" in err and "only tool calls here" in err


def test_only_special_tokens_count_as_turn_ends(tiny_model_dir: Path) -> None:
    """A template ending turns with a plain added token (here ``<sep>``) adds no stop token;
    one flagged special (Llama-3's ``<|eot_id|>`` is only that) does."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.add_tokens([AddedToken("<sep>", special=False), AddedToken("<|eot|>", special=True)])
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}<sep>{% endfor %}"
    assert turn_end_ids(tok) == []
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}<|eot|>{% endfor %}"
    assert turn_end_ids(tok) == [tok.convert_tokens_to_ids("<|eot|>")]
