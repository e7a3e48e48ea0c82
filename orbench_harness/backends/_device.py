"""Which device the ``hf`` backend computes on, and what that means for precision and records.

Pure rules (``auto_dtype``) are kept apart from the questions put to torch (``capability``,
``describe``) so the rules are tested on any machine and the questions on a GPU
(``tests/test_gpu.py``). torch is imported inside the functions that ask it.
"""

from __future__ import annotations

import platform

from orbench_harness.errors import HarnessError
from orbench_harness.types import Dtype


def auto_dtype(device: str, capability: tuple[int, int] | None) -> Dtype:
    """What ``auto`` means on a device: float32 on a CPU; bfloat16 on a GPU that computes in it
    natively (compute capability 8.0 on, Ampere and later); float16 on older GPUs (V100, T4),
    where bfloat16 matrix products are emulated or unsupported. A float16 load is then probed
    for overflow (``_check_finite``). ``capability`` None (unknown) assumes a current GPU."""
    if not device.startswith("cuda"):
        return "float32"
    return "float16" if capability is not None and capability[0] < 8 else "bfloat16"


def capability(device: str) -> tuple[int, int] | None:
    """The CUDA device's compute capability, or None when there is no CUDA device to ask."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return major, minor


def describe(device: str, threads: int | None = None) -> dict[str, str]:
    """The hardware behind a run, for run.json: the same checkpoint scored on an H200 in
    bfloat16 and on a CPU in float32 gives slightly different numbers, and a reader of a
    leaderboard must be able to tell which arithmetic a row came from. Informational only: it
    is not part of a run's identity, so a run interrupted on one machine resumes on another."""
    import torch

    cc = capability(device)
    if cc is not None:
        return {"device": device, "name": torch.cuda.get_device_name(device),
                "capability": f"{cc[0]}.{cc[1]}", "cuda": str(torch.version.cuda)}
    return {"device": device, "name": platform.processor() or platform.machine(),
            "threads": str(threads or torch.get_num_threads())}


def check_device(device: str) -> str:
    """``device`` when torch can compute on it here, else a one-line error before any work: a
    missing GPU or a wrong index would otherwise surface as a CUDA traceback at load time."""
    import torch

    if device == "cpu":
        return device
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise HarnessError(f"device {device!r} is not one the hf backend knows: use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise HarnessError(f"device {device!r}: torch sees no CUDA device here (torch {torch.__version__}, {build})")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise HarnessError(f"device {device!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device
