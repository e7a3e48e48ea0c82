"""RunSpec: everything that defines a run, and the run.json metadata built from it."""

from __future__ import annotations

import argparse
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from orbench_harness.cache import cache_key
from orbench_harness.errors import HarnessError
from orbench_harness.protocols import Split
from orbench_harness.types import DTYPES, BenchmarkKind, Dtype

# Over-refusal and safety sets are judged on the opening of the answer (XSTest's string match
# reads a prefix; the ACTOR measurements used the first 24 tokens); 64 tokens leaves an LLM
# judge enough to see a partial refusal. Recorded in run.json and overridable.
# The default judge: the offline classifier agrees with XSTest's human labels better than
# string match does on models it was not trained on (leave-one-model-out binary accuracy
# 0.9296 vs 0.896, kappa 0.858 vs 0.791; judges/orbench_judges/artifacts/README.md), needs no network.
DEFAULT_JUDGE = "classifier"
DEFAULT_MAX_NEW_TOKENS: dict[BenchmarkKind, int] = {"over_refusal": 64, "safety": 64, "capability": 256}
# The batch size of passes that ``--batch-size auto`` does not measure (log-probability scoring,
# whose memory grows with whole sequences, not with new tokens) and of backends that cannot.
FALLBACK_BATCH_SIZE = 8


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A run: model x method x benchmarks x judge, with generation settings and seed."""

    model: str
    method: str = "none"
    benchmarks: tuple[str, ...] = ("demo",)
    judge: str = DEFAULT_JUDGE
    backend: str = "hf"
    method_args: Mapping[str, str] = field(default_factory=dict)
    judge_args: Mapping[str, str] = field(default_factory=dict)
    backend_args: Mapping[str, str] = field(default_factory=dict)
    split: Split = "test"
    limit: int | None = None
    seed: int = 0
    batch_size: int | Literal["auto"] = "auto"  # auto: measured by the backend (``auto_batch_size``)
    judge_batch_size: int = 32
    max_new_tokens: int | None = None
    data_dir: Path | None = None
    chat_template: str | None = None
    dtype: Dtype | None = None
    max_unparsed: int | None = None  # fail the run when more verdicts than this are unparsed
    # the named setup whose options the method args hold (``setups.ResolvedSetup.record``):
    # recorded in run.json, not part of the run's identity (the options it set are)
    setup: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in DTYPES:
            raise HarnessError(f"--dtype must be {', '.join(DTYPES[:-1])} or {DTYPES[-1]} (got {self.dtype!r})")
        if self.limit is not None and self.limit < 1:
            raise HarnessError(f"--limit must be a positive integer (got {self.limit})")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise HarnessError(f"--batch-size must be a positive integer or auto (got {self.batch_size})")
        if self.judge_batch_size < 1:
            raise HarnessError(f"--judge-batch-size must be a positive integer (got {self.judge_batch_size})")
        if self.max_new_tokens is not None and not 1 <= self.max_new_tokens <= 32768:
            raise HarnessError(f"--max-new-tokens must be in 1..32768 (got {self.max_new_tokens})")
        if self.max_unparsed is not None and self.max_unparsed < 0:
            raise HarnessError(f"--max-unparsed must be 0 or more (got {self.max_unparsed})")
        if self.split not in ("train", "test", "all"):
            raise HarnessError(f"--split must be train, test or all (got {self.split!r})")

    def fixed_batch_size(self, default: int = FALLBACK_BATCH_SIZE) -> int:
        """``batch_size``, or ``default`` where it is ``auto`` and nothing measured one (passes
        other than generation, backends without ``auto_batch_size``)."""
        return default if self.batch_size == "auto" else self.batch_size

    def max_new_tokens_for(self, kind: BenchmarkKind) -> int:
        """The generation budget for a benchmark kind."""
        return self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[kind]

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for run.json."""
        d = asdict(self)
        d["benchmarks"] = list(self.benchmarks)
        d["data_dir"] = str(self.data_dir) if self.data_dir else None
        for k in ("method_args", "judge_args", "backend_args"):
            d[k] = dict(d[k])
        return d


def parse_batch_size(text: str) -> int | Literal["auto"]:
    """``--batch-size``: ``auto`` or a positive integer (an argparse ``type``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto (got {text!r})")
    return value


def parse_kv(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``key=value`` strings (from ``--method-arg`` etc.) into a dict, with clear errors."""
    out: dict[str, str] = {}
    for raw in pairs or []:
        for item in raw.split(",") if "," in raw and "=" in raw.split(",")[-1] else [raw]:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise HarnessError(f"malformed {flag} {item!r}: expected key=value")
            if key.strip() in out:
                raise HarnessError(f"{flag} {key.strip()!r} given twice")
            out[key.strip()] = value.strip()
    return out


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine results."""
    out = {"python": platform.python_version()}
    for pkg in ("orbench-harness", "torch", "transformers", "pluggy", "gguf", "peft", "openai", "vllm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_sha() -> str | None:
    """The harness checkout's commit, when run from a git checkout."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None


# RunSpec fields that change how a run is computed but not what it produces
NOT_IN_IDENTITY = ("batch_size", "judge_batch_size", "data_dir", "backend_args", "max_unparsed", "setup")


def identity(spec: RunSpec, model_key: Mapping[str, Any], method_fp: str, judge_id: str) -> str:
    """What makes two runs the same run (batch size and output dir excluded)."""
    return identity_of(spec.to_json(), model_key, method_fp, judge_id)


def identity_of(spec_json: Mapping[str, Any], model_key: Mapping[str, Any], method_fp: str, judge_id: str) -> str:
    """``identity`` from a spec as run.json records it (``RunSpec.to_json``), so a run directory's
    recorded identity can be checked against its recorded spec (``harness doctor``)."""
    d = {k: v for k, v in spec_json.items() if k not in NOT_IN_IDENTITY}
    if d.get("dtype") is None:  # not given: runs from before --dtype keep their identity
        d.pop("dtype", None)
    return cache_key("run", {"spec": d, "model": dict(model_key), "method": method_fp, "judge": judge_id})


def command_line() -> str:
    """The command that started this process (for run.json), quoted so a shell can run it again."""
    return shlex.join(sys.argv)
