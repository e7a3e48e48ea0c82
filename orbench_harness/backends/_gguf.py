"""GGUF models (the embedded default ships as one) dequantised once into a safetensors directory.

transformers loads a GGUF file (``gguf_file=``) but marks the result as quantised and refuses
``save_pretrained``, so the model is rebuilt from its config and given the loaded state dict,
then written into the user cache dir, atomically, so two processes converting at once are safe.
The temporary directory is locked while written and removed if the conversion fails or is
interrupted; one a killed process left behind is removed by a later call (``scratch``). A full
disk is reported as such (safetensors' own error would be a traceback).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from orbench_harness.console import info, warn
from orbench_harness.paths import cache_dir
from orbench_harness.scratch import DISK_FULL_SIGNS, locked_tempdir, remove_stale
from orbench_harness.types import ModelSpec


def convert_gguf(spec: ModelSpec) -> Path:
    """Dequantise a GGUF model to a safetensors directory in the cache (once, atomically)."""
    assert spec.gguf_file
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{spec.gguf_file}-{spec.revision}")
    target = cache_dir() / "models" / slug
    for gone in remove_stale(target.parent):
        warn(f"removed {gone.path} ({gone.size / 1e6:.0f} MB), left by an interrupted model conversion")
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
    try:
        with locked_tempdir(target.parent) as tmp:
            fresh.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            os.replace(tmp, target)
    except Exception as e:  # the temporary is gone already (locked_tempdir)
        if (target / "config.json").is_file():  # lost a race to another process: fine
            return target
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        if any(sign in str(e) for sign in DISK_FULL_SIGNS):  # safetensors' error (Rust) or another writer's
            raise OSError(errno.ENOSPC, "No space left on device", str(target)) from e
        raise
    return target
