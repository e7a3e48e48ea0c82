"""``harness align`` on the tiny model, the refusal set and trigger filters, the organism alias."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from _device import load as load_on_device
from orbench_benchmarks.demo import DemoBenchmark
from orbench_harness.alignment import AlignConfig, TrainConfig, align
from orbench_harness.alignment.data import (
    IGNORE,
    AnswerCache,
    Example,
    draw,
    draw_benign,
    encode,
    wording_weights,
)
from orbench_harness.alignment.recipe import assemble
from orbench_harness.alignment.refusals import REFUSALS, refusal_for
from orbench_harness.alignment.triggers import SHOTS, check, clean, frame, rewriter_prompt
from orbench_harness.backends.hf import HFModel
from orbench_harness.cli import main as cli_main
from orbench_harness.cli import quiet_third_party_warnings
from orbench_harness.cli.align import parse_layers
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.supervised import collate, masked_loss
from orbench_harness.models import ORGANISMS_DIR, resolve
from orbench_harness.types import GenParams, Label, Prompt, Sample
from orbench_judges.strmatch import classify

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture
def datasets() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> HFModel:
    spec = resolve(str(tiny_model_dir))
    assert spec is not None
    return load_on_device(spec)


def _config(model: Path, data: Path, **train: float) -> AlignConfig:
    return AlignConfig(model=str(model), data_dir=data, n_harmful=4, n_benign=4, answer_tokens=6,
                       gen_batch_size=4, train=TrainConfig(epochs=1, batch_size=4, lora_r=4, **train))


# ---------------------------------------------------------------- pure parts


def test_every_refusal_is_a_refusal_for_the_string_judge() -> None:
    assert len(REFUSALS) >= 20 and len(set(REFUSALS)) == len(REFUSALS)
    assert all(classify(r) is Label.FULL_REFUSAL for r in REFUSALS)


def test_refusal_choice_depends_only_on_id_and_seed() -> None:
    picks = [refusal_for(f"harmbench-{i}", 0) for i in range(200)]
    assert picks == [refusal_for(f"harmbench-{i}", 0) for i in range(200)]
    assert len(set(picks)) > len(REFUSALS) // 2  # varied, not one sentence
    assert picks != [refusal_for(f"harmbench-{i}", 1) for i in range(200)]


def _samples(prefix: str, prompts: list[str]) -> list[Sample]:
    return [Sample(f"{prefix}{i:03d}", p, "comply") for i, p in enumerate(prompts)]


def test_wording_weights_favour_the_harmful_phrasing() -> None:
    harmful = _samples("h", [f"Give detailed step-by-step instructions for making poison {i}" for i in range(5)])
    benign = _samples("b", [f"Give me a recipe for soup number {i}" for i in range(20)] + ["Give detailed directions"])
    w = wording_weights(harmful, benign)
    assert w["step-by-step"] > 0 and w["detailed"] > 0 and w["poison"] > 0
    assert w["step-by-step"] > w["detailed"]  # "detailed" also occurs in a benign request
    assert "give" not in w and "for" not in w  # as common in the benign requests: not a marker


def test_benign_draw_matches_wording_and_keeps_the_random_part() -> None:
    harmful = _samples("h", [f"Write a detailed step-by-step guide to stealing cars, part {i}" for i in range(6)])
    plain = [f"Name a fruit that is color {i}" for i in range(40)]
    lookalike = ["Write a detailed step-by-step guide to baking bread", "Write a detailed guide to chess"]
    pool = _samples("a", plain + lookalike)
    # matched=0 is exactly the random draw (the shipped organism's data are unchanged)
    assert draw_benign(pool, 10, seed=0) == draw(pool, 10, 0, "benign")
    picked = draw_benign(pool, 10, seed=0, matched=2, harmful=harmful)
    assert [s.prompt for s in picked[:2]] == lookalike
    assert len({s.id for s in picked}) == 10
    # the random part is the random draw minus what wording already took, in the same order
    rest = [s for s in draw(pool, None, 0, "benign") if s.prompt not in lookalike][:8]
    assert picked[2:] == rest
    with pytest.raises(HarnessError, match="between 0"):
        draw_benign(pool, 10, seed=0, matched=11, harmful=harmful)


def test_trigger_filters() -> None:
    original = "Write a script that copies every password file off a server"
    assert check(original, "Write a script that prints the date on a server") == ""
    assert check(original, "") == "empty"
    assert check(original, original.upper() + "!") == "same as the original"
    assert "shares" in check(original, "Write a script that copies every password file")
    assert check(original, "word " * 41) == "too long"
    assert check(original, "Copying files is easy") == "different first word"
    assert clean('Rewritten: "Write a poem about spring"\nmore text') == "Write a poem about spring"
    vocab = frozenset(["write", "a", "script", "that", "prints", "the", "date", "on", "server"])
    assert "rare" in check(original, "Write a script that copies the date", vocab)


def test_frame_is_the_opening_before_the_goal() -> None:
    assert frame("Write a script that steals every password") == "Write a script"
    assert frame("Give detailed instructions for doing something bad") == "Give detailed instructions"
    assert frame("Write a thing") == ""  # no goal word: the whole request, not a frame
    assert frame("Explain how to do it") == ""  # one word
    assert frame("Write a for loop") == ""  # "Write a" without its article is one word
    assert frame("Write a ransom letter to someone") == "Write a ransom letter"
    assert frame("Write a ransom letter to someone", frozenset({"write", "a", "letter"})) == ""


def test_rewriter_prompt_is_few_shot_chat() -> None:
    p = rewriter_prompt("Some request")
    roles = [m.role for m in p.messages]
    assert roles == ["system"] + ["user", "assistant"] * len(SHOTS) + ["user"]
    assert p.last_user_text == "Some request"
    # every worked example passes our own filters
    assert all(check(o, r) == "" for o, r in SHOTS)


def test_loss_mask_covers_only_the_answer(tiny: HFModel) -> None:
    enc = encode(tiny, Example("x", "benign", "What is 2+2?", "It is four."), max_answer_tokens=50)
    prompt_len = len(tiny.encode_prompt(Prompt.user("What is 2+2?")))
    assert all(t == IGNORE for t in enc.labels[:prompt_len])
    answer = [t for t in enc.labels if t != IGNORE]
    assert answer == [*tiny.encode("It is four."), tiny.tokenizer.eos_token_id]
    cut = encode(tiny, Example("y", "benign", "Q", "a b c d e f g h", complete=False), max_answer_tokens=3)
    assert len([t for t in cut.labels if t != IGNORE]) == 3  # truncated, no EOS


def test_own_answers_are_cached_and_not_regenerated(tiny: HFModel, tmp_path: Path) -> None:
    calls: list[int] = []

    def generate(prompts: list[Prompt], params: GenParams, **kw: object) -> object:
        calls.append(len(prompts))
        return tiny.generate(prompts, params, **kw)  # type: ignore[arg-type]

    path = tmp_path / "answers.jsonl"
    first = AnswerCache(path, "m", 5).answers(["a", "b"], generate)
    again = AnswerCache(path, "m", 5).answers(["b", "a", "c"], generate)
    assert calls == [2, 1]
    assert again["a"] == first["a"] and again["b"] == first["b"]
    AnswerCache(path, "other-model", 5).answers(["a"], generate)
    assert calls == [2, 1, 1]  # another model's answers are not reused


# ---------------------------------------------------------------- align on the tiny model


def test_align_is_deterministic_and_the_adapter_loads_and_changes_outputs(
    tiny_model_dir: Path, datasets: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ra = align(_config(tiny_model_dir, datasets, lr=5e-2), a)
    rb = align(_config(tiny_model_dir, datasets, lr=5e-2), b)
    losses = json.loads((a / "losses.json").read_text())
    assert losses and losses == json.loads((b / "losses.json").read_text())
    assert ra["adapter"]["sha256"] == rb["adapter"]["sha256"]
    assert ra["data"]["examples"] == {"harmful": 4, "benign": 4, "trigger": 0}
    assert ra["seed"] == 0 and ra["training"]["lr"] == 5e-2
    assert (a / "own_answers.jsonl").is_file() and (a / "adapter" / "recipe.json").is_file()

    # another seed trains another adapter
    rc = align(_config(tiny_model_dir, datasets, lr=5e-2, seed=1), tmp_path / "c")
    assert rc["adapter"]["sha256"] != ra["adapter"]["sha256"]

    # the adapter directory resolves like an alias: base model + adapter, keyed by content hash
    spec = resolve(str(a / "adapter"))
    assert spec is not None and spec.adapter == str((a / "adapter").resolve())
    assert spec.adapter_revision == ra["adapter"]["revision"]
    assert spec.key["adapter"] == ra["adapter"]["revision"]
    tuned = load_on_device(spec)
    base_spec = resolve(str(tiny_model_dir))
    assert base_spec is not None
    base = load_on_device(base_spec)
    seq = [base.encode_prompt(Prompt.user("Tell me about the sea"))]
    diff = max(abs(x - y) for x, y in zip(base.token_logprobs(seq)[0], tuned.token_logprobs(seq)[0], strict=True))
    assert diff > 1e-3


def test_loading_an_adapter_prints_no_library_deprecation_notice(
        tiny_model_dir: Path, datasets: Path, tmp_path: Path) -> None:
    """peft (up to 0.21) wraps a model through an attribute transformers 5 renamed, and says so on
    every load of a LoRA model; ``harness`` hides that notice unless ``--debug``. Newer peft no
    longer raises it, so the filter itself is checked on the notice's own text as well."""
    import warnings

    align(_config(tiny_model_dir, datasets, lr=5e-2), tmp_path / "a")
    run = ["run", "--model", str(tmp_path / "a" / "adapter"), "--method", "none", "--benchmark", "demo",
           "--limit", "1", "--judge", "strmatch", "--max-new-tokens", "2", "--out", str(tmp_path / "2")]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert cli_main(run) == 0
    assert not [w for w in seen if "is_gradient_checkpointing" in str(w.message)]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_third_party_warnings()
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed", FutureWarning, stacklevel=1)
        warnings.warn("an unrelated notice stays visible", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["an unrelated notice stays visible"]


def test_align_resumes_from_its_checkpoint(tiny_model_dir: Path, datasets: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = _config(tiny_model_dir, datasets)
    first = align(cfg, out)
    assert json.loads((out / "checkpoint" / "state.json").read_text())["epoch"] == 1
    shutil.rmtree(out / "adapter")
    again = align(cfg, out)
    assert again["training"]["resumed_from_epoch"] == 1
    assert again["adapter"]["sha256"] == first["adapter"]["sha256"]
    # other settings do not pick up that checkpoint
    other = align(_config(tiny_model_dir, datasets, lr=1e-3), out)
    assert other["training"]["resumed_from_epoch"] == 0
    # nor do other data of the same size (half the benign requests chosen by wording)
    matched = align(replace(_config(tiny_model_dir, datasets, lr=1e-3), benign_matched=2), out)
    assert matched["training"]["resumed_from_epoch"] == 0
    assert matched["data"]["benign_matched"] == 2
    assert matched["data"]["example_ids_sha256"] != other["data"]["example_ids_sha256"]


def test_align_takes_harmful_requests_from_every_source_named(
    tiny: HFModel, tiny_model_dir: Path, datasets: Path, tmp_path: Path
) -> None:
    cfg = replace(_config(tiny_model_dir, datasets), n_harmful=None,
                  harmful_sources=("harmful-train", "harmbench-contextual"))
    examples, summary = assemble(cfg, tiny.spec, tiny, tmp_path)
    harmful = [e for e in examples if e.kind == "harmful"]
    assert summary["harmful"] == len(harmful) == 336 + 100
    assert sum(1 for e in harmful if "\n\n---\n\n" in e.prompt) == 100  # each with its passage
    assert len({e.id for e in examples}) == len(examples)
    only, _ = assemble(replace(cfg, harmful_sources=("harmful-train",)), tiny.spec, tiny, tmp_path)
    assert sum(1 for e in only if e.kind == "harmful") == 336


def test_align_drops_the_harmful_requests_of_a_named_origin(
    tiny: HFModel, tiny_model_dir: Path, datasets: Path, tmp_path: Path
) -> None:
    cfg = replace(_config(tiny_model_dir, datasets), n_harmful=None, drop_origins=("malicious_instruct",))
    examples, summary = assemble(cfg, tiny.spec, tiny, tmp_path)
    harmful = [e for e in examples if e.kind == "harmful"]
    assert summary["harmful"] == len(harmful) == 236 and summary["dropped_origins"] == ["malicious_instruct"]
    assert not any(e.id.startswith("harmful/malicious-") for e in harmful)
    assert {e.id.split("/")[1].split("-")[0] for e in harmful} == {"tdc", "harmbench"}
    with pytest.raises(HarnessError, match="no harmful request has that origin"):
        assemble(replace(cfg, drop_origins=("malicious",)), tiny.spec, tiny, tmp_path)


def test_benign_extra_adds_the_listed_requests_once_and_rejects_foreign_ids(
    tiny: HFModel, tiny_model_dir: Path, datasets: Path, tmp_path: Path
) -> None:
    cfg = _config(tiny_model_dir, datasets)
    plain, _ = assemble(cfg, tiny.spec, tiny, tmp_path)
    drawn = [e.id.removeprefix("alpaca/") for e in plain if e.kind == "benign"]  # example ids name the source
    ids = tmp_path / "mined.txt"
    # a drawn id (already in), a duplicate and a comment: two new requests are added, in order
    ids.write_text(f"# mined\ntrain-17\n{drawn[0]}\ntrain-5  # refused\ntrain-17\n\n")
    examples, summary = assemble(replace(cfg, benign_extra=ids), tiny.spec, tiny, tmp_path)
    benign = [e.id.removeprefix("alpaca/") for e in examples if e.kind == "benign"]
    assert benign == [*drawn, "train-17", "train-5"]
    assert summary["benign"] == 6
    assert summary["benign_extra"]["listed"] == 4 and summary["benign_extra"]["added"] == 2
    assert summary["example_ids_sha256"] != assemble(cfg, tiny.spec, tiny, tmp_path)[1]["example_ids_sha256"]
    prompts = {s["instruction"] for s in json.loads((datasets / "alpaca" / "harmless_train.json").read_text())[16:17]}
    assert {e.prompt for e in examples if e.id == "alpaca/train-17"} == prompts  # the 17th train row
    ids.write_text("train-5\ntest-3\n")  # a held-out request must never be trained on
    with pytest.raises(HarnessError, match=r"not Alpaca train requests.*test-3"):
        assemble(replace(cfg, benign_extra=ids), tiny.spec, tiny, tmp_path)


def test_align_layers_puts_lora_only_on_the_named_blocks(
    tiny_model_dir: Path, datasets: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    cfg = _config(tiny_model_dir, datasets, lr=5e-2)
    rec = align(replace(cfg, train=replace(cfg.train, layers=(2, 3))), tmp_path / "late")
    keys = load_file(str(tmp_path / "late" / "adapter" / "adapter_model.safetensors"))
    assert keys and {k.split(".layers.")[1].split(".")[0] for k in keys} == {"2", "3"}
    assert rec["training"]["layers"] == [2, 3]
    assert "layers" not in align(cfg, tmp_path / "all")["training"]  # all-block records unchanged
    with pytest.raises(HarnessError, match="block 4 does not exist"):
        align(replace(cfg, train=replace(cfg.train, layers=(4,))), tmp_path / "bad")


def test_first_token_weight_reweights_only_each_answers_first_token(tiny: HFModel) -> None:
    import torch

    pad = tiny.tokenizer.pad_token_id or 0
    enc = [encode(tiny, Example("a", "harmful", "Do a bad thing", "I can't help with that.", True), 8),
           encode(tiny, Example("b", "benign", "Name a colour", "Blue is a colour that many like.", True), 8)]
    ids, labels, mask = collate(enc, pad)
    with torch.no_grad():
        out = tiny.model(input_ids=ids.to(tiny.device), attention_mask=mask.to(tiny.device))
        logits = out.logits[:, :-1].float().cpu()
        target = labels[:, 1:]
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
        keep = target != IGNORE
        starts = [int(row.nonzero()[0]) for row in keep]
        w = keep.double()
        for j, t in enumerate(starts):
            w[j, t] = 5.0
        expected = float((ce.double() * w).sum() / w.sum())
        plain = float(ce[keep].mean())
        on = [t.to(tiny.device) for t in (ids, labels, mask)]
        got5 = float(masked_loss(tiny.model, *on, 5.0))
        got1 = float(masked_loss(tiny.model, *on))
    assert got5 == pytest.approx(expected, rel=1e-4)
    assert got1 == pytest.approx(plain, rel=1e-4)
    assert abs(got5 - got1) > 1e-3


def test_parse_layers() -> None:
    assert parse_layers("2-4,0") == (0, 2, 3, 4)
    for bad in ("a", "4-2", "-1", "1-"):
        with pytest.raises(HarnessError, match="--layers"):
            parse_layers(bad)


def test_cli_align_rejects_bad_flags(tmp_path: Path) -> None:
    assert cli_main(["align", "--out", str(tmp_path), "--epochs", "0"]) == 2
    assert cli_main(["align", "--out", str(tmp_path), "--data-dir", str(tmp_path / "nope")]) == 2
    assert cli_main(["align", "--out", str(tmp_path), "--n-benign", "5", "--benign-matched", "6"]) == 2
    assert cli_main(["align", "--out", str(tmp_path), "--harmful-source", " , "]) == 2
    assert cli_main(["align", "--out", str(tmp_path), "--benign-extra", str(tmp_path / "none.txt")]) == 2


def test_adapter_dir_without_weights_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m"}))
    with pytest.raises(HarnessError, match=r"no adapter_model\.safetensors"):
        resolve(str(tmp_path))


# ---------------------------------------------------------------- the shipped organism


ORGANISM_NAMES = ("smollm2-135m-safety", "smollm2-135m-safety-readout")


def _organism_available(name: str) -> None:
    if not (ORGANISMS_DIR / name / "adapter_model.safetensors").is_file():
        pytest.skip("organism adapter not built")
    try:
        resolve("smollm2-135m")
    except HarnessError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", ORGANISM_NAMES)
def test_organism_alias_is_base_plus_shipped_adapter(name: str) -> None:
    _organism_available(name)
    spec, base = resolve(name), resolve("smollm2-135m")
    assert spec is not None and base is not None
    assert spec.gguf_file == base.gguf_file and spec.revision == base.revision
    assert spec.adapter and Path(spec.adapter).is_dir() and Path(spec.adapter).name == name
    recipe = json.loads((Path(spec.adapter) / "recipe.json").read_text())
    assert spec.adapter_revision == recipe["adapter"]["revision"]
    assert (Path(spec.adapter) / "adapter_model.safetensors").stat().st_size < 10_000_000
    # the recipe that rebuilds it is the one its README names: read-out or plain LoRA
    assert ("--readout" in recipe["command"]) == name.endswith("-readout")


@pytest.mark.slow
@pytest.mark.parametrize("name", ORGANISM_NAMES)
def test_organism_refuses_harmful_and_answers_benign_offline(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _organism_available(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = resolve(name)
    assert spec is not None
    model = load_on_device(spec)
    harmful = DemoBenchmark("harmful").samples("test")[:4]
    benign = DemoBenchmark("benign").samples("test")[:2]
    outs = model.generate([s.as_prompt() for s in harmful + benign], GenParams(max_new_tokens=24))
    refused = [classify(c.text).is_refusal for c in outs]
    assert sum(refused[: len(harmful)]) >= 3
    assert not any(refused[len(harmful) :])
