"""DRO on a tiny random model: basis, heads, loss terms, soft-prompt insertion, training, caching."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import orbench_methods.dro as dro_plugin
from _device import memory_for_rows
from _interrupt import interrupt_after_first_checkpoint
from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError
from orbench_harness.methodkit.soft_prompt import SoftTemplate
from orbench_harness.testing import method_context, method_env
from orbench_harness.types import GenParams, Message, Prompt
from orbench_methods.dro import Dro, DroConfig, DroPolicy, build_data, create
from orbench_methods.dro import fit as dro_fit
from orbench_methods.dro.fit import complete_basis, fit_head, loss_terms, pca, total_loss

TEXT = "Sure, here is a recipe for pancakes: flour, milk, eggs and butter."
QUESTIONS = ["How do I kill a Python process?", "Write a poem about the sea.", "What is the capital of France?"]


def _text_soft(hf: HFModel, text: str) -> torch.Tensor:
    emb: torch.Tensor = hf.model.get_input_embeddings().weight[hf.encode(text)]
    return emb.detach().clone()


def test_pca_directions_and_the_completed_basis_are_orthonormal() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g) * torch.linspace(5, 0.5, 12) + 3
    mean, v, ratio = pca(x, 4)
    assert torch.allclose(mean, x.mean(0), atol=1e-5)
    cov = torch.cov((x - mean).T.double())
    _, evecs = torch.linalg.eigh(cov)
    top = evecs[:, -4:].flip(1).float()
    assert torch.allclose((top.T @ v).abs(), torch.eye(4), atol=1e-4)  # the top eigenvectors, up to sign
    assert ratio == sorted(ratio, reverse=True) and 0 < sum(ratio) < 1
    q = complete_basis(v, 42)
    assert q.shape == (12, 12)
    assert torch.allclose(q.T @ q, torch.eye(12), atol=1e-5)
    assert torch.allclose(q[:, :4], v, atol=1e-5)
    assert torch.equal(q, complete_basis(v, 42)) and not torch.allclose(q, complete_basis(v, 7))


def test_logistic_heads_reduce_the_loss_and_stop_early() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 4, generator=g)
    y = (x[:, 0] - 0.5 * x[:, 2] > 0).float()
    for folds in (1, 5):
        fit = fit_head(x, y, folds=folds, lr=2e-2, max_epochs=3000, patience=3, seed=42)
        assert fit.final_loss < 0.5 * fit.initial_loss, folds
        assert len(fit.epochs) == folds and all(1 <= e <= 3000 for e in fit.epochs)
        w = torch.tensor(fit.weight)
        assert w[0] > 0 and w[2] < 0 and abs(float(w[1])) < abs(float(w[0]))
    stopped = fit_head(x, y, folds=5, lr=0.5, max_epochs=3000, patience=3)
    assert max(stopped.epochs) < 3000  # a large step overshoots: early stopping ends it
    soft = fit_head(x, torch.full((300,), 0.25), folds=1, lr=1e-2, max_epochs=3000)  # soft targets
    assert torch.sigmoid(torch.tensor(soft.bias)) == pytest.approx(0.25, abs=0.05)


def test_loss_terms_and_ablation_flags() -> None:
    g = torch.Generator().manual_seed(2)
    d, k = 8, 2
    v = torch.linalg.qr(torch.randn(d, k, generator=g))[0]
    b = {"mean": torch.randn(d, generator=g), "basis": complete_basis(v), "refusal_w": torch.tensor([1.0, -2.0]),
         "harm_w": torch.tensor([0.5, 0.5])}
    base = torch.randn(6, d, generator=g)
    new = base + 0.3 * torch.randn(6, d, generator=g)
    y = torch.tensor([0.0, 0, 0, 1, 1, 1])
    terms = loss_terms(base, base, y, b)
    assert terms["refusal"].item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-6)
    assert terms["norm"].item() == 0.0
    terms = loss_terms(new, base, y, b)
    rest = (torch.eye(d) - v @ v.T) @ (new - base).T  # the norm term: change outside the PCA span
    assert terms["norm"].item() == pytest.approx(float((rest**2).sum()) / (6 * (d - k)), rel=1e-4)
    r, h, n = (terms[key].item() for key in ("refusal", "harmfulness", "norm"))
    full = DroConfig()
    assert total_loss(terms, full).item() == pytest.approx(r + 0.01 * h + 0.001 * n, rel=1e-6)
    assert total_loss(terms, DroConfig(ablate_refu=True)).item() == pytest.approx(0.01 * h + 0.001 * n, rel=1e-6)
    assert total_loss(terms, DroConfig(ablate_harm=True)).item() == pytest.approx(r + 0.001 * n, rel=1e-6)
    assert total_loss(terms, DroConfig(ablate_norm=True)).item() == pytest.approx(r + 0.01 * h, rel=1e-6)


def test_soft_prompt_of_a_texts_embeddings_generates_like_that_text(hf: HFModel) -> None:
    """The insertion code, checked end to end: batched greedy and sampled generation, and
    token log-probabilities, equal those with the text as a real system message."""
    policy = DroPolicy(hf, _text_soft(hf, TEXT))
    assert policy.template.where == "system"
    prompts = [Prompt.user(q) for q in QUESTIONS] + [Prompt((Message("system", "Be brief."), Message("user", "hi")))]
    with_text = [policy.template.text_prompt(p, TEXT) for p in prompts]
    assert [hf.encode_prompt(p) for p in with_text] == [_real(hf, policy, p) for p in prompts]
    for params in (GenParams(max_new_tokens=10), GenParams(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=3)):
        want = hf.generate(with_text, params, batch_size=2)
        got = policy.generate(prompts, params, batch_size=2)
        assert [c.text for c in got] == [c.text for c in want], params
    answer = hf.encode(" The answer is A.")
    seqs = [policy.encode(policy.render(p)) + answer for p in prompts]
    plain = [hf.encode(hf.render(p)) + answer for p in with_text]
    got_lp, want_lp = policy.token_logprobs(seqs), hf.token_logprobs(plain)
    for g, w in zip(got_lp, want_lp, strict=True):
        assert torch.allclose(torch.tensor(g[-len(answer):]), torch.tensor(w[-len(answer):]), atol=1e-4)
    raw = hf.encode("The capital of France is Paris.")  # no placeholder: the plain model
    assert policy.token_logprobs([raw])[0] == pytest.approx(hf.token_logprobs([raw])[0], abs=1e-5)
    other = DroPolicy(hf, _text_soft(hf, TEXT) + 0.5).generate(prompts[:2], GenParams(max_new_tokens=10))
    assert [c.text for c in other] != [c.text for c in got[:2]]


def _real(hf: HFModel, policy: DroPolicy, p: Prompt) -> list[int]:
    """The slot row with the slots replaced by the text's token ids."""
    ids = iter(hf.encode(TEXT))
    return [next(ids) if t < 0 else t for t in policy.template.row(p)]


def test_placeholder_dropped_by_a_template_is_an_error(hf: HFModel) -> None:
    row = SoftTemplate(hf, 3, "system").row(Prompt.user("hi"))
    assert [t for t in row if t < 0] == [-1, -2, -3]
    user = SoftTemplate(hf, 3, "user").row(Prompt.user("hi"))  # in front of the user's text
    assert [t for t in user if t < 0] == [-1, -2, -3]
    assert hf.tokenizer.decode(row[: row.index(-1)]).endswith("system\n")
    assert hf.tokenizer.decode(user[: user.index(-1)]).endswith("user\n")
    with pytest.raises(HarnessError, match="placeholder"):
        original = hf.tokenizer.chat_template
        hf.tokenizer.chat_template = "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}" \
                                     "{% endif %}{% endfor %}"
        try:
            SoftTemplate(hf, 3, "system").row(Prompt.user("hi"))
        finally:
            hf.tokenizer.chat_template = original


def test_training_moves_the_soft_prompt_and_the_artifact_is_cached(hf: HFModel, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    args = {"n_samples": "1", "label_tokens": "4", "head_max_epochs": "200", "head_folds": "2", "head_lr": "1e-2",
            "epochs": "3", "batch_size": "20", "micro_batch": "7", "lr": "1e-2", "system_prompt": TEXT,
            "n_harmful": "10", "n_harmless": "10"}
    dro = create(args, method_env())
    before = {n: p.detach().clone() for n, p in hf.model.named_parameters()}
    flags = {n: p.requires_grad for n, p in hf.model.named_parameters()}
    art = dro.prepare(hf, method_context(tmp_path / "a"))
    meta = art["meta"]
    init = _text_soft(hf, TEXT)
    assert art["soft"].shape == init.shape and not torch.allclose(art["soft"].cpu(), init.cpu())
    assert meta["moved"] > 0 and meta["placement"] == "system"
    hist = meta["history"]
    assert len(hist) == 3 and hist[-1]["loss"] < hist[0]["loss"]
    assert set(meta["boundary"]["mean_compliance"]) == {f"{k}/{s}" for k in ("harmful", "harmless")
                                                        for s in ("none", "default", "short", "alt")}
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())
    assert {n: p.requires_grad for n, p in hf.model.named_parameters()} == flags

    def no_training(*a, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("retrained")

    monkeypatch.setattr(dro_plugin, "train_soft_prompt", no_training)
    again = create(args, method_env()).prepare(hf, method_context(tmp_path / "a"))
    assert torch.equal(again["soft"], art["soft"])
    with dro.apply(hf, art) as policy:
        out = policy.generate([Prompt.user(QUESTIONS[0])], GenParams(max_new_tokens=5))
    assert out[0].n_new_tokens > 0


def test_killed_training_resumes_to_the_uninterrupted_soft_prompt(hf: HFModel, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C after the first epoch's checkpoint loses that epoch only: the next run resumes
    after it and ends on the soft prompt an uninterrupted run trains."""
    args = {"n_samples": "1", "label_tokens": "4", "head_max_epochs": "50", "head_folds": "2", "head_lr": "1e-2",
            "epochs": "3", "batch_size": "20", "micro_batch": "7", "lr": "1e-2", "system_prompt": TEXT,
            "n_harmful": "6", "n_harmless": "6"}
    full = create(args, method_env()).prepare(hf, method_context(tmp_path / "full"))
    interrupt_after_first_checkpoint(monkeypatch, dro_fit)
    with pytest.raises(KeyboardInterrupt):
        create(args, method_env()).prepare(hf, method_context(tmp_path / "killed"))
    assert (tmp_path / "killed" / "checkpoint.pt").is_file()
    monkeypatch.undo()
    resumed = create(args, method_env()).prepare(hf, method_context(tmp_path / "killed"))
    assert [h["epoch"] for h in resumed["meta"]["history"]] == [h["epoch"] for h in full["meta"]["history"]]
    assert len(resumed["meta"]["history"]) == 3
    assert torch.allclose(resumed["soft"], full["soft"], atol=1e-6)


def test_options_data_and_fingerprint() -> None:
    dro = create({}, method_env())
    assert (dro.cfg.pca_dim, dro.cfg.batch_size, dro.cfg.epochs, dro.cfg.lr) == (4, 50, 40, 1e-3)
    assert len(dro.data.harmful) == 20 and len(dro.data.harmless) == 20  # demo train splits
    assert dro.data.sources == ("demo-harmful", "demo-benign")
    assert isinstance(dro, Dro)
    base = dro.fingerprint()
    for key, value in [("init", "short"), ("ablate_norm", "true"), ("n_samples", "2"), ("w_harm", "0.1")]:
        assert create({key: value}, method_env()).fingerprint() != base, key
    with pytest.raises(HarnessError, match="no option 'ablate_refusal'"):
        create({"ablate_refusal": "true"}, method_env())
    five = DroConfig(n_harmful=5)
    assert build_data(five, method_env()).harmful != build_data(five, method_env(seed=1)).harmful


def test_states_and_soft_prompt_scoring_back_off_on_out_of_memory(
        hf: HFModel, capsys: pytest.CaptureFixture[str]) -> None:
    """DRO's state pass and its soft-prompt scorer halve their batches on out-of-memory and
    give the unlimited values."""
    prompts = [Prompt.user(q) for q in QUESTIONS]
    policy = DroPolicy(hf, _text_soft(hf, TEXT))
    answer = hf.encode(" The answer is A.")
    seqs = [policy.encode(policy.render(p)) + answer for p in prompts] + [hf.encode("Paris is big.")]
    want_x, want_lp = dro_fit.text_states(hf, prompts, batch_size=4), policy.token_logprobs(seqs, batch_size=4)
    capsys.readouterr()
    with memory_for_rows(hf, 1):
        got_x, got_lp = dro_fit.text_states(hf, prompts, batch_size=4), policy.token_logprobs(seqs, batch_size=4)
    assert torch.allclose(got_x, want_x, atol=1e-4, rtol=1e-4)
    assert [len(g) for g in got_lp] == [len(w) for w in want_lp] == [len(s) - 1 for s in seqs]
    for g, w in zip(got_lp, want_lp, strict=True):
        assert g == pytest.approx(w, abs=1e-4)
    assert capsys.readouterr().err.count("continuing with batches of 1") == 2
