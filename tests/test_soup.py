"""``harness soup``: the stacked adapter's update is the members' mean, and it loads as a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _device import load as load_on_device
from orbench_harness.alignment.soup import soup
from orbench_harness.cli import main as cli_main
from orbench_harness.errors import HarnessError
from orbench_harness.models import resolve
from orbench_harness.types import Prompt


def _adapter(base_dir: Path, out: Path, seed: int, r: int = 4) -> Path:
    """A random (not zero-initialised) LoRA adapter on the tiny model, saved in peft's layout."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    conf = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, conf)
    with torch.no_grad():  # make the updates large enough to change outputs visibly
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2)
    peft_model.save_pretrained(out)
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(base_dir)
    cfg_path.write_text(json.dumps(cfg))
    return out


def _merged(base_dir: Path, adapter: Path) -> dict[str, torch.Tensor]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter))
    return {k: v.detach().clone() for k, v in model.merge_and_unload().state_dict().items()}


def test_soup_update_is_the_mean_of_the_members(tiny_model_dir: Path, tmp_path: Path) -> None:
    a = _adapter(tiny_model_dir, tmp_path / "a", seed=1)
    b = _adapter(tiny_model_dir, tmp_path / "b", seed=2)
    c = _adapter(tiny_model_dir, tmp_path / "c", seed=3)
    recipe = soup([a, b, c], tmp_path / "soup")
    assert recipe["rank"] == 12 and recipe["lora_alpha"] == 24 and len(recipe["members"]) == 3

    ma, mb, mc = (_merged(tiny_model_dir, p) for p in (a, b, c))
    ms = _merged(tiny_model_dir, tmp_path / "soup")
    changed = 0
    for key, w in ms.items():
        mean = (ma[key] + mb[key] + mc[key]) / 3
        assert torch.allclose(w, mean, atol=1e-5), key
        changed += int(not torch.allclose(w, ma[key], atol=1e-4))
    assert changed >= 8  # q_proj and v_proj of every block differ from a member's


def test_soup_loads_as_a_model_and_differs_from_each_member(tiny_model_dir: Path, tmp_path: Path) -> None:
    a = _adapter(tiny_model_dir, tmp_path / "a", seed=1)
    b = _adapter(tiny_model_dir, tmp_path / "b", seed=2)
    assert cli_main(["soup", "--out", str(tmp_path / "soup"), str(a), str(b)]) == 0
    seq: list[list[int]] | None = None
    logprobs = []
    for path in (a, b, tmp_path / "soup"):
        spec = resolve(str(path))
        assert spec is not None and spec.adapter == str(path.resolve())
        model = load_on_device(spec)
        seq = seq or [model.encode_prompt(Prompt.user("Tell me about the sea"))]
        logprobs.append(model.token_logprobs(seq)[0])
    la, lb, ls = logprobs
    assert max(abs(x - y) for x, y in zip(ls, la, strict=True)) > 1e-3
    assert max(abs(x - y) for x, y in zip(ls, lb, strict=True)) > 1e-3


def test_soup_rejects_mismatched_or_too_few_members(tiny_model_dir: Path, tmp_path: Path) -> None:
    a = _adapter(tiny_model_dir, tmp_path / "a", seed=1)
    wide = _adapter(tiny_model_dir, tmp_path / "wide", seed=2, r=8)
    with pytest.raises(HarnessError, match="r is 8"):
        soup([a, wide], tmp_path / "s1")
    with pytest.raises(HarnessError, match="at least two"):
        soup([a], tmp_path / "s2")
    with pytest.raises(HarnessError, match="named twice"):
        soup([a, a], tmp_path / "s3")
    with pytest.raises(HarnessError, match=r"no adapter_config\.json"):
        soup([a, tmp_path], tmp_path / "s4")
    assert cli_main(["soup", "--out", str(tmp_path / "s5"), str(a), str(wide)]) == 2
    assert not (tmp_path / "s1" / "adapter_model.safetensors").exists()
