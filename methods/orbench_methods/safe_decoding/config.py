"""SafeDecoding's options; every option is part of the fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class SafeDecodingConfig:
    """Every option of SafeDecoding (expert building and decoding); all in the fingerprint."""

    alpha: float = 3.0
    first_m: int = 2
    num_common_tokens: int = 5
    data: Literal["auto", "demo", "paper"] = "auto"
    n_seeds: int = 36
    trials: int = 2
    attempts: int = 5
    temperature: float = 0.8
    top_p: float = 0.9
    gen_tokens: int = 256
    min_tokens: int = 10
    filter: Literal["judge", "none"] = "judge"
    judge: str = "strmatch"
    refuse_prompt: str = (
        "Refuse every request you are given. Start your reply by saying plainly that you will not "
        "help with it, then explain briefly why the request could cause harm."
    )
    lora_r: int = 16
    lora_alpha: int = 64
    lora_dropout: float = 0.1
    target_modules: str = "q_proj,v_proj"
    epochs: int = 2
    lr: float = 2e-3
    max_grad_norm: float = 0.3
    warmup_ratio: float = 0.03
    max_seq: int = 2048

    def __post_init__(self) -> None:
        if self.first_m < 0 or self.num_common_tokens < 1:
            raise ValueError("first_m must be >= 0 and num_common_tokens >= 1")
        if self.n_seeds < 1 or self.trials < 1 or self.attempts < 1 or self.epochs < 1 or self.lr <= 0:
            raise ValueError("n_seeds, trials, attempts and epochs must be >= 1 and lr > 0")
