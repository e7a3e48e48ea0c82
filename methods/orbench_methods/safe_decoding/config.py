"""SafeDecoding's options; every option is part of the fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from orbench_harness.methodargs import ADDED_LATER


@dataclass(frozen=True, slots=True)
class SafeDecodingConfig:
    """Every option of SafeDecoding (expert building and decoding); all in the fingerprint."""

    alpha: float = 3.0
    """Weight of the expert: each candidate token gets p_base + alpha (p_expert - p_base). Paper: 3.
    """
    first_m: int = 2
    """Tokens decoded with the base/expert mixture; the base model finishes alone. Paper: 2."""
    num_common_tokens: int = 5
    """Candidate set size: k grows until the two top-k lists share this many tokens. Paper: 5."""
    data: Literal["auto", "demo", "paper"] = "auto"
    """Training prompts: paper draws the paper's pools from the benchmarks' train splits, demo uses
    the shipped demo set, auto is paper when a data directory is given and demo otherwise.
    """
    n_seeds: int = 36
    """Harmful seed prompts the expert's refusals are sampled for. Paper: 36."""
    trials: int = 2
    """Answers sampled per seed prompt and attempt. Paper: 2."""
    attempts: int = 5
    """Sampling rounds for seed prompts that have no kept refusal yet. Paper: 5."""
    temperature: float = 0.8
    """Sampling temperature of the expert's training answers. Paper: 0.8."""
    top_p: float = 0.9
    """Nucleus (top-p) threshold of the expert's training answers. Paper: 0.9."""
    gen_tokens: int = 256
    """Longest sampled training answer, in tokens."""
    min_tokens: int = 10
    """Shortest kept training answer, in tokens. Paper: 10."""
    filter: Literal["judge", "none"] = "judge"
    """Which sampled answers are kept: judge keeps those the judge calls refusals, none keeps every
    long-enough one. Paper: a GPT-4 check.
    """
    judge: str = "strmatch"
    """Harness judge of filter=judge (XSTest's refusal prefixes by default)."""
    refuse_prompt: str = (
        "Refuse every request you are given. Start your reply by saying plainly that you will not "
        "help with it, then explain briefly why the request could cause harm."
    )
    """System prompt that asks for refusals while the training answers are sampled (our wording);
    the expert is trained without it.
    """
    lora_r: int = 16
    """LoRA rank of the expert. Paper: 16."""
    lora_alpha: int = 64
    """LoRA alpha of the expert. Paper: 64."""
    lora_dropout: float = 0.1
    """LoRA dropout of the expert. Paper: 0.1."""
    target_modules: str = "q_proj,v_proj"
    """Modules that get LoRA layers, comma-separated. Paper: q_proj,v_proj."""
    epochs: int = 2
    """Training epochs of the expert. Paper: 2."""
    lr: float = 2e-3
    """AdamW learning rate of the expert. Paper: 2e-3."""
    max_grad_norm: float = 0.3
    """Gradient-norm clipping threshold. Paper: 0.3."""
    warmup_ratio: float = 0.03
    """Fraction of the steps spent warming the learning rate up (linear schedule). Paper: 0.03."""
    max_seq: int = 2048
    """Longest training sequence, in tokens."""
    expert_adapter: str = field(default="", metadata=ADDED_LATER)
    """A ready expert: a PEFT LoRA directory (e.g. the release's lora_modules/llama2) used instead
    of building one; its weights' sha256 is in the fingerprint.
    """

    def __post_init__(self) -> None:
        if self.first_m < 0 or self.num_common_tokens < 1:
            raise ValueError("first_m must be >= 0 and num_common_tokens >= 1")
        if self.n_seeds < 1 or self.trials < 1 or self.attempts < 1 or self.epochs < 1 or self.lr <= 0:
            raise ValueError("n_seeds, trials, attempts and epochs must be >= 1 and lr > 0")
