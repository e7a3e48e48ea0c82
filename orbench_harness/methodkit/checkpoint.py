"""Per-epoch training checkpoints shared by the trainers (ACTOR, SFT, DRO).

A 6-hour run killed in its last epoch should lose one epoch, not six hours: after each epoch
the trained tensors, the optimizer state and the loss history are written to
``checkpoint.pt`` in the method's artifact directory (through a temporary file, so a kill
mid-write leaves the previous checkpoint whole). On the next run the trainer resumes after
the last saved epoch. A checkpoint that cannot be read, or that holds other tensors (another
model, another option that changed what trains), is reported and ignored: training starts
over rather than crash or, worse, continue from the wrong weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbench_harness.console import info, warn
from orbench_harness.scratch import writing

if TYPE_CHECKING:
    import torch

NAME = "checkpoint.pt"


def save(d: Path, named: Mapping[str, torch.Tensor], opt: Any, history: list[dict[str, float]],
         epoch: int) -> None:
    """Write the tensors (float32 masters when a trainer keeps them), optimizer and history
    after ``epoch`` epochs."""
    import torch

    tmp = d / (NAME + ".tmp")
    try:
        with writing(tmp):
            torch.save({"epoch": epoch, "state": {n: t.detach().cpu() for n, t in named.items()},
                        "optim": opt.state_dict(), "history": history}, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous checkpoint stays whole
        raise
    tmp.replace(d / NAME)


def resume(d: Path, named: Mapping[str, torch.Tensor], opt: Any, history: list[dict[str, float]], *,
           method: str) -> int:
    """Restore the last checkpoint into ``named``, ``opt`` and ``history`` if one fits;
    returns the number of epochs already done (0 when there is nothing to resume)."""
    import torch

    path = d / NAME
    if not path.is_file():
        return 0
    try:
        ck = torch.load(path, weights_only=True)
        state = ck["state"]
        if set(state) != set(named):
            raise ValueError("it holds other parameters")
        bad = next((n for n, t in named.items() if tuple(state[n].shape) != tuple(t.shape)), None)
        if bad is not None:
            raise ValueError(f"{bad} has shape {tuple(state[bad].shape)}, not {tuple(named[bad].shape)}")
    except Exception as e:  # cut off by a kill, or another model: start over rather than crash
        warn(f"{method}: checkpoint {path} unusable ({e}); training from scratch")
        return 0
    with torch.no_grad():
        for n, t in named.items():
            t.copy_(state[n])
    opt.load_state_dict(ck["optim"])
    history.extend(ck["history"])
    info(f"{method}: resuming training after epoch {ck['epoch']}")
    return int(ck["epoch"])


def discard(d: Path) -> None:
    """Remove the checkpoint once the finished artifact is saved. Called after the save, so a
    kill in between leaves a stale checkpoint beside a complete artifact, which the next run
    never reads (it finds the artifact first), rather than no checkpoint and no artifact."""
    (d / NAME).unlink(missing_ok=True)
