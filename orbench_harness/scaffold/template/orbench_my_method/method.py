"""``my-method``: a starting point made by ``harness new method``; replace it with yours.

As generated it is a small real method, so that everything around it works from the first
minute: the difference of the mean residual streams of harmful and benign training prompts
(last prompt token, output of one decoder block) is the "refusal direction", and generation
subtracts ``alpha`` times it from that block's output at every position (activation
steering; Turner et al. 2023 add a direction the same way). What each part is for:

- ``MyMethodConfig``: every option a user can pass as ``--method-arg key=value``. Every field
  is part of the fingerprint, so a changed option is a new cache entry, never a stale one.
- ``fingerprint``: what decides the method's effect. The run cache keys generations on it;
  bump ``VERSION`` whenever a code change alters the effect.
- ``prepare``: the expensive part (training, statistics), once per model and fingerprint. It
  keeps its result in ``ctx.artifact_dir`` and finds it there on every later run.
- ``apply``: the intervention, active only inside the ``with`` block; the harness generates
  and scores through the policy it yields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import CapabilityError, HarnessError
from orbench_harness.methodargs import fingerprint
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, Policy
from orbench_harness.types import Capability, Sample

VERSION = 1  # bump when a code change alters what the method does


@dataclass(frozen=True)
class MyMethodConfig:
    """Options (``--method-arg key=value``); the types convert the command-line strings.

    The string below each field is its meaning, which ``harness describe method my-method``
    prints; end it with ``Paper: VALUE.`` to show the source paper's setting too.
    """

    layer: int = -1
    """Decoder block whose output is steered; -1 is the middle block."""
    alpha: float = 1.0
    """Multiple of the direction that is subtracted; 0 leaves the model as it is."""
    harmful: str = "demo-harmful"
    """Benchmark whose train split gives the harmful prompts."""
    benign: str = "demo-benign"
    """Benchmark whose train split gives the benign prompts (ultrachat with --data-dir, say)."""
    n_prompts: int = 16
    """Prompts taken from each train split."""


class MyMethod:
    """See the module docstring."""

    name = "my-method"
    requires = frozenset({Capability.WEIGHTS})  # needs a backend with hooks (hf)

    def __init__(self, cfg: MyMethodConfig, env: MethodEnv) -> None:
        self.cfg = cfg
        # Train splits only: the harness keeps test prompts out of every method's reach.
        self.harmful: list[Sample] = env.train_samples(cfg.harmful)[: cfg.n_prompts]
        self.benign: list[Sample] = env.train_samples(cfg.benign)[: cfg.n_prompts]

    def fingerprint(self) -> str:
        """Config, the prompts the direction is computed from, and ``VERSION``."""
        prompts = [s.prompt for s in self.harmful + self.benign]
        return fingerprint(self.name, VERSION, self.cfg, data=prompts)

    def layer(self, model: HFModel) -> int:
        """The steered block's index."""
        n = len(model.layers)
        index = n // 2 if self.cfg.layer == -1 else self.cfg.layer
        if not 0 <= index < n:
            raise HarnessError(f"{self.name}: layer {self.cfg.layer} is outside 0..{n - 1}")
        return index

    def prepare(self, model: ModelHandle, ctx: MethodContext) -> dict[str, Any]:
        """The direction, computed once and kept in ``ctx.artifact_dir``."""
        import torch

        hf = _hf(model, self.name)
        path, meta = ctx.artifact_dir / "direction.pt", ctx.artifact_dir / "meta.json"
        if path.exists() and meta.exists():  # written last, so both present = complete
            ctx.log(f"{self.name}: direction found in {ctx.artifact_dir}")
            return {"direction": torch.load(path, weights_only=True), **json.loads(meta.read_text())}
        layer = self.layer(hf)
        # hidden_states: [prompts, layers + 1, d] at the last prompt token; index layer + 1 is
        # the output of block ``layer``.
        harmful = hf.hidden_states([s.as_prompt() for s in self.harmful])[:, layer + 1]
        benign = hf.hidden_states([s.as_prompt() for s in self.benign])[:, layer + 1]
        direction = harmful.mean(0) - benign.mean(0)
        torch.save(direction, path)
        info = {"layer": layer, "norm": float(direction.norm())}
        meta.write_text(json.dumps(info))
        ctx.log(f"{self.name}: direction at layer {layer}, norm {info['norm']:.3f}")
        return {"direction": direction, **info}

    @contextmanager
    def apply(self, model: ModelHandle, artifact: dict[str, Any]) -> Iterator[Policy]:
        """The model itself, with a hook on the steered block for as long as the block lasts."""
        hf = _hf(model, self.name)
        shift = self.cfg.alpha * artifact["direction"]  # float32, on the CPU

        def steer(module: Any, inputs: Any, output: Any) -> Any:
            h = output[0] if isinstance(output, tuple) else output  # some blocks return (hidden, ...)
            h = h - shift.to(h.device, h.dtype)  # the block's own device: models split over GPUs too
            return (h, *output[1:]) if isinstance(output, tuple) else h

        with hf.hooks(forward=[(hf.layer_name(artifact["layer"]), steer)]):
            yield hf


def _hf(model: ModelHandle, method: str) -> HFModel:
    """The transformers handle: other backends (vllm, an API) give no access to activations."""
    if not isinstance(model, HFModel):
        raise CapabilityError(f"method {method!r} needs the hf backend (got {type(model).__name__})")
    return model
