"""One optimizer step and a training run's bookkeeping, written once for every hand-written loop.

ACTOR, SFT, DRO's soft prompt, SafeDecoding's expert and ``harness align`` each train with their
own loss, data order and epoch record, but the step around the loss is the same, and each copy
was a place for the order to drift: check that the loss is finite (a NaN stops the run before it
reaches the weights, ``errors.finite_loss``), clear the gradients, backward, clip and check the
gradient norm, step (through float32 masters for a 16-bit model, ``precision``), then the
learning-rate schedule. Around the steps: torch's out-of-memory error as one line naming the
option to lower (``errors.training_memory``), a progress bar, and the per-epoch checkpoint and
its resume (``checkpoint``). A loop built on ``Trainer`` states its loss and its record only.

The order of the operations is the contract: each trainer's weights came out bit-identical
to those of the loop it replaced, and a resumed run's equal an uninterrupted one's (the
kill-and-resume tests). Gradients are cleared just before each backward pass, so a gradient
left by whatever ran before cannot leak into the first step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.console import progress
from orbench_harness.errors import training_memory
from orbench_harness.methodkit import checkpoint
from orbench_harness.methodkit.precision import check_finite, copy_into_model, optimizer_step

if TYPE_CHECKING:
    import torch

History = list[dict[str, float]]
# checkpoint.save's shape; trainers pass their module's own name for it, which tests patch
SaveCheckpoint = Callable[[Path, Mapping[str, "torch.Tensor"], Any, History, int], None]


class Trainer:
    """The optimizer of one training run and the steps it takes.

    ``params`` are the tensors the loss differentiates (the model's own, a soft prompt, LoRA
    matrices); ``masters`` their float32 copies when the optimizer steps those instead
    (``precision.float32_masters``), and then ``opt`` must be built over the masters.
    ``max_grad_norm`` 0 measures the gradient norm (it is still checked) without clipping.
    ``schedule`` is stepped after every optimizer step. ``precision`` is the (dtype, device) a
    divergence error names; None reads them off ``params``. ``method`` names the run in the
    out-of-memory error and the resume messages; ``save`` writes a checkpoint.
    """

    def __init__(self, method: str, opt: Any, params: Mapping[str, torch.Tensor],
                 masters: Mapping[str, torch.Tensor] | None = None, *, max_grad_norm: float = 0.0,
                 schedule: Any = None, precision: tuple[str, str] | None = None,
                 save: SaveCheckpoint = checkpoint.save) -> None:
        self.method = method
        self.opt = opt
        self.params = params
        self.masters = masters
        self.max_grad_norm = max_grad_norm
        self.schedule = schedule
        self.dtype: str | None = precision[0] if precision is not None else None
        self.device: str | None = precision[1] if precision is not None else None
        self._save = save
        self._advance: Callable[[], None] | None = None

    @property
    def trained(self) -> Mapping[str, torch.Tensor]:
        """What the optimizer steps, and so what a checkpoint holds: the masters if any."""
        return self.masters if self.masters is not None else self.params

    # -- the run ----------------------------------------------------------------------------
    def resume(self, artifact_dir: Path, history: History) -> int:
        """Restore the last checkpoint (``checkpoint.resume``) and cast restored masters into
        the model; returns the number of epochs already done."""
        done = checkpoint.resume(artifact_dir, self.trained, self.opt, history, method=self.method)
        copy_into_model(self.params, self.masters)
        return done

    def save(self, artifact_dir: Path, history: History, epochs: int) -> None:
        """The checkpoint after ``epochs`` finished epochs."""
        self._save(artifact_dir, self.trained, self.opt, history, epochs)

    @contextmanager
    def running(self, device: str, fix: str, *, label: str | None = None, total: int = 0,
                done: int = 0) -> Iterator[None]:
        """The training's extent: out-of-memory inside it is one line naming ``fix`` (the option
        to lower), and with a ``label`` a progress bar of ``total`` steps, ``done`` of them
        already (a resumed run), advanced by each ``update``."""
        if label is None:
            with training_memory(self.method, device, fix):
                yield
            return
        with progress() as prog, training_memory(self.method, device, fix):
            task = prog.add_task(label, total=total, completed=done)
            self._advance = lambda: prog.advance(task)
            try:
                yield
            finally:
                self._advance = None

    # -- one step ---------------------------------------------------------------------------
    def finite(self, loss: torch.Tensor, where: str) -> float:
        """The loss's value; a NaN or infinite one stops the training here (``where`` says
        which epoch and step)."""
        return check_finite(float(loss.detach()), self.params, where, dtype=self.dtype, device=self.device)

    def zero_grad(self) -> None:
        """Clear the gradients before a step's first backward pass."""
        self.opt.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor, where: str) -> float:
        """Check one (micro-batch) loss and add its gradient; returns its value. A loop that
        accumulates calls ``zero_grad``, this per part, then ``update``."""
        value = self.finite(loss, where)
        loss.backward()  # type: ignore[no-untyped-call]
        return value

    def update(self, where: str) -> None:
        """Clip, check the gradient norm and step (through the masters), then the schedule."""
        optimizer_step(self.opt, self.params, self.masters, self.max_grad_norm, where=where, dtype=self.dtype,
                       device=self.device)
        if self.schedule is not None:
            self.schedule.step()
        if self._advance is not None:
            self._advance()

    def step(self, loss: torch.Tensor, where: str) -> float:
        """One whole step on ``loss``: check, clear, backward, ``update``; returns the loss's value."""
        value = self.finite(loss, where)
        self.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        self.update(where)
        return value
