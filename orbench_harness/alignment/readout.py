"""Read-out LoRA: an adapter that can only react to the harmful-vs-benign direction.

Why: on SmolLM2-135M every plain LoRA build landed on one trade-off line between refusing
HEx-PHI and answering UltraChat (docs/results/organism.md, 23 builds), while a linear read-out of
the base model's own late states told the two apart far better than the organism's behaviour
did (``probes/decision_probe.py``). Plain SFT learns the refusal from whatever separates the
training requests most easily, largely their wording; the read-out generalises by content.

This makes the adapter use the read-out. Each targeted module's LoRA has rank 1, and its A row
is fixed, before training, to the difference of means of that module's input at the last
prompt token (the position where the first answer token, refusal or not, is predicted):
harmful training requests minus the rest, from the untrained model, divided by the standard
deviation of the projections so the read-out is in units of its own spread. A is frozen; only
B trains. The adapter's update at a position is then B times that scalar read-out, so whatever
it learns is driven by the direction and nothing else in the input.

Only modules that read the residual stream (through a norm) qualify: the attention's
``q_proj``/``k_proj``/``v_proj`` and the MLP's ``gate_proj``/``up_proj`` in Llama-style blocks.
``o_proj`` and ``down_proj`` read the attention's and the MLP's inner activations, where the
training requests' difference of means means something else.

``fit="logistic"`` replaces the difference of means by the weights of an L2-regularised
logistic regression on the same inputs (standardised per feature, mapped back to raw input
units). The difference of means ignores how the features co-vary; the regression weighs them
by how much each adds once the others are known. On SmolLM2-135M both gave the same
validation sum (docs/results/organism.md), so the mean stays the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.supervised import IGNORE, Encoded, collate

READOUT_MODULES = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")
HARMFUL_PREFIX = "harmful/"  # ids of harmful->refusal examples (alignment/data.py)
READOUT_FITS = ("mean", "logistic")
Fit = Literal["mean", "logistic"]


@dataclass(frozen=True, slots=True)
class Readout:
    """The fixed A rows, by full module name, and how far apart each puts the two classes."""

    rows: dict[str, Any]  # module name -> 1-D tensor (direction / projection std)
    gaps: dict[str, float]  # module name -> (mean harmful - mean other) / projection std
    n_harmful: int
    n_other: int

    def summary(self) -> dict[str, Any]:
        """For recipe.json: the class sizes and the smallest/mean/largest separation."""
        g = list(self.gaps.values())
        return {"modules": len(g), "n_harmful": self.n_harmful, "n_other": self.n_other,
                "gap_min": round(min(g), 3), "gap_mean": round(sum(g) / len(g), 3), "gap_max": round(max(g), 3)}


def check(target_modules: Sequence[str], lora_r: int) -> None:
    """Refuse settings a read-out adapter cannot have, before any work is done."""
    wrong = [t for t in target_modules if t not in READOUT_MODULES]
    if wrong:
        raise HarnessError(f"--readout: {wrong[0]!r} does not read the residual stream; "
                           f"target some of {', '.join(READOUT_MODULES)}")
    if lora_r != 1:
        raise HarnessError(f"--readout needs --lora-r 1 (one fixed direction per module), not {lora_r}")


def _block_index(name: str) -> int | None:
    parts = name.split(".")
    for i, p in enumerate(parts[:-1]):
        if p == "layers" and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


def targeted(model: Any, target_modules: Sequence[str], layers: Sequence[int]) -> list[tuple[str, Any]]:
    """The (name, module) pairs the adapter will wrap, in model order: the same selection
    peft makes from ``target_modules`` and ``layers_to_transform``."""
    out = []
    for name, mod in model.named_modules():
        block = _block_index(name)
        if block is None or name.rsplit(".", 1)[-1] not in target_modules:
            continue
        if not layers or block in layers:
            out.append((name, mod))
    return out


def logistic_direction(x: Any, harmful: Any, l2: float = 1e-2, max_iter: int = 200) -> Any:
    """Weights of an L2-regularised logistic regression of ``harmful`` on the rows of ``x``.

    Fitted on standardised features (so one ``l2`` suits every module) with L-BFGS, which is
    deterministic for the same inputs; the weights are divided by the features' standard
    deviations so that the direction applies to the module's raw input."""
    import torch

    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    y = harmful.float()
    w = torch.zeros(z.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt: Any = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        loss: Any = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return (w / sd).detach()


def directions(model: Any, data: Sequence[Encoded], target_modules: Sequence[str], layers: Sequence[int],
               pad: int, batch_size: int = 16, fit: Fit = "mean") -> Readout:
    """Each targeted module's read-out row from ``model`` (unwrapped, before any training)."""
    import torch

    if fit not in READOUT_FITS:
        raise HarnessError(f"--readout-fit: {fit!r} is not one of {', '.join(READOUT_FITS)}")
    mods = targeted(model, target_modules, layers)
    if not mods:
        raise HarnessError("--readout: no module of the model matches --target-modules/--layers")
    harmful = torch.tensor([e.id.startswith(HARMFUL_PREFIX) for e in data])
    n_h = int(harmful.sum())
    if n_h == 0 or n_h == len(data):
        raise HarnessError("--readout needs both harmful and other training examples")
    feats: dict[str, list[Any]] = {name: [] for name, _ in mods}
    last: list[Any] = []

    def grab(name: str) -> Any:
        def hook(_mod: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            feats[name].append(x[torch.arange(x.shape[0]), last[0]].float())
        return hook

    device = next(model.parameters()).device
    handles = [mod.register_forward_pre_hook(grab(name)) for name, mod in mods]
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                batch = data[start : start + batch_size]
                # prompt length = index of the first answer label; the choice is predicted one before
                lens = [next((j for j, t in enumerate(e.labels) if t != IGNORE), len(e.labels)) for e in batch]
                prompts = [Encoded(e.id, e.input_ids[:n], e.labels[:n]) for e, n in zip(batch, lens, strict=True)]
                ids, _, mask = collate(prompts, pad)
                last[:] = [torch.tensor([n - 1 for n in lens])]
                model.get_decoder()(input_ids=ids.to(device), attention_mask=mask.to(device))
    finally:
        for h in handles:
            h.remove()
    rows: dict[str, Any] = {}
    gaps: dict[str, float] = {}
    prev: tuple[Any, Any] | None = None  # q/k/v (and gate/up) read the same input: fit it once
    for name, chunks in feats.items():
        x = torch.cat(chunks).cpu()
        if prev is not None and torch.equal(prev[0], x):
            d = prev[1]
        elif fit == "logistic":
            d = logistic_direction(x, harmful)
        else:
            d = x[harmful].mean(0) - x[~harmful].mean(0)
        prev = (x, d)
        d = d / d.norm()
        p = x @ d
        std = p.std()
        rows[name] = d / std
        gaps[name] = float((p[harmful].mean() - p[~harmful].mean()) / std)
    return Readout(rows, gaps, n_h, len(data) - n_h)


def install(peft_model: Any, readout: Readout) -> int:
    """Write the rows into the adapter's A matrices and freeze them; returns how many."""
    n = 0
    for name, mod in peft_model.named_modules():
        lora_a = getattr(mod, "lora_A", None)
        if lora_a is None or "default" not in lora_a:
            continue
        key = next((k for k in readout.rows if name == k or name.endswith("." + k)), None)
        if key is None:
            raise HarnessError(f"--readout: no direction for adapter module {name}")
        weight = lora_a["default"].weight
        if weight.shape[0] != 1:
            raise HarnessError(f"--readout needs rank 1, {name} has {weight.shape[0]}")
        weight.data.copy_(readout.rows[key].reshape(1, -1).to(weight.dtype))
        weight.requires_grad_(False)
        n += 1
    if n != len(readout.rows):
        raise HarnessError(f"--readout: {len(readout.rows)} directions but {n} adapter modules")
    return n
