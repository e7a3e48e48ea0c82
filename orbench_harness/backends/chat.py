"""Chat-template rendering and stop tokens shared by the ``hf`` and ``vllm`` backends.

Two things real chat models need that a ChatML model does not show:

- **Templates without a system role.** Gemma's template raises "System role not supported".
  Self-CD and Safe-Decoding put their instructions in a system message, so on Gemma they would
  stop with a Jinja traceback. Such a template gets the system text folded into the first user
  turn (system, blank line, user), the usual workaround for such models.
- **Turn ends that are not the tokenizer's EOS.** Gemma ends an assistant turn with
  ``<end_of_turn>`` while its tokenizer's EOS is ``<eos>``; Llama-3 has ``<|eot_id|>``. A
  generation that only stops at EOS runs on into an invented next turn, whose words the judge
  then reads. The template itself says where a turn ends: the first token it renders after an
  assistant message's content, when that is a special token, is a stop token too.

Both backends tokenise the rendered text without adding special tokens (the template renders
its own), so their prompts are token-identical.
"""

from __future__ import annotations

from typing import Any

from orbench_harness.errors import HarnessError
from orbench_harness.types import Message, Prompt

_SENTINEL = "ORBENCH_TURN_END_PROBE"


def _apply(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    text: str = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return text


def fold_system(prompt: Prompt) -> Prompt:
    """The prompt with its system messages prepended to the first user turn."""
    system = "\n\n".join(m.content for m in prompt.messages if m.role == "system")
    rest = [m for m in prompt.messages if m.role != "system"]
    if not system:
        return prompt
    for i, m in enumerate(rest):
        if m.role == "user":
            rest[i] = Message("user", f"{system}\n\n{m.content}")
            break
    else:
        rest.insert(0, Message("user", system))
    return Prompt(tuple(rest))


def render(tokenizer: Any, prompt: Prompt) -> str:
    """The chat template applied, ending with the assistant prefix; a template that rejects the
    system role gets the system text folded into the first user turn instead."""
    try:
        return _apply(tokenizer, prompt.to_json(), True)
    except Exception as e:  # jinja2's TemplateError from raise_exception(), or a template bug
        first = e
    if any(m.role == "system" for m in prompt.messages):
        try:
            return _apply(tokenizer, fold_system(prompt).to_json(), True)
        except Exception:
            pass
    roles = "/".join(m.role for m in prompt.messages)
    raise HarnessError(f"the chat template cannot render a {roles} conversation: "
                       f"{type(first).__name__}: {first} (fix it or pass --chat-template FILE)") from first


def supports_system(tokenizer: Any) -> bool:
    """Whether the template itself renders a system message (without folding): some raise,
    some silently drop it."""
    try:
        text = _apply(tokenizer, [{"role": "system", "content": _SENTINEL}, {"role": "user", "content": "Hi"}], True)
    except Exception:
        return False
    return _SENTINEL in text


def prompt_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of the rendered prompt (no special tokens added: the template has them)."""
    ids: list[int] = tokenizer(render(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    return ids


def turn_end_ids(tokenizer: Any) -> list[int]:
    """The special token the template writes right after an assistant message, if any."""
    try:
        text = _apply(tokenizer, [{"role": "user", "content": "Hi"},
                                  {"role": "assistant", "content": _SENTINEL}], False)
    except Exception:  # a template that cannot render an assistant turn: nothing to learn
        return []
    _, found, tail = text.partition(_SENTINEL)
    if not found or not tail.strip():
        return []
    ids: list[int] = tokenizer(tail.lstrip(" "), add_special_tokens=False)["input_ids"]
    # special = named/additional special tokens, or added tokens flagged special (Llama-3's
    # <|eot_id|> is only the latter); a plain added token such as a newline must not stop output
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special = set(tokenizer.all_special_ids) | {i for i, t in added.items() if getattr(t, "special", False)}
    return [ids[0]] if ids and ids[0] in special else []


def stop_ids(tokenizer: Any, generation_eos: int | list[int] | None) -> list[int]:
    """EOS from the generation config and the tokenizer, plus the template's turn end."""
    ids: set[int] = set(turn_end_ids(tokenizer))
    if isinstance(generation_eos, int):
        ids.add(generation_eos)
    elif isinstance(generation_eos, list):
        ids.update(generation_eos)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)
