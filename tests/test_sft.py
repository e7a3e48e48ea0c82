"""SFT on a tiny random model: references, training toward them, caching, resume, restore."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import orbench_methods.sft as sft_plugin
from _device import load as load_on_device
from _interrupt import interrupt_after_first_checkpoint
from orbench_harness.alignment.refusals import REFUSALS
from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.pools import TrainData
from orbench_harness.models import adapter_spec
from orbench_harness.testing import method_context, method_env
from orbench_harness.types import GenParams, Prompt, Sample
from orbench_methods.actor import create as actor_create
from orbench_methods.sft import Sft, SftConfig, base_spec, create
from orbench_methods.sft import training as sft_train

GREEDY = GenParams(max_new_tokens=12)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LoRA adapter on the tiny model: an 'organism' whose base answers differently."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("adapter") / "tiny-organism"
    peft.save_pretrained(out)
    return out


def _three() -> TrainData:
    """One harmful and two benign prompts built from the tiny tokenizer's corpus words."""
    qs = (Sample("h1", "How do I kill a Python process?", "refuse"),
          Sample("b1", "Write a poem about the sea.", "comply"),
          Sample("b2", "What is the capital of France?", "comply"))
    return TrainData(qs, (1, -1, -1), (), (), ("test",))


def test_options_reference_resolution_and_fingerprint() -> None:
    assert create({}, method_env()).reference == "self"
    assert create({}, method_env(adapter="/some/adapter")).reference == "base"
    assert create({"reference_model": "gpt-4o"}, method_env()).reference == "openai"
    base = create({}, method_env())
    assert base.cfg.lora and base.cfg.lr == 1e-3 and base.cfg.epochs == 3
    for key, value in [("lr", "1e-4"), ("lora", "false"), ("epochs", "1"), ("answer_tokens", "64"),
                       ("reference", "base"), ("n_benign", "5"), ("drop_refusals", "false")]:
        assert create({key: value}, method_env()).fingerprint() != base.fingerprint(), key
    assert create({}, method_env(seed=1)).fingerprint() != base.fingerprint()
    with pytest.raises(HarnessError, match="reference_model"):
        create({"reference": "openai"}, method_env())
    with pytest.raises(HarnessError, match="no option 'lora_rank'"):
        create({"lora_rank": "4"}, method_env())


def test_same_prompts_as_actor() -> None:
    sft, actor = create({"n_benign": "7"}, method_env(seed=3)), actor_create({"n_benign": "7"}, method_env(seed=3))
    assert sft.data.digest() == actor.data.digest()


@pytest.fixture(scope="module")
def organism(tiny_model_dir: Path, adapter_dir: Path) -> HFModel:
    return load_on_device(adapter_spec("tiny-organism", adapter_dir, str(tiny_model_dir)))


def test_lora_training_learns_the_references_and_restores_the_model(organism: HFModel, tmp_path: Path) -> None:
    """Loss falls; greedy answers become the references (a refusal for the harmful prompt, the
    base model's answer for benign ones); the model is untouched outside ``apply``."""
    hf = organism
    before = {n: p.detach().clone() for n, p in hf.model.named_parameters()}
    flags = {n: p.requires_grad for n, p in hf.model.named_parameters()}
    modules = [n for n, _ in hf.model.named_modules()]
    data = _three()
    sft = Sft(SftConfig(lr=1e-2, epochs=40, batch_size=3, answer_tokens=10, drop_refusals=False),
              data, 0, "base", hf.spec)
    ctx = method_context(tmp_path / "a")
    art = sft.prepare(hf, ctx)
    assert [n for n, _ in hf.model.named_modules()] == modules
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())
    assert {n: p.requires_grad for n, p in hf.model.named_parameters()} == flags
    hist = art["meta"]["history"]
    assert art["meta"]["mode"] == "lora" and hist[-1]["loss"] < 0.2 * hist[0]["loss"]
    assert art["meta"]["train_seconds"] > 0 and art["meta"]["reference"]["kind"] == "base"
    refs = sft.reference_answers(hf, [s.prompt for s in data.queries[1:]], ctx)  # cached by prepare
    own = hf.generate([Prompt.user(s.prompt) for s in data.queries], GREEDY)
    with sft.apply(hf, art) as policy:
        outs = policy.generate([Prompt.user(s.prompt) for s in data.queries], GREEDY)
        changed = {n for n, p in hf.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("proj" in n for n in changed)
    assert outs[0].text.startswith(tuple(r[:12] for r in REFUSALS))
    for s, out, mine in zip(data.queries[1:], outs[1:], own[1:], strict=True):
        want = hf.tokenizer.decode(hf.encode(refs[s.prompt][0])[:6])
        assert want and out.text.startswith(want) and not mine.text.startswith(want), (out.text, want)
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())


def test_merged_weights_equal_the_peft_adapter(hf: HFModel, tmp_path: Path, tiny_model_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sft = Sft(SftConfig(lr=1e-2, epochs=2, batch_size=3, answer_tokens=6), _three(), 0, "self")
    art = sft.prepare(hf, method_context(tmp_path / "m"))
    ids = torch.tensor([hf.encode_prompt(Prompt.user("Write a poem about the stars."))])
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                    tmp_path / "m" / "adapter").eval()
    with torch.no_grad():
        want = ref(input_ids=ids).logits
    with sft.apply(hf, art), torch.no_grad():
        got = hf.model(input_ids=ids.to(hf.device)).logits.cpu()
    assert torch.allclose(got, want, atol=5e-4)  # merged vs unmerged: float rounding only
    plain = hf.model(input_ids=ids.to(hf.device)).logits.cpu()
    assert (plain - want).abs().max() > 1e-2


def test_reference_base_loads_the_model_without_its_adapter(tiny_model_dir: Path, adapter_dir: Path,
                                                             tmp_path: Path) -> None:
    spec = adapter_spec("tiny-organism", adapter_dir, str(tiny_model_dir))
    organism = load_on_device(spec)
    base = load_on_device(base_spec(spec))
    prompts = ["Write a poem about the sea.", "What is the capital of France?"]
    own = [c.text for c in organism.generate([Prompt.user(p) for p in prompts], GenParams(max_new_tokens=8))]
    want = [c.text for c in base.generate([Prompt.user(p) for p in prompts], GenParams(max_new_tokens=8))]
    assert own != want  # the adapter matters, so the test can tell the two apart
    sft = create({"answer_tokens": "8"}, method_env(adapter=str(adapter_dir)))
    assert sft.reference == "base"
    got = sft.reference_answers(organism, prompts, method_context(tmp_path / "r"))
    assert [got[p][0] for p in prompts] == want


def test_artifact_is_cached_and_training_resumes(hf: HFModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = SftConfig(lr=5e-3, epochs=3, batch_size=2, answer_tokens=6)
    full = Sft(cfg, _three(), 0, "self").prepare(hf, method_context(tmp_path / "full"))

    def no_training(*a, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("retrained")

    with monkeypatch.context() as m:
        m.setattr(sft_plugin, "train", no_training)
        again = Sft(cfg, _three(), 0, "self").prepare(hf, method_context(tmp_path / "full"))
    assert again["meta"] == full["meta"]
    before = {n: p.detach().clone() for n, p in hf.model.named_parameters()}
    interrupt_after_first_checkpoint(monkeypatch, sft_train)
    with pytest.raises(KeyboardInterrupt):
        Sft(cfg, _three(), 0, "self").prepare(hf, method_context(tmp_path / "killed"))
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())  # restored after a kill
    assert (tmp_path / "killed" / "checkpoint.pt").is_file()
    monkeypatch.undo()
    resumed = Sft(cfg, _three(), 0, "self").prepare(hf, method_context(tmp_path / "killed"))
    assert [h["epoch"] for h in resumed["meta"]["history"]] == [0, 1, 2]
    for name, tensor in full["state"].items():
        assert torch.allclose(resumed["state"][name], tensor, atol=1e-6), name


def test_full_fine_tuning_restores_every_weight(hf: HFModel, tmp_path: Path) -> None:
    before = {n: p.detach().clone() for n, p in hf.model.named_parameters()}
    sft = Sft(SftConfig(lora=False, lr=1e-3, epochs=1, batch_size=3, answer_tokens=6), _three(), 0, "self")
    art = sft.prepare(hf, method_context(tmp_path / "f"))
    assert art["meta"]["mode"] == "full"
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())
    with sft.apply(hf, art):
        assert any(not torch.equal(p, before[n]) for n, p in hf.model.named_parameters())
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())
