"""The trainers' per-epoch checkpoints (``methods/_checkpoint.py``) on real tensors and AdamW."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orbench_harness.methodkit.checkpoint import NAME, resume, save


def _train(named: dict[str, torch.Tensor], opt: torch.optim.Optimizer, steps: int) -> None:
    target = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((named["w"] - target) ** 2).sum() + named["b"].pow(2).sum()
        loss.backward()
        opt.step()


def _fresh() -> tuple[dict[str, torch.Tensor], torch.optim.Optimizer]:
    g = torch.Generator().manual_seed(0)
    named = {"w": torch.randn(2, 3, generator=g).requires_grad_(), "b": torch.randn(3, generator=g).requires_grad_()}
    return named, torch.optim.AdamW(named.values(), lr=0.1)


def test_resume_continues_as_if_never_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Weights, AdamW's moments and the history all come back: two steps, a save and two more
    steps after a restart equal four steps straight."""
    straight, opt = _fresh()
    _train(straight, opt, 4)

    named, opt = _fresh()
    _train(named, opt, 2)
    save(tmp_path, named, opt, [{"epoch": 0, "loss": 1.5}], epoch=1)
    again, opt2 = _fresh()
    history: list[dict[str, float]] = []
    assert resume(tmp_path, again, opt2, history, method="m") == 1
    assert history == [{"epoch": 0, "loss": 1.5}] and "m: resuming training after epoch 1" in capsys.readouterr().err
    _train(again, opt2, 2)
    for n in straight:
        assert torch.equal(again[n], straight[n]), n
    assert not (tmp_path / (NAME + ".tmp")).exists()


def test_nothing_to_resume_is_epoch_zero(tmp_path: Path) -> None:
    named, opt = _fresh()
    assert resume(tmp_path, named, opt, [], method="m") == 0


@pytest.mark.parametrize("damage", ["truncated", "other names", "other shape"])
def test_an_unusable_checkpoint_is_reported_and_ignored(tmp_path: Path, damage: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A file cut off by a kill, or one from another model or option set, must not be loaded
    into these weights: the trainer starts over, says why, and the weights stay as they were."""
    named, opt = _fresh()
    if damage == "other names":
        save(tmp_path, {"w": named["w"], "c": named["b"]}, opt, [], epoch=2)
    elif damage == "other shape":
        save(tmp_path, {"w": named["w"], "b": torch.zeros(4)}, opt, [], epoch=2)
    else:
        save(tmp_path, named, opt, [], epoch=2)
        data = (tmp_path / NAME).read_bytes()
        (tmp_path / NAME).write_bytes(data[: len(data) // 2])
    before = {n: t.detach().clone() for n, t in named.items()}
    history: list[dict[str, float]] = []
    assert resume(tmp_path, named, opt, history, method="m") == 0
    assert history == [] and all(torch.equal(named[n], before[n]) for n in named)
    err = capsys.readouterr().err
    assert "m: checkpoint" in err and "training from scratch" in err
