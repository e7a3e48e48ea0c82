"""SFT's options; every option is part of the fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from orbench_harness.methodargs import ADDED_LATER
from orbench_harness.methodkit.pools import Pools


@dataclass(frozen=True, slots=True)
class SftConfig:
    """Every option of SFT; all of it is part of the fingerprint."""

    reference: Literal["auto", "base", "self", "openai", "file"] = "auto"
    """Who writes the answers for benign and pseudo-harmful prompts: base (the model without its
    adapter), self (the model itself), openai (an OpenAI-compatible endpoint), file (answers
    written earlier, reference_file); auto picks among them. Paper: GPT-4o (openai).
    """
    reference_model: str = ""
    """Model name at the endpoint for reference=openai. Paper: gpt-4o."""
    reference_base_url: str = ""
    """Base URL of the OpenAI-compatible endpoint for reference=openai (empty: the client's
    default).
    """
    reference_api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the endpoint's API key for reference=openai."""
    answer_tokens: int = 128
    """Longest reference answer, in tokens (greedy decoding)."""
    drop_refusals: bool = True
    """Drop benign examples whose reference answer is itself a refusal (XSTest string match):
    training on them would teach the over-refusal being removed.
    """
    lora: bool = True
    """Train a LoRA adapter (true) or every weight (false)."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling alpha."""
    target_modules: str = "all-linear"
    """Modules that get LoRA layers: all-linear or comma-separated module names."""
    lr: float = 1e-3
    """AdamW learning rate. Paper: 1e-3."""
    epochs: int = 3
    """Passes over the training examples. Paper: 3."""
    batch_size: int = 8
    """Examples per optimizer step (the paper gives none)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clipping threshold."""
    # the data options of ActorConfig, with its defaults: both methods train on the same prompts
    data: Literal["auto", "demo", "paper"] = "auto"
    """Training prompts: paper draws the paper's pools from the benchmarks' train splits, demo uses
    the shipped demo set, auto is paper when a data directory is given and demo otherwise.
    """
    n_benign: int = 210
    """Benign training prompts (ACTOR's pool). Paper: 210."""
    n_pseudo: int = 100
    """Pseudo-harmful training prompts, shared among pseudo_sources. Paper: 100."""
    n_harmful: int = 330
    """Harmful training prompts, each paired with a refusal. Paper: 330."""
    pseudo_sources: str = "xstest,scope,orbench-hard,phtest"
    """Benchmarks whose train splits give the pseudo-harmful prompts, comma-separated. Paper:
    xstest,scope,orbench-hard,phtest.
    """
    harmful_pool: str = field(default="hexphi", metadata=ADDED_LATER)
    """Benchmark giving the harmful prompts (ACTOR's option; name@all for every row of an unscored
    set). Paper: all of HEx-PHI.
    """
    benign_classes: str = field(default="", metadata=ADDED_LATER)
    """UltraChat classes the benign prompts come from, a|b|c (ACTOR's option); empty: every class."""
    reference_file: str = field(default="", metadata=ADDED_LATER)
    """reference=file: a reference-answer file (its sha256 is in the fingerprint)."""
    save_references: str = field(default="", metadata=ADDED_LATER)
    """Where to write the reference answers once generated, with their provenance, for
    reference=file in later runs.
    """

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.answer_tokens < 1:
            raise ValueError("epochs, batch_size and answer_tokens must be >= 1 and lr > 0")
        if self.lora and (self.lora_r < 1 or self.lora_alpha <= 0):
            raise ValueError("lora_r must be >= 1 and lora_alpha > 0")
        if self.reference == "openai" and not self.reference_model:
            raise ValueError("reference=openai needs reference_model=NAME (and reference_base_url=URL)")
        if (self.reference == "file" and not self.reference_file) or (
                self.reference_file and self.reference not in ("file", "auto")):
            raise ValueError("reference=file and reference_file=PATH go together")

    def pools(self) -> Pools:
        """The data options whose ``build_data`` gives SFT its prompts (ACTOR's, with its defaults)."""
        return Pools(data=self.data, n_benign=self.n_benign, n_pseudo=self.n_pseudo,
                     n_harmful=self.n_harmful, pseudo_sources=self.pseudo_sources,
                     harmful_pool=self.harmful_pool, benign_classes=self.benign_classes)
