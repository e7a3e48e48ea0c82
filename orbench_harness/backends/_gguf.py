"""GGUF models (the embedded default ships as one) dequantised once into a safetensors directory.

transformers loads a GGUF file (``gguf_file=``) but marks the result as quantised and refuses
``save_pretrained``, so the model is rebuilt from its config and given the loaded state dict,
then written into the user cache dir, atomically, so two processes converting at once are safe.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from orbench_harness.console import info
from orbench_harness.paths import cache_dir
from orbench_harness.types import ModelSpec


def convert_gguf(spec: ModelSpec) -> Path:
    """Dequantise a GGUF model to a safetensors directory in the cache (once, atomically)."""
    assert spec.gguf_file
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{spec.gguf_file}-{spec.revision}")
    target = cache_dir() / "models" / slug
    if (target / "config.json").is_file():
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    info(f"converting {spec.gguf_file} to safetensors (once) -> {target}")
    tok = AutoTokenizer.from_pretrained(spec.source, gguf_file=spec.gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(spec.source, gguf_file=spec.gguf_file)
    config = AutoConfig.from_pretrained(spec.source, gguf_file=spec.gguf_file)
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():  # lost a race to another process: fine
            raise
    return target
