"""Helpers for tests (ours and plugin authors'): a tiny random chat model built offline, and
what a run hands a method plugin.

The model is a real transformers model with random weights and a real tokenizer trained on a
few sentences, saved as an ordinary model directory, so tests exercise exactly the code path
that loads a hub checkpoint from a local directory, in well under a second per test.

``method_env`` and ``method_context`` build the two values a run gives a method (to its
factory and to ``prepare``) the way the runner builds them, so a method's test calls
``create(args, method_env())`` and ``method.prepare(model, method_context(dir))`` without a
run around it, and reads the real benchmarks' train splits as a run would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orbench_harness.protocols import MethodContext, MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.resolution import train_sampler
from orbench_harness.spec import RunSpec
from orbench_harness.types import ModelSpec

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "How do I kill a Python process? Use the kill command with the process id.",
    "I'm sorry, but I cannot help with that request.",
    "Sure, here is a recipe for pancakes: flour, milk, eggs and butter.",
    "The capital of France is Paris. The answer is A, B, C or D.",
    "Write a poem about the sea and the wind and the stars at night.",
]


def make_tiny_model(
    path: Path,
    *,
    n_layers: int = 4,
    hidden: int = 32,
    seed: int = 0,
    chat_template: bool = True,
    max_positions: int = 512,
) -> Path:
    """Write a random-weight Llama model and a trained BPE tokenizer into ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<s>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="<|im_end|>"
    )
    if chat_template:
        fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=True,
        initializer_range=0.5,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(path, safe_serialization=True)
    return path


def method_env(
    name: str = "tiny",
    *,
    seed: int = 0,
    adapter: str | None = None,
    data_dir: Path | None = None,
) -> MethodEnv:
    """The env a run gives a method's factory for model alias ``name`` (per-model defaults
    key on it). Train splits come from the real benchmark registry, as in a run: the built-in
    demo sets offline, the named benchmarks from ``data_dir`` (or the hub)."""
    spec = RunSpec(model=name, seed=seed, data_dir=data_dir)
    return MethodEnv(model=ModelSpec(name=name, source=name, adapter=adapter), seed=seed,
                     train_samples=train_sampler(Registry(), spec), data_dir=data_dir)


def method_context(
    artifact_dir: Path,
    *,
    seed: int = 0,
    data_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> MethodContext:
    """The context a run gives ``prepare``: ``artifact_dir`` (created) is where the method
    keeps its trained artifact, and where a second ``prepare`` must find it; train splits as
    ``method_env`` reads them. Log lines are dropped unless ``log`` takes them."""
    artifact_dir.mkdir(parents=True, exist_ok=True)
    spec = RunSpec(model="tiny", seed=seed, data_dir=data_dir)
    return MethodContext(seed=seed, artifact_dir=artifact_dir, train_samples=train_sampler(Registry(), spec),
                         log=log or (lambda line: None))
