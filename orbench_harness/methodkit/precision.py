"""float32 master weights for the methods that train a 16-bit model's own weights.

On a GPU the hub models load in bfloat16 (``hf`` backend, dtype ``auto``). Its 8-bit mantissa
cannot hold an AdamW step of the papers' size: at lr 1e-5 a weight of typical magnitude
(2e-2) moves by about 5e-4 of itself, below half a unit in the last place (2e-3), so the step
rounds away. On the tiny test model in bfloat16, ACTOR moved 0.7% of its block's weights at
all at lr 1e-5, against every one in float32. The optimizer therefore steps float32 copies and
each result is cast into the model, as mixed-precision training does. LoRA adapters (peft)
and DRO's soft prompt are float32 already and do not need this.

Memory: 12 bytes per trained parameter (the master plus AdamW's two float32 moments), against
4 for moments kept in bfloat16. For ACTOR's one block of a 7B model (about 200M parameters)
that is 2.4 GB; for SFT with ``lora=false`` on the whole 7B model it is 84 GB beside the model,
more than one 80 GB GPU holds, so full fine-tuning at that size needs sharding (or LoRA, the
default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orbench_harness.errors import finite_loss

if TYPE_CHECKING:
    import torch


def float32_masters(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """float32 copies of ``params`` to optimise, or None when they are float32 already."""
    import torch

    if all(p.dtype == torch.float32 for p in params.values()):
        return None
    return {n: torch.nn.Parameter(p.detach().float().clone()) for n, p in params.items()}


def optimizer_step(opt: Any, params: Mapping[str, torch.Tensor], masters: Mapping[str, torch.Tensor] | None,
                   max_grad_norm: float = 0.0, *, where: str = "training", dtype: str | None = None,
                   device: str | None = None) -> None:
    """Clip (if asked) and step; with masters, move the gradients to them and cast back after.

    ``opt`` must have been built over ``masters`` when there are any, over ``params`` if not.
    A non-finite gradient norm stops the training before the step (``finite_loss``): a NaN
    gradient can come with a finite loss, and one step of it makes every weight NaN.
    ``max_grad_norm`` 0 (or less) measures the norm without clipping. ``dtype`` and ``device``
    are what that error names (``check_finite``).
    """
    import torch

    if masters is not None:
        for n, p in params.items():
            masters[n].grad = None if p.grad is None else p.grad.float()
            p.grad = None
    trained = masters if masters is not None else params
    limit = max_grad_norm if max_grad_norm > 0 else float("inf")  # inf: measure, do not clip
    norm = torch.nn.utils.clip_grad_norm_(list(trained.values()), limit)
    check_finite(float(norm), params, where, what="the gradient norm", dtype=dtype, device=device)
    opt.step()
    copy_into_model(params, masters)


def check_finite(value: float, params: Mapping[str, torch.Tensor], where: str,
                 what: str = "the training loss", *, dtype: str | None = None, device: str | None = None) -> float:
    """``finite_loss`` with the precision and device read off the trained parameters, unless
    given: a trainer of float32 extras beside a 16-bit model (a soft prompt, LoRA) names the
    model's precision, the one the advice to load in float32 is about."""
    first = next(iter(params.values()))
    return finite_loss(value, where, dtype=dtype or str(first.dtype).removeprefix("torch."),
                       device=device or str(first.device), what=what)


def copy_into_model(params: Mapping[str, torch.Tensor], masters: Mapping[str, torch.Tensor] | None) -> None:
    """Cast the masters into the model's parameters (after a step, or after a resume restored
    the masters); nothing without masters."""
    import torch

    if masters is None:
        return
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(masters[n])
