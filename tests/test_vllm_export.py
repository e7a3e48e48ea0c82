"""The vLLM path up to the engine call, and `harness export` round-tripping through transformers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from _device import load as load_on_device
from orbench_harness.backends.vllm_backend import build_requests, completion_from_output, sampling_kwargs
from orbench_harness.cli import main
from orbench_harness.cli.export import export
from orbench_harness.models import resolve
from orbench_harness.protocols import MethodContext, MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.resolution import artifact_dir, train_sampler
from orbench_harness.spec import RunSpec
from orbench_harness.types import GenParams
from orbench_methods.actor import create as create_actor


def test_sampling_params_mirror_the_hf_settings() -> None:
    kw = sampling_kwargs(GenParams(max_new_tokens=32, seed=7), eos_ids=[2, 5])
    assert kw == {"max_tokens": 32, "temperature": 0.0, "top_p": 1.0, "seed": 7, "stop_token_ids": [2, 5],
                  "skip_special_tokens": True}
    assert sampling_kwargs(GenParams(temperature=0.7, top_p=0.9), [2])["top_p"] == 0.9


def test_requests_are_pretokenised_and_left_truncated() -> None:
    reqs, trunc = build_requests([[1, 2, 3, 4, 5], [9]], budget=3)
    assert reqs == [{"prompt_token_ids": [3, 4, 5]}, {"prompt_token_ids": [9]}]
    assert trunc == [True, False]


def test_completion_from_a_request_output() -> None:
    out = SimpleNamespace(prompt_token_ids=[1, 2, 3],
                          outputs=[SimpleNamespace(text="Sure", token_ids=[7, 8], finish_reason="length")])
    c = completion_from_output(out, truncated=False, max_new_tokens=2)
    assert (c.text, c.n_prompt_tokens, c.n_new_tokens, c.finish_reason) == ("Sure", 3, 2, "length")


def test_hook_method_is_refused_on_vllm_before_work(tiny_model_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", str(tiny_model_dir), "--method", "actor", "--backend", "vllm",
                 "--out", str(tmp_path / "r")])
    assert code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "which backend 'vllm' lacks" in err and "--backend hf" in err and "harness export" in err


def test_exported_actor_model_equals_the_applied_method(tiny_model_dir: Path, tmp_path: Path) -> None:
    args = {"alpha": "0.01", "lr": "3e-3", "epochs": "1", "layer": "1"}
    out = export(str(tiny_model_dir), "actor", args, tmp_path / "exported")
    meta = json.loads((out / "export.json").read_text())
    assert meta["method"] == "actor" and len(meta["fingerprint"]) == 64
    spec = resolve(str(tiny_model_dir))
    assert spec is not None
    base = load_on_device(spec)
    exported = load_on_device(resolve(str(out)))  # type: ignore[arg-type]
    sampler = train_sampler(Registry(), RunSpec(model="x"))
    actor = create_actor(args, MethodEnv(spec, 0, sampler))
    assert actor.fingerprint() == meta["fingerprint"]
    ctx = MethodContext(seed=0, artifact_dir=artifact_dir(spec, actor), train_samples=sampler, log=lambda m: None)
    artifact = actor.prepare(base, ctx)  # cached by the export: loaded, not retrained
    ids = torch.tensor([base.encode("hello world and the sea")], device=base.device)
    with torch.no_grad():
        got = exported.model(input_ids=ids).logits
        plain = base.model(input_ids=ids).logits
        with actor.apply(base, artifact):
            applied = base.model(input_ids=ids).logits
    assert not torch.allclose(got, plain)  # the method changed the weights
    assert torch.allclose(got, applied, atol=1e-5, rtol=1e-5)
