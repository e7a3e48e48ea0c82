"""Shared fixtures: an isolated cache per test, a tiny real model, the shared datasets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from _device import load as load_on_device
from orbench_harness.models import resolve
from orbench_harness.testing import make_tiny_model

if TYPE_CHECKING:
    from orbench_harness.backends.hf import HFModel

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted models shared by all tests of a session (GGUF conversion takes ~30 s)."""
    env = os.environ.get("ORBENCH_TEST_MODELS_DIR")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache dir (with the session's converted models linked in)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(models_dir, target_is_directory=True)
    monkeypatch.setenv("ORBENCH_CACHE_DIR", str(cache))
    monkeypatch.setenv("ORBENCH_NO_PROGRESS", "1")
    monkeypatch.delenv("ORBENCH_DATA_DIR", raising=False)
    return cache


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 4-layer Llama with a ChatML template, as a local model directory."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_model_no_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same without a chat template (for the error path)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-nt") / "tiny-nt", chat_template=False)


@pytest.fixture(scope="module")
def hf(tiny_model_dir: Path) -> HFModel:
    """The tiny model loaded as a run loads it (on ``ORBENCH_TEST_DEVICE``), once per test
    module: a module's tests share it, so a test that changes its weights must restore them."""
    spec = resolve(str(tiny_model_dir))
    assert spec is not None
    return load_on_device(spec)


@pytest.fixture(scope="module")
def raw_model(tiny_model_dir: Path) -> tuple[Any, Any]:
    """The same weights loaded straight through transformers (model, tokenizer) on the CPU in
    float32: the independent computation a capability metric is checked against."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures(...)``):
    on a CPU shared with other jobs, the tiny model's many small passes run several times
    faster on one thread than on several."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_datasets() -> Path:
    """``../shared/datasets``; tests that need it skip when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS
