"""Safety alignment of a chat model by supervised fine-tuning: the harness's model organisms.

``harness align`` turns an unaligned chat model (the embedded SmolLM2-135M-Instruct answers
harmful requests) into one that refuses them -- and, trained this way, over-refuses benign
requests that share words and forms with the harmful data, the phenomenon the over-refusal
methods target. The built-in ``smollm2-135m-safety`` is the ``safety`` recipe's adapter.

Modules: ``refusals`` (the refusal answers), ``data`` (harmful and benign data, the base model's
own answers, loss masking), ``train`` (LoRA loop: deterministic, checkpointed, resumable),
``triggers`` (trigger extraction for ``trigger-aware``), ``recipe`` (the end-to-end run and
recipe.json). Nothing heavy is imported here.
"""

from orbench_harness.alignment.recipe import RECIPES, AlignConfig, align
from orbench_harness.alignment.train import TrainConfig

__all__ = ["RECIPES", "AlignConfig", "TrainConfig", "align"]
