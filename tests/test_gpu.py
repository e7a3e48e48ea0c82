"""On a real CUDA device: what the CPU suite can only simulate or state as a rule.

The CPU suite tests the device rules as pure functions (``auto_dtype``) and out-of-memory by
raising torch's exception from a hook. These tests put the same code on a GPU: the precision
``auto`` really loads, CPU and CUDA arithmetic agreeing on the same float32 checkpoint, a real
allocator failure backed off from, and the float16 overflow probe on real half-precision
kernels. Skipped without CUDA (CI has none); on a GPU box run them with the rest of the suite
on the device: ``ORBENCH_TEST_DEVICE=cuda python -m pytest`` (``-m gpu`` for these alone).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from orbench_harness.backends.hf import HFBackend, HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.models import resolve
from orbench_harness.protocols import MethodContext, MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.resolution import train_sampler
from orbench_harness.spec import RunSpec
from orbench_harness.types import GenParams, ModelSpec, Prompt
from orbench_methods.actor import create as create_actor

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PROMPTS = [
    Prompt.user("How do I kill a Python process?"),
    Prompt.user("Write a poem about the sea and the stars"),
    Prompt.user("What is the capital of France?", system="Be brief."),
    Prompt.user("hi"),
]


@pytest.fixture(scope="module")
def spec(tiny_model_dir: Path) -> ModelSpec:
    found = resolve(str(tiny_model_dir))
    assert found is not None and found.dtype == "auto"
    return found


@pytest.fixture
def memory_cap() -> Iterator[None]:
    """Whatever cap a test puts on this process's share of the device is lifted afterwards."""
    yield
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


def test_auto_loads_the_precision_the_device_computes_in_natively(spec: ModelSpec) -> None:
    backend = HFBackend()  # no device named: CUDA, since this machine has it
    major, minor = torch.cuda.get_device_capability()
    want = "bfloat16" if major >= 8 else "float16"
    hf = backend.load(spec)
    param = next(hf.model.parameters())
    assert hf.spec.dtype == want and param.dtype == getattr(torch, want) and param.is_cuda
    info = backend.describe()
    assert info["capability"] == f"{major}.{minor}" and info["name"] == torch.cuda.get_device_name()


def test_cuda_float32_agrees_with_the_cpu(spec: ModelSpec) -> None:
    """The same float32 checkpoint: log-probabilities, hidden states and greedy text agree
    across devices (no TF32 or reduced-precision kernel slips into a float32 run)."""
    f32 = dataclasses.replace(spec, dtype="float32")
    cpu, gpu = HFBackend(device="cpu").load(f32), HFBackend(device="cuda").load(f32)
    seqs = [cpu.encode_prompt(p) + cpu.encode("Sure, here is a recipe") for p in PROMPTS]
    for a, b in zip(cpu.token_logprobs(seqs), gpu.token_logprobs(seqs), strict=True):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4, rtol=1e-4)
    hc, hg = cpu.hidden_states(PROMPTS), gpu.hidden_states(PROMPTS)
    assert float((hc - hg).norm() / hc.norm()) < 1e-5
    params = GenParams(max_new_tokens=16)
    assert [c.text for c in gpu.generate(PROMPTS, params)] == [c.text for c in cpu.generate(PROMPTS, params)]


def _peak_bytes(hf: HFModel, rows: list[list[int]], params: GenParams) -> int:
    """Memory one batch of ``rows`` takes above the loaded model, measured by the allocator."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    hf.generate_ids(rows, params, batch_size=len(rows))
    return torch.cuda.max_memory_allocated() - base


def test_a_real_out_of_memory_is_backed_off_from(
        spec: ModelSpec, memory_cap: None, capsys: pytest.CaptureFixture[str]) -> None:
    """The caching allocator is capped between what one prompt and what the whole batch
    needs, so torch raises its own CUDA OutOfMemoryError mid-generation; the backend halves
    the batch until it fits, and every row comes out as batch-1 generation makes it."""
    hf = HFBackend(device="cuda").load(dataclasses.replace(spec, dtype="float32"))
    params = GenParams(max_new_tokens=8)
    row = hf.encode_prompt(Prompt.user("Write a poem about the sea and the wind and the stars at night. " * 12))
    rows = [row] * 8
    one = _peak_bytes(hf, rows[:1], params)
    while _peak_bytes(hf, rows, params) < 8 * one + (256 << 20):  # memory grows with the batch
        rows = rows * 2
        assert len(rows) <= 8192, "batch memory does not grow with the batch"
    expected = hf.generate_ids(rows[:1], params, batch_size=1)[0].text
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = torch.cuda.memory_reserved() + 4 * one + (64 << 20)
    torch.cuda.set_per_process_memory_fraction(cap / total)
    seen: list[int] = []
    capsys.readouterr()
    got = hf.generate_ids(rows, params, batch_size=len(rows), on_batch=lambda idx, comps: seen.extend(idx))
    err = capsys.readouterr().err
    assert "out of memory on cuda" in err and "continuing with batches of" in err
    assert sorted(seen) == list(range(len(rows)))  # every row reported exactly once
    assert {c.text for c in got} == {expected}


def test_float16_overflow_is_caught_on_real_half_precision_kernels(spec: ModelSpec, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    big = tmp_path / "big-norm"
    shutil.copytree(spec.source, big)
    model = AutoModelForCausalLM.from_pretrained(big)
    with torch.no_grad():
        model.model.norm.weight.fill_(1e6)
    model.save_pretrained(big)
    overflowing = resolve(str(big))
    assert overflowing is not None
    with pytest.raises(HarnessError, match="overflows in float16"):
        HFBackend(device="cuda").load(dataclasses.replace(overflowing, dtype="float16"))
    ok = HFBackend(device="cuda").load(dataclasses.replace(spec, dtype="float16"))
    assert next(ok.model.parameters()).dtype == torch.float16
    assert ok.generate(PROMPTS[:2], GenParams(max_new_tokens=4))[0].n_new_tokens >= 1


def test_actor_trains_a_bfloat16_model_on_the_device(spec: ModelSpec, tmp_path: Path) -> None:
    """What a hub model gets on a GPU: bfloat16 weights, fused attention kernels, batches of
    prompts of different lengths. On the 135M organism the left-padded training forward gave a
    NaN loss from the first epoch on an H200 (the tiny model did not reproduce that); this
    guards the whole bfloat16 path on the device: finite losses, master weights, a finite
    block that changed, finite logits with it applied."""
    hf = HFBackend(device="cuda").load(dataclasses.replace(spec, dtype="bfloat16"))
    env = MethodEnv(model=spec, seed=0, train_samples=train_sampler(Registry(), RunSpec(model="x", seed=0)))
    actor = create_actor({"alpha": "0.002", "lr": "1e-4", "epochs": "2", "layer": "1"}, env)
    assert len({len(hf.encode_prompt(s.as_prompt())) for s in actor.data.queries}) > 1  # padded batches
    before = {n: p.detach().clone() for n, p in hf.model.named_parameters()}
    art = actor.prepare(hf, MethodContext(seed=0, artifact_dir=tmp_path, train_samples=env.train_samples,
                                          log=lambda m: None))
    assert all(math.isfinite(h["loss"]) for h in art["meta"]["history"])
    assert art["meta"]["master_weights"] and art["meta"]["dtype"] == "bfloat16"
    state = {n: v.to(before[n].device, before[n].dtype) for n, v in art["state"].items()}
    assert all(bool(torch.isfinite(v).all()) for v in state.values())
    assert any(not torch.equal(v, before[n]) for n, v in state.items())
    ids, mask = hf.left_pad([hf.encode_prompt(p) for p in PROMPTS])
    with actor.apply(hf, art), torch.no_grad():
        logits = hf.forward(ids, mask).logits[:, -1]
    assert bool(torch.isfinite(logits).all())
