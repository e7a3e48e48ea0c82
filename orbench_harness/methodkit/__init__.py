"""The method authoring kit: what several methods share, public for third-party methods too.

- ``activations``: reading block outputs at chosen positions, hooks, weight swaps.
- ``directions``: refusal directions from contrasting prompt sets (SCANS, Surgical).
- ``decoding``: step-wise decoding with a KV cache, for methods that change the logits.
- ``soft_prompt``: trainable prompt embeddings placed into a chat template (DRO).
- ``safety_text``: the safety text prompt-side methods add, and where it goes.
- ``pools``: the training pools fine-tuning methods draw from the benchmarks' train splits.
- ``supervised``: batches and loss for supervised fine-tuning on answers.
- ``checkpoint`` and ``precision``: resumable training state and float32 master weights.
- ``training``: one optimizer step and a training run's bookkeeping (``Trainer``).
- ``artifacts``: a method's cached artifact, else the computation that makes it.

Nothing heavy is imported here; torch is imported inside the functions that need it.
"""
