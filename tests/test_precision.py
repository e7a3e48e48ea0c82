"""ACTOR and full-weight SFT train a bfloat16 model (what the hub models load as on a GPU) as
far as a float32 one.

AdamW steps of the papers' size round away on bfloat16 weights unless the optimizer keeps
float32 master copies (``methods/_precision.py``). The tiny model is loaded in bfloat16 on the
CPU, which exercises the same arithmetic.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from _device import load as load_on_device
from _interrupt import interrupt_after_first_checkpoint
from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError, TrainingDiverged, TrainingOutOfMemory, training_memory
from orbench_harness.methodkit.activations import block_output_last_token
from orbench_harness.methodkit.pools import TrainData
from orbench_harness.models import resolve
from orbench_harness.testing import method_context, method_env
from orbench_harness.types import Sample
from orbench_methods.actor import create
from orbench_methods.actor import training as actor_train
from orbench_methods.actor.anchors import refusal_vector
from orbench_methods.sft import Sft, SftConfig

ARGS = {"alpha": "0.002", "lr": "1e-4", "epochs": "2", "layer": "1"}


def _load(model_dir: Path, dtype: str) -> HFModel:
    spec = resolve(str(model_dir))
    assert spec is not None
    return load_on_device(dataclasses.replace(spec, dtype=dtype))


def _delta(hf: HFModel, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The trained block's change, flattened, in float32."""
    params = dict(hf.model.named_parameters())
    return torch.cat([(v.float().cpu() - params[n].detach().float().cpu()).flatten() for n, v in sorted(state.items())])


@pytest.fixture(scope="module")
def bf16(tiny_model_dir: Path) -> HFModel:
    hf = _load(tiny_model_dir, "bfloat16")
    assert next(hf.model.parameters()).dtype == torch.bfloat16
    return hf


def _benign_shift(hf: HFModel, tmp: Path) -> tuple[float, torch.Tensor]:
    """Train; return the mean move of the benign training queries along the untrained r
    (ACTOR pushes them against it) and the block's weight change."""
    actor = create({**ARGS, "lr": "3e-4"}, method_env())
    r = refusal_vector(hf, actor.data, 1).float()
    rows = [hf.encode_prompt(s.as_prompt()) for s in actor.data.queries]
    benign = torch.tensor(actor.data.signs) < 0
    before = (block_output_last_token(hf, rows, 1).float() @ r).cpu()
    art = actor.prepare(hf, method_context(tmp))
    with actor.apply(hf, art):
        after = (block_output_last_token(hf, rows, 1).float() @ r).cpu()
    return float((after - before)[benign].mean()), _delta(hf, art["state"])


def test_bfloat16_training_moves_the_queries_like_float32(tiny_model_dir: Path, bf16: HFModel,
                                                          tmp_path: Path) -> None:
    """Without master weights the bf16 block moved the benign queries a seventh as far as
    float32 did (-28 against -197 along r) and its weight change pointed elsewhere (cosine
    0.37); with them, -183 and 0.91."""
    want_shift, want_delta = _benign_shift(_load(tiny_model_dir, "float32"), tmp_path / "fp32")
    got_shift, got_delta = _benign_shift(bf16, tmp_path / "bf16")
    assert want_shift < 0
    assert got_shift < 0.8 * want_shift
    assert torch.nn.functional.cosine_similarity(got_delta, want_delta, dim=0) > 0.8


def test_bfloat16_training_resumes_from_its_float32_masters(bf16: HFModel, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed bf16 training resumes to the uninterrupted result: the checkpoint keeps the
    float32 masters, so nothing is lost to rounding at the restart."""
    args = {**ARGS, "epochs": "3"}
    full = create(args, method_env()).prepare(bf16, method_context(tmp_path / "full"))
    interrupt_after_first_checkpoint(monkeypatch, actor_train)
    with pytest.raises(KeyboardInterrupt):
        create(args, method_env()).prepare(bf16, method_context(tmp_path / "killed"))
    ck = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in ck["state"].values())
    monkeypatch.undo()
    resumed = create(args, method_env()).prepare(bf16, method_context(tmp_path / "killed"))
    for name, tensor in full["state"].items():
        assert tensor.dtype == torch.bfloat16
        assert torch.equal(resumed["state"][name], tensor), name


def test_a_16bit_artifact_from_before_master_weights_is_retrained(bf16: HFModel, tmp_path: Path) -> None:
    """Artifacts record how they were trained; a 16-bit one without that record is stale."""
    first = create(ARGS, method_env()).prepare(bf16, method_context(tmp_path / "a"))
    assert first["meta"]["master_weights"] is True and first["meta"]["dtype"] == "bfloat16"
    assert actor_train.load_artifact(tmp_path / "a") is not None  # cached as it is
    meta = tmp_path / "a" / "meta.json"
    old = {k: v for k, v in json.loads(meta.read_text()).items() if k not in ("master_weights", "dtype")}
    meta.write_text(json.dumps(old))
    assert actor_train.load_artifact(tmp_path / "a") is None


def _sft_run(hf: HFModel, tmp: Path) -> tuple[float, list[float]]:
    """Full-weight SFT (12 steps at lr 1e-4); the weights' change and the per-epoch losses."""
    data = TrainData((Sample("h", "How do I kill a Python process?", "refuse"),
                      Sample("b", "Write a poem about the sea.", "comply"),
                      Sample("c", "What is the capital of France?", "comply")), (1, -1, -1), (), (), ("test",))
    before = {n: p.detach().float().clone() for n, p in hf.model.named_parameters()}
    sft = Sft(SftConfig(lora=False, lr=1e-4, epochs=4, batch_size=1, answer_tokens=6), data, 0, "self")
    art = sft.prepare(hf, method_context(tmp))
    with sft.apply(hf, art):
        moved = sum(float((p.detach().float() - before[n]).norm() ** 2) for n, p in hf.model.named_parameters())
    return moved ** 0.5, [h["loss"] for h in art["meta"]["history"]]


def test_bfloat16_full_fine_tuning_learns_like_float32(tiny_model_dir: Path, bf16: HFModel, tmp_path: Path) -> None:
    """Without master weights the bf16 model's weights moved 27% as far as in float32 and its
    loss fell by 0.07; with them, 92% and 0.54 (float32: 1.13)."""
    want, _ = _sft_run(_load(tiny_model_dir, "float32"), tmp_path / "fp32")
    got, losses = _sft_run(bf16, tmp_path / "bf16")
    assert got > 0.8 * want
    assert losses[-1] < losses[0] - 0.25


def test_a_nan_gradient_stops_actor_before_it_reaches_the_weights(bf16: HFModel, tmp_path: Path) -> None:
    """The H200 failure's shape, made on the CPU: the loss is finite but a gradient is NaN (as
    left-padded bfloat16 training did on a GPU). One step of it would make
    every trained weight NaN and the cached block would answer nothing; instead the training
    stops at that step with the precision named, the model keeps its weights, and no trained
    block is left to be loaded as if it were good."""
    actor = create(ARGS, method_env())
    before = {n: p.detach().clone() for n, p in bf16.model.named_parameters()}
    weight = bf16.layers[1].mlp.down_proj.weight
    steps: list[int] = []

    def poison(grad: torch.Tensor) -> torch.Tensor:
        steps.append(1)
        return grad * float("nan") if len(steps) == 3 else grad

    handle = weight.register_hook(poison)
    art = tmp_path / "nan-grad"
    try:
        with pytest.raises(TrainingDiverged, match=r"actor: epoch 1, step 3: the gradient norm became nan "
                                                   r"\(bfloat16 on (cpu|cuda)"):
            actor.prepare(bf16, method_context(art))
    finally:
        handle.remove()
    assert not (art / "trained.safetensors").exists()
    assert all(torch.equal(p, before[n]) for n, p in bf16.model.named_parameters())
    assert all(bool(torch.isfinite(p).all()) for p in bf16.model.parameters())


def test_a_nan_loss_stops_sft_with_the_step_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A forward pass that turns NaN during training (not while the references are generated)
    stops full-weight SFT at that step instead of training on it."""
    hf = _load(tiny_model_dir, "float32")
    data = TrainData((Sample("h", "How do I kill a Python process?", "refuse"),
                      Sample("b", "Write a poem about the sea.", "comply")), (1, -1), (), (), ("test",))
    sft = Sft(SftConfig(lora=False, lr=1e-3, epochs=2, batch_size=2, answer_tokens=6), data, 0, "self")

    def poison(module: torch.nn.Module, args: tuple[object, ...], output: torch.Tensor) -> torch.Tensor | None:
        return output * float("nan") if torch.is_grad_enabled() else None

    handle = hf.model.lm_head.register_forward_hook(poison)
    try:
        with pytest.raises(TrainingDiverged, match=r"sft: epoch 1, step 1: the training loss became nan"):
            sft.prepare(hf, method_context(tmp_path / "sft"))
    finally:
        handle.remove()
    assert not list((tmp_path / "sft").glob("*.safetensors"))


@pytest.mark.parametrize("raised", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                                                 "can't allocate memory: you tried to allocate 8589934592 bytes")])
def test_training_memory_turns_out_of_memory_into_a_user_error(raised: RuntimeError) -> None:
    with pytest.raises(TrainingOutOfMemory) as info, training_memory("m", "cuda:0", "lower m:batch_size"):
        raise raised
    assert isinstance(info.value, HarnessError)
    assert str(info.value) == "m: out of memory on cuda:0 while training; lower m:batch_size"


def test_training_memory_lets_other_errors_through() -> None:
    with pytest.raises(RuntimeError, match="size mismatch"), training_memory("m", "cpu", "x"):
        raise RuntimeError("size mismatch")
