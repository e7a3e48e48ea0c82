"""ACTOR's mechanism on a tiny random model: targets, training, caching, resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from _device import memory_for_rows
from _interrupt import interrupt_after_first_checkpoint
from orbench_harness.backends.hf import HFModel
from orbench_harness.errors import HarnessError, TrainingOutOfMemory
from orbench_harness.methodargs import fingerprint
from orbench_harness.methodkit.activations import (
    all_layers_last_token,
    block_output_last_token,
    block_output_tail,
    common_suffix,
    silhouette,
)
from orbench_harness.methodkit.pools import build_data
from orbench_harness.protocols import MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.resolution import train_sampler
from orbench_harness.spec import RunSpec
from orbench_harness.testing import method_context, method_env
from orbench_harness.types import ModelSpec, Prompt
from orbench_methods import actor as actor_module
from orbench_methods.actor import Actor, ActorConfig, create
from orbench_methods.actor import training as actor_train
from orbench_methods.actor.anchors import anchor_means, anchor_means_tail, refusal_vector


def _proj(hf: HFModel, actor: Actor, layer: int, r: torch.Tensor) -> tuple[float, float]:
    """Mean projection on r of harmful and of benign+pseudo training queries."""
    rows = [hf.encode_prompt(s.as_prompt()) for s in actor.data.queries]
    h = block_output_last_token(hf, rows, layer).cpu()
    p = h @ r.cpu()
    signs = torch.tensor(actor.data.signs)
    return float(p[signs > 0].mean()), float(p[signs < 0].mean())


def test_every_layers_state_is_that_blocks_own_output_the_last_one_too(
    hf: HFModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The silhouette rule scores each layer on what ACTOR trains there: the block's output.
    transformers' hidden_states end with the final norm's output instead, which is not it."""
    prompts = [Prompt.user("How do I kill a Python process?"), Prompt.user("Write a poem about the sea.")]
    states = all_layers_last_token(hf, prompts)
    rows = [hf.encode_prompt(p) for p in prompts]
    n = len(hf.layers)
    assert states.shape[:2] == (2, n)
    for layer in range(n):
        torch.testing.assert_close(states[:, layer], block_output_last_token(hf, rows, layer), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(states[:, -1], hf.hidden_states(prompts)[:, -1], atol=1e-3)
    # the rule is part of what layer=auto trains, so of its fingerprint; a fixed layer's is not
    auto, fixed = (create({"layer": layer}, method_env()).fingerprint() for layer in ("auto", "1"))
    monkeypatch.setattr(actor_module, "LAYER_RULE", 1)
    assert create({"layer": "auto"}, method_env()).fingerprint() != auto
    assert create({"layer": "1"}, method_env()).fingerprint() == fixed


def test_silhouette_matches_a_brute_force_computation() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(7, 3, generator=g), torch.randn(5, 3, generator=g) + 2])
    labels = torch.tensor([0] * 7 + [1] * 5)
    want = []
    for i in range(len(x)):
        same = [j for j in range(len(x)) if labels[j] == labels[i] and j != i]
        other = [j for j in range(len(x)) if labels[j] != labels[i]]
        a = sum(float((x[i] - x[j]).norm()) for j in same) / len(same)
        b = sum(float((x[i] - x[j]).norm()) for j in other) / len(other)
        want.append((b - a) / max(a, b))
    assert silhouette(x, labels) == pytest.approx(sum(want) / len(want), abs=1e-6)


def test_shift_forms() -> None:
    h = torch.tensor([[1.0, -2.0], [-3.0, 0.0]])
    r = torch.tensor([2.0, 0.0])
    mag = actor_train._shift(ActorConfig(alpha=0.5), h, r)
    assert torch.allclose(mag, torch.tensor([[2.0, 0.0], [6.0, 0.0]]))  # 0.5 * |h.r| * r
    signed = actor_train._shift(ActorConfig(alpha=0.5, sign="signed"), h, r)
    assert torch.allclose(signed, torch.tensor([[2.0, 0.0], [-6.0, 0.0]]))
    unit = actor_train._shift(ActorConfig(alpha=0.5, projection="unit"), h, r)
    assert torch.allclose(unit, torch.tensor([[0.5, 0.0], [1.5, 0.0]]))  # 0.5 * |h.r^| * r^
    uniform = actor_train._shift(ActorConfig(targets="uniform", beta=2.0), h, r)
    assert torch.allclose(uniform, torch.tensor([[4.0, 0.0], [4.0, 0.0]]))


def test_hinge_shifts_only_queries_on_the_wrong_side_of_the_midpoint() -> None:
    r = torch.tensor([2.0, 0.0])
    mid = torch.tensor([1.0, 5.0])  # the boundary is x = 1 (the y offset must not matter)
    h = torch.tensor([[3.0, 0.0], [0.0, 0.0], [3.0, 9.0], [-1.0, 0.0]])
    signs = torch.tensor([-1.0, -1.0, 1.0, 1.0])  # benign, benign, harmful, harmful
    cfg = ActorConfig(alpha=0.5, sign="hinge")
    shift = actor_train._shift(cfg, h, r, signs, mid)
    # benign past the boundary by (3-1)*2 = 4 -> 0.5*4*r; benign on its own side -> 0;
    # harmful on its own side -> 0; harmful 2 units on the benign side -> 0.5*4*r
    assert torch.allclose(shift, torch.tensor([[4.0, 0.0], [0.0, 0.0], [0.0, 0.0], [4.0, 0.0]]))
    target = h + signs[:, None] * shift
    assert target[0, 0] < h[0, 0] and target[3, 0] > h[3, 0]  # both moved towards their own side
    with pytest.raises(ValueError, match="hinge"):
        actor_train._shift(cfg, h, r)
    # hinge_benign: the benign side as above, every harmful query by its full distance
    benign_only = actor_train._shift(ActorConfig(alpha=0.5, sign="hinge_benign"), h, r, signs, mid)
    assert torch.allclose(benign_only, torch.tensor([[4.0, 0.0], [0.0, 0.0], [4.0, 0.0], [4.0, 0.0]]))


def test_per_model_defaults_and_options_in_the_fingerprint() -> None:
    actor = create({}, method_env("llama-2-7b-chat"))
    assert (actor.cfg.alpha, actor.cfg.layer) == (0.0015, "12")  # the paper's hidden state 13
    assert create({"alpha": "0.01"}, method_env("llama-2-7b-chat")).cfg.alpha == 0.01
    # each organism has its own validated step: the read-out build takes half the plain one's
    plain, readout = (create({}, method_env(alias)) for alias in ("smollm2-135m-safety", "smollm2-135m-safety-readout"))
    assert (plain.cfg.lr, readout.cfg.lr) == (1e-5, 5e-6) and plain.fingerprint() != readout.fingerprint()
    base = create({}, method_env()).fingerprint()
    for key, value in [("alpha", "0.1"), ("layer", "2"), ("lr", "1e-4"), ("sign", "signed"),
                       ("projection", "unit"), ("recompute", "step"), ("targets", "uniform"),
                       ("trainable", "up_to_layer"), ("n_benign", "5"), ("positions", "post_instruction")]:
        assert create({key: value}, method_env()).fingerprint() != base, key
    # an option added after release, left at its default, keeps cached artifacts' fingerprints
    assert create({"positions": "last"}, method_env()).fingerprint() == base
    assert create({"band": "0.5"}, method_env()).fingerprint() == base
    assert create({"band": "0.7"}, method_env()).fingerprint() != base
    with pytest.raises(HarnessError, match="band is a quantile"):
        create({"band": "1.5"}, method_env())
    assert create({}, method_env(seed=1)).fingerprint() != base  # different sampled data
    with pytest.raises(HarnessError, match="no option 'alpah'; did you mean alpha"):
        create({"alpah": "1"}, method_env())
    with pytest.raises(HarnessError, match="sign must be one of"):
        create({"sign": "both"}, method_env())


def test_training_moves_activations_the_way_the_paper_says(hf: HFModel, tmp_path: Path) -> None:
    """Benign/pseudo-harmful queries move against r, harmful ones along it; only the
    target block changes, and the model is restored outside ``apply``."""
    actor = create({"alpha": "0.002", "lr": "3e-3", "epochs": "2", "layer": "1"}, method_env())
    before = {n: p.detach().clone() for n, p in hf.model.named_parameters()}
    r = refusal_vector(hf, actor.data, 1)
    harm0, ben0 = _proj(hf, actor, 1, r)
    art = actor.prepare(hf, method_context(tmp_path / "a"))
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())  # restored
    assert set(art["state"]) == {n for n in before if n.startswith("model.layers.1.")}
    with actor.apply(hf, art):
        harm1, ben1 = _proj(hf, actor, 1, r)
        changed = {n for n, p in hf.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("model.layers.1.") for n in changed)
    assert harm1 > harm0 and ben1 < ben0
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())
    hist = art["meta"]["history"]
    assert len(hist) == 2 and hist[0]["r_norm"] > 0


def test_hinge_training_pulls_wrong_side_queries_back(hf: HFModel, tmp_path: Path) -> None:
    """``sign=hinge``: the total distance of queries past the midpoint (on the other class's
    side) shrinks, measured against the untrained model's refusal vector and midpoint."""
    actor = create({"alpha": "0.002", "lr": "3e-3", "epochs": "2", "layer": "1", "sign": "hinge"}, method_env())
    r, mid = (t.cpu() for t in anchor_means(hf, actor.data, 1))
    rows = [hf.encode_prompt(s.as_prompt()) for s in actor.data.queries]
    signs = torch.tensor(actor.data.signs, dtype=torch.float32)

    def wrong_side() -> float:
        h = block_output_last_token(hf, rows, 1).cpu()
        return float((-signs * ((h - mid) @ r)).clamp(min=0).sum())

    before = wrong_side()
    assert before > 0  # something to fix on the random model
    art = actor.prepare(hf, method_context(tmp_path / "hinge"))
    with actor.apply(hf, art):
        after = wrong_side()
    assert after < before


_HINGE_ARGS = {"alpha": "0.002", "lr": "3e-3", "epochs": "2", "layer": "1"}


@dataclass(frozen=True)
class _Untrained:
    """The hinge tests' training queries under the untrained tiny model (layer 1)."""

    rows: list[list[int]]
    signs: torch.Tensor
    h0: torch.Tensor  # block outputs, last token
    r: torch.Tensor
    mid: torch.Tensor

    @property
    def centred(self) -> torch.Tensor:
        """Each query's projection on the unit r, from the anchor midpoint."""
        return (self.h0 - self.mid) @ (self.r / self.r.norm())


def _untrained(hf: HFModel) -> _Untrained:
    base = create({**_HINGE_ARGS, "sign": "hinge"}, method_env())
    r, mid = (t.cpu() for t in anchor_means(hf, base.data, 1))
    rows = [hf.encode_prompt(s.as_prompt()) for s in base.data.queries]
    signs = torch.tensor(base.data.signs, dtype=torch.float32)
    return _Untrained(rows, signs, block_output_last_token(hf, rows, 1).cpu(), r, mid)


def _trained_outputs(hf: HFModel, u: _Untrained, sign: str, tmp_path: Path) -> torch.Tensor:
    """The training queries' block outputs after ACTOR trained with ``sign``."""
    actor = create({**_HINGE_ARGS, "sign": sign}, method_env())
    art = actor.prepare(hf, method_context(tmp_path / sign))
    with actor.apply(hf, art):
        return block_output_last_token(hf, u.rows, 1).cpu()


def test_hinge_keep_holds_well_placed_queries_at_their_original_outputs(hf: HFModel, tmp_path: Path) -> None:
    """``sign=hinge_keep``: queries already on their own side drift less from the untrained
    block's output than under plain ``hinge`` (which leaves them free), at the same settings."""
    u = _untrained(hf)
    placed = (-u.signs * u.centred) <= 0
    assert 0 < int(placed.sum()) < len(u.rows)

    def drift(sign: str) -> float:
        return float((_trained_outputs(hf, u, sign, tmp_path) - u.h0)[placed].norm(dim=-1).mean())

    assert drift("hinge_keep") < drift("hinge")


def test_hinge_keep_harmful_holds_only_the_harmful_side(hf: HFModel, tmp_path: Path) -> None:
    """``sign=hinge_keep_harmful``: well-placed harmful queries drift less than under ``hinge``,
    while well-placed benign ones, no longer held, drift more than under ``hinge_keep``."""
    u = _untrained(hf)
    placed = (-u.signs * u.centred) <= 0
    harmful, benign = placed & (u.signs > 0), placed & (u.signs < 0)
    assert int(harmful.sum()) > 0 and int(benign.sum()) > 0

    drifts = {}
    for sign in ("hinge", "hinge_keep", "hinge_keep_harmful"):
        d = (_trained_outputs(hf, u, sign, tmp_path) - u.h0).norm(dim=-1)
        drifts[sign] = (float(d[harmful].mean()), float(d[benign].mean()))
    assert drifts["hinge_keep_harmful"][0] < drifts["hinge"][0]
    assert drifts["hinge_keep_harmful"][1] > drifts["hinge_keep"][1]


def test_hinge_band_holds_the_blunt_harmful_queries_and_moves_the_rest(hf: HFModel, tmp_path: Path) -> None:
    """``sign=hinge_band`` (default band 0.5): harmful queries above the median harmful
    projection drift less than under ``hinge``, while misplaced queries below it are still
    pulled back across the midpoint."""
    u = _untrained(hf)
    c0 = u.centred
    q = torch.quantile(c0[u.signs > 0], 0.5)
    high = (u.signs > 0) & (c0 > q)
    low_wrong = (c0 <= q) & ((-u.signs * c0) > 0)
    assert int(high.sum()) > 0 and int(low_wrong.sum()) > 0

    h_hinge, h_band = (_trained_outputs(hf, u, sign, tmp_path) for sign in ("hinge", "hinge_band"))
    assert (h_band - u.h0)[high].norm(dim=-1).mean() < (h_hinge - u.h0)[high].norm(dim=-1).mean()

    def wrong(h: torch.Tensor) -> float:
        return float((-u.signs * ((h - u.mid) @ u.r)).clamp(min=0)[low_wrong].sum())

    assert wrong(h_band) < wrong(u.h0)


def test_post_instruction_positions_are_all_trained(hf: HFModel, tmp_path: Path) -> None:
    """``positions=post_instruction``: the loss covers the template suffix every prompt ends
    with, so even its *first* token is trained: there the benign queries move against r and the
    two classes move apart (r measured at that position)."""
    actor = create({"alpha": "0.002", "lr": "3e-3", "epochs": "2", "layer": "1",
                    "positions": "post_instruction"}, method_env())
    rows = [hf.encode_prompt(s.as_prompt()) for s in actor.data.queries]
    k = common_suffix(rows)
    assert k > 1  # the tiny model's chat template ends every prompt with several tokens
    r = anchor_means_tail(hf, actor.data, 1, k)[0][0].cpu()
    signs = torch.tensor(actor.data.signs)

    def first_suffix_token() -> tuple[float, float]:
        p = block_output_tail(hf, rows, 1, k)[:, 0, :].cpu() @ r
        return float(p[signs > 0].mean()), float(p[signs < 0].mean())

    harm0, ben0 = first_suffix_token()
    art = actor.prepare(hf, method_context(tmp_path / "post"))
    assert art["meta"]["positions"] == k
    with actor.apply(hf, art):
        harm1, ben1 = first_suffix_token()
    assert ben1 < ben0 and harm1 - ben1 > harm0 - ben0  # benign pushed back, the classes pulled apart


def test_forward_pass_stops_at_the_target_layer(hf: HFModel) -> None:
    calls = []
    upper = hf.layer_name(3)
    with hf.hooks(forward=[(upper, lambda *a: calls.append(1))]):
        block_output_last_token(hf, [hf.encode("hello world")], 1, grad=True)
    assert calls == []


def test_artifact_is_cached_and_training_resumes_from_a_checkpoint(hf: HFModel, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    args = {"alpha": "0.002", "lr": "3e-3", "epochs": "3", "layer": "2"}
    full = create(args, method_env()).prepare(hf, method_context(tmp_path / "full"))
    again = create(args, method_env()).prepare(hf, method_context(tmp_path / "full"))
    assert again["meta"] == full["meta"]  # loaded, not retrained
    interrupt_after_first_checkpoint(monkeypatch, actor_train)
    with pytest.raises(KeyboardInterrupt):
        create(args, method_env()).prepare(hf, method_context(tmp_path / "killed"))
    assert (tmp_path / "killed" / "checkpoint.pt").is_file()
    monkeypatch.undo()
    resumed = create(args, method_env()).prepare(hf, method_context(tmp_path / "killed"))
    assert [h["epoch"] for h in resumed["meta"]["history"]] == [0, 1, 2]
    for name, tensor in full["state"].items():
        assert torch.allclose(resumed["state"][name], tensor, atol=1e-6), name


def test_demo_data_uses_train_splits_only() -> None:
    data = build_data(ActorConfig(), method_env())
    test_prompts = {s.prompt for n in ("demo-benign", "demo-harmful", "demo-pseudo-harmful")
                    for s in Registry().create("benchmarks", n, __import__(
                        "orbench_harness.data", fromlist=["DataSource"]).DataSource()).samples("test")}
    assert data.queries and not ({s.prompt for s in data.queries} & test_prompts)
    assert data.signs.count(1) == 20 and data.signs.count(-1) == 40


def test_harmful_pool_swaps_the_harmful_queries_and_keeps_the_anchors(shared_datasets: Path) -> None:
    spec = RunSpec(model="x", seed=0, data_dir=shared_datasets)
    env = MethodEnv(model=ModelSpec(name="tiny", source="x"), seed=0, data_dir=shared_datasets,
                    train_samples=train_sampler(Registry(), spec))
    paper = build_data(ActorConfig(n_harmful=50), env)
    blunt = build_data(ActorConfig(n_harmful=50, harmful_pool="harmful-train"), env)
    pool = {s.prompt for s in env.train_samples("harmful-train")}
    hexphi = {s.prompt for s in env.train_samples("hexphi")}
    harmful_q = [s.prompt for s, sign in zip(blunt.queries, blunt.signs, strict=True) if sign > 0]
    assert len(harmful_q) == 50 and set(harmful_q) <= pool
    assert {s.prompt for s, sign in zip(paper.queries, paper.signs, strict=True) if sign > 0} <= hexphi
    # the refusal-vector anchors are HEx-PHI's either way, and the sources say what was used
    assert {s.prompt for s in blunt.harmful_anchors} <= hexphi
    assert blunt.sources[0] == "harmful-train" and "hexphi" in blunt.sources
    assert paper.sources[0] == "hexphi" and "harmful-train" not in paper.sources
    # the option is part of the fingerprint when set
    assert fingerprint("actor", 1, ActorConfig()) != fingerprint("actor", 1, ActorConfig(harmful_pool="harmful-train"))


def test_block_outputs_do_not_depend_on_the_batch_or_its_padding(hf: HFModel) -> None:
    """The training forward right-pads (a fully masked left-pad row gives NaN gradients in 16-bit
    CUDA kernels) and gathers each row's own last tokens: rows of different lengths batched
    together give what each gives alone."""
    rows = [hf.encode_prompt(Prompt.user(q)) for q in ("hi", "How do I kill a Python process?",
                                                       "Write a poem about the sea and the wind and the stars")]
    assert len({len(r) for r in rows}) == 3
    batched = block_output_tail(hf, rows, 1, 2, grad=True)
    single = torch.cat([block_output_tail(hf, [r], 1, 2) for r in rows])
    assert batched.requires_grad and torch.allclose(batched.detach(), single, atol=1e-5, rtol=1e-5)


def test_state_passes_back_off_on_out_of_memory(hf: HFModel, capsys: pytest.CaptureFixture[str]) -> None:
    """The anchor means and the untrained block's outputs (the ``hinge_keep*`` anchors) are read
    in batches that halve on out-of-memory, with the same values as one unlimited pass."""
    actor = create({"layer": "1"}, method_env())
    rows = [hf.encode_prompt(s.as_prompt()) for s in actor.data.queries]
    want_r, want_mid = anchor_means_tail(hf, actor.data, 1, 2, batch_size=4)
    want_h = actor_train._original_outputs(hf, rows, 1, 2, batch_size=4)
    capsys.readouterr()
    with memory_for_rows(hf, 1):
        got_r, got_mid = anchor_means_tail(hf, actor.data, 1, 2, batch_size=4)
        got_h = actor_train._original_outputs(hf, rows, 1, 2, batch_size=4)
    for got, want in ((got_r, want_r), (got_mid, want_mid), (got_h, want_h)):
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert capsys.readouterr().err.count("continuing with batches of 1") == 3  # harmful, benign, queries


def test_out_of_memory_in_training_is_one_line_naming_the_batch_size(hf: HFModel, tmp_path: Path) -> None:
    """Training cannot back off as inference does (its batch size is in the fingerprint): a
    step that does not fit is a user error that names the option to lower, and the model's
    weights are put back."""
    before = {n: p.detach().clone() for n, p in hf.model.named_parameters()}

    def full(_module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        if torch.is_grad_enabled():  # the state passes run without gradients and fit
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    handle = hf.model.get_decoder().register_forward_pre_hook(full, with_kwargs=True)
    try:
        with pytest.raises(TrainingOutOfMemory, match=r"actor: out of memory on cpu while training; "
                                                      r"lower --method-arg actor:batch_size \(now 8;"):
            create({"layer": "1", "epochs": "1"}, method_env()).prepare(hf, method_context(tmp_path / "oom"))
    finally:
        handle.remove()
    assert all(torch.equal(p, before[n]) for n, p in hf.model.named_parameters())
