"""SFT's options; every option is part of the fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orbench_harness.methodkit.pools import Pools


@dataclass(frozen=True, slots=True)
class SftConfig:
    """Every option of SFT; all of it is part of the fingerprint."""

    reference: Literal["auto", "base", "self", "openai"] = "auto"
    reference_model: str = ""
    reference_base_url: str = ""
    reference_api_key_env: str = "OPENAI_API_KEY"
    answer_tokens: int = 128
    drop_refusals: bool = True
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    target_modules: str = "all-linear"
    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 8
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # the data options of ActorConfig, with its defaults: both methods train on the same prompts
    data: Literal["auto", "demo", "paper"] = "auto"
    n_benign: int = 210
    n_pseudo: int = 100
    n_harmful: int = 330
    pseudo_sources: str = "xstest,scope,orbench-hard,phtest"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.answer_tokens < 1:
            raise ValueError("epochs, batch_size and answer_tokens must be >= 1 and lr > 0")
        if self.lora and (self.lora_r < 1 or self.lora_alpha <= 0):
            raise ValueError("lora_r must be >= 1 and lora_alpha > 0")
        if self.reference == "openai" and not self.reference_model:
            raise ValueError("reference=openai needs reference_model=NAME (and reference_base_url=URL)")

    def pools(self) -> Pools:
        """The data options whose ``build_data`` gives SFT its prompts (ACTOR's, with its defaults)."""
        return Pools(data=self.data, n_benign=self.n_benign, n_pseudo=self.n_pseudo,
                     n_harmful=self.n_harmful, pseudo_sources=self.pseudo_sources)
