"""A uniform soup of LoRA adapters, stored exactly as one wider LoRA adapter.

Averaging the weights of models fine-tuned from one base ("model soups", Wortsman et al.,
ICML 2022) keeps what the runs share and shrinks what each run learned by chance. For the
organism that is the question worth asking: two seeds of one recipe differ by about two
points on every profile number (``docs/results/organism.md``), so a soup tests
whether those seed-specific refusals are noise that averaging removes. (Measured: they are
not. Seeds miss mostly the same prompts, and each soup lands on its members' trade-off line.)

Averaging the factors ``A`` and ``B`` of LoRA adapters separately would not average their
updates (``mean(B) @ mean(A) != mean(B @ A)``). Stacking them does, exactly: with
``A' = [A_1; ...; A_k]`` (rank ``k * r``) and ``B' = [B_1, ..., B_k] / k``,
``B' @ A' = (B_1 A_1 + ... + B_k A_k) / k``. Keeping ``lora_alpha / r`` fixed (alpha times k)
keeps peft's scaling, so the soup's weight update is the mean of the members' updates and
loads like any adapter (``--model DIR``). rsLoRA (scaling alpha / sqrt(r)) and DoRA (a
magnitude vector that does not stack) are refused rather than approximated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orbench_harness.alignment.recipe import adapter_revision, sha256_bytes
from orbench_harness.errors import HarnessError

# Config fields every member must share for the stacked adapter to be their mean.
SHARED_FIELDS = ("base_model_name_or_path", "r", "lora_alpha", "target_modules", "peft_type",
                 "use_rslora", "use_dora", "bias", "fan_in_fan_out", "layers_to_transform",
                 "rank_pattern", "alpha_pattern", "modules_to_save")


def _read_config(adapter: Path) -> dict[str, Any]:
    path = adapter / "adapter_config.json"
    if not path.is_file():
        raise HarnessError(f"{adapter}: no adapter_config.json (not a peft adapter directory)")
    if not (adapter / "adapter_model.safetensors").is_file():
        raise HarnessError(f"{adapter}: no adapter_model.safetensors")
    try:
        conf: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: malformed JSON ({e.msg}, line {e.lineno})") from None
    return conf


def _check_members(configs: Sequence[dict[str, Any]], adapters: Sequence[Path]) -> None:
    first = configs[0]
    if first.get("peft_type") != "LORA":
        raise HarnessError(f"{adapters[0]}: peft_type {first.get('peft_type')!r}; only LoRA adapters can be souped")
    if first.get("use_rslora") or first.get("use_dora"):
        raise HarnessError(f"{adapters[0]}: rsLoRA and DoRA adapters do not stack into an exact mean")
    if first.get("modules_to_save"):
        raise HarnessError(f"{adapters[0]}: adapters with modules_to_save are not supported")
    for conf, path in zip(configs[1:], adapters[1:], strict=True):
        for key in SHARED_FIELDS:
            a, b = first.get(key), conf.get(key)
            if key == "target_modules" and isinstance(a, list) and isinstance(b, list):
                a, b = sorted(a), sorted(b)
            if a != b:
                raise HarnessError(f"{path}: {key} is {b!r}, {adapters[0]} has {a!r}; members must match")


def stack(tensors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The stacked factors of k adapters' state dicts: A rows concatenated, B columns / k."""
    import torch

    keys = set(tensors[0])
    for t in tensors[1:]:
        if set(t) != keys:
            raise HarnessError("the adapters hold different LoRA modules; members must match")
    k = len(tensors)
    out: dict[str, Any] = {}
    for key in sorted(keys):
        parts = [t[key].float() for t in tensors]
        if ".lora_A." in key:
            out[key] = torch.cat(parts, dim=0)
        elif ".lora_B." in key:
            out[key] = torch.cat(parts, dim=1) / k
        else:
            raise HarnessError(f"unexpected tensor {key!r} in a LoRA adapter (only lora_A / lora_B stack)")
    return out


def soup(adapters: Sequence[Path], out: Path, command: str = "") -> dict[str, Any]:
    """Write the uniform soup of ``adapters`` into ``out`` (peft layout plus ``recipe.json``)
    and return the recipe record. ``out`` is the adapter directory itself."""
    import torch
    from safetensors.torch import load_file, save_file

    if len(adapters) < 2:
        raise HarnessError("a soup needs at least two adapters")
    if len({p.resolve() for p in adapters}) < len(adapters):
        raise HarnessError("the same adapter is named twice; a soup of copies is that adapter")
    t0 = time.perf_counter()
    configs = [_read_config(p) for p in adapters]
    _check_members(configs, adapters)
    tensors = [load_file(str(p / "adapter_model.safetensors")) for p in adapters]
    stacked = stack(tensors)
    k = len(adapters)
    out.mkdir(parents=True, exist_ok=True)
    dtype = next(iter(tensors[0].values())).dtype  # keep the members' storage precision
    save_file({key: v.to(dtype).contiguous() for key, v in stacked.items()},
              str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    conf = dict(configs[0], r=configs[0]["r"] * k, lora_alpha=configs[0]["lora_alpha"] * k)
    (out / "adapter_config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    members = []
    for p in adapters:
        rec = p / "recipe.json"
        member: dict[str, Any] = {"path": str(p), "sha256": sha256_bytes(p / "adapter_model.safetensors")}
        if rec.is_file():
            r = json.loads(rec.read_text())
            member.update(command=r.get("command"), seed=r.get("seed"))
        members.append(member)
    weights = out / "adapter_model.safetensors"
    recipe = {
        "command": command, "recipe": "soup", "members": members,
        "method": "uniform mean of the members' LoRA updates, stored exactly as one adapter of rank k*r",
        "rank": conf["r"], "lora_alpha": conf["lora_alpha"], "torch": torch.__version__,
        "adapter": {"sha256": sha256_bytes(weights), "revision": adapter_revision(out),
                    "bytes": weights.stat().st_size},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    return recipe
