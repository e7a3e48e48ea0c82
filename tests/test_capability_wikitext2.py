"""WikiText-2 perplexity: text normalisation, window geometry, and the perplexity of the tiny
model checked against hand computations (one window, and the guide's strided loop)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from orbench_benchmarks.wikitext2 import WikiText2, normalise, windows
from orbench_harness.backends.hf import HFModel
from orbench_harness.cache import Cache, PrefixedKV
from orbench_harness.data import DataSource
from orbench_harness.protocols import EvalContext
from orbench_harness.registry import Registry

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest
LINES = [
    " = The Sea = ",
    " Write a poem about the sea and the wind and the stars at night . ",
    " The capital of France is Paris . The answer is A , B , C or D . ",
    " = = Pancakes = = ",
    " Sure , here is a recipe for pancakes : flour , milk , eggs and butter . ",
    " How do I kill a Python process ? Use the kill command with the process id . ",
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A wiki.test.raw shaped like the shared copy: CRLF, no blank lines."""
    path = tmp_path / "data" / "wikitext-2" / "wiki.test.raw"
    path.parent.mkdir(parents=True)
    path.write_bytes("".join(line + "\r\n" for line in LINES).encode())
    return tmp_path / "data"


def ctx_for(tmp_path: Path, limit: int | None = None) -> EvalContext:
    kv = PrefixedKV(Cache(tmp_path / "kv.sqlite"), {"test": "wikitext2"})
    return EvalContext(seed=0, limit=limit, batch_size=2, kv=kv, key_prefix={})


def test_local_file_and_hub_rows_normalise_to_the_same_text(data_dir: Path) -> None:
    local = WikiText2(DataSource(data_dir)).text()
    hub_rows = [""]  # the hub keeps the blank lines as empty rows; the shared copy dropped them
    for line in LINES:
        hub_rows += [f"{line}\n", ""]
    assert normalise(hub_rows) == local
    assert "\r" not in local and "\n\n" not in local and local.endswith(" \n")
    assert local.count("\n") == len(LINES)


def test_shared_copy_has_the_published_line_count(shared_datasets: Path) -> None:
    bench = Registry().create("benchmarks", "wikitext2", DataSource(shared_datasets))
    assert bench.kind == "capability" and bench.metric == "perplexity"
    assert bench.size() == 2891
    assert bench.text().startswith(" = Robert Boulter = \n Robert Boulter is an English")
    assert len(bench.data_files()) == 1 and len(bench.data_files()[0].sha256) == 64


@given(n=st.integers(0, 300), window=st.integers(2, 64), frac=st.floats(0.01, 1.0))
def test_windows_score_every_token_after_the_first_once(n: int, window: int, frac: float) -> None:
    stride = max(1, min(window, round(window * frac)))
    plan = windows(n, window, stride)
    scored = [t for w in plan for t in range(w.end - w.scored, w.end)]
    assert all(w.end - w.begin <= window and w.begin <= w.end - w.scored - 1 for w in plan)
    if stride < window:
        assert scored == list(range(1, n))  # each token once, in order, always with context
    else:
        assert len(scored) == len(set(scored)) and set(scored) <= set(range(1, n))


def test_one_window_equals_exp_mean_nll(data_dir: Path, hf: HFModel, raw_model: tuple[Any, Any],
                                        tmp_path: Path) -> None:
    model, tok = raw_model
    text = normalise([(data_dir / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")])
    ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
    assert 20 < ids.shape[1] < hf.max_length
    with torch.no_grad():
        mean_nll = float(model(ids, labels=ids).loss)  # mean over tokens 1..n-1
    got = WikiText2(DataSource(data_dir)).evaluate(hf, ctx_for(tmp_path))
    assert got["n_windows"] == 1 and got["n_tokens"] == ids.shape[1] - 1
    assert got["perplexity"] == pytest.approx(math.exp(mean_nll), rel=1e-4)


def guide_loop(raw_model: tuple[Any, Any], text: str, window: int, stride: int,
               max_windows: int | None = None) -> tuple[float, int, int]:
    """The transformers perplexity guide's loop, written out: (ppl, scored tokens, windows)."""
    model, tok = raw_model
    ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
    seq_len = ids.shape[1]
    nll_sum, n_tokens, prev_end, count = 0.0, 0, 0, 0
    for begin in range(0, seq_len, stride):
        end = min(begin + window, seq_len)
        trg_len = end - prev_end
        input_ids = ids[:, begin:end]
        target = input_ids.clone()
        target[:, :-trg_len] = -100
        with torch.no_grad():
            loss = model(input_ids, labels=target).loss
        valid = int((target[:, 1:] != -100).sum())
        nll_sum += float(loss) * valid
        n_tokens += valid
        prev_end = end
        count += 1
        if end == seq_len or count == max_windows:
            break
    return math.exp(nll_sum / n_tokens), n_tokens, count


def test_strided_windows_match_the_guide_loop(data_dir: Path, hf: HFModel,
                                              raw_model: tuple[Any, Any], tmp_path: Path) -> None:
    bench = WikiText2(DataSource(data_dir), max_window=16)
    assert bench.geometry(hf) == (16, 8)
    ppl, n, count = guide_loop(raw_model, bench.text(), 16, 8)
    got = bench.evaluate(hf, ctx_for(tmp_path))
    assert count > 5 and (got["n_windows"], got["n_tokens"]) == (count, n)
    assert got["perplexity"] == pytest.approx(ppl, rel=1e-4)
    one = WikiText2(DataSource(data_dir)).evaluate(hf, ctx_for(tmp_path / "other"))
    assert got["perplexity"] != pytest.approx(one["perplexity"], rel=1e-3)  # context matters


def test_limit_takes_the_first_windows_and_each_window_is_cached(
    data_dir: Path, hf: HFModel, raw_model: tuple[Any, Any], tmp_path: Path
) -> None:
    bench = WikiText2(DataSource(data_dir), max_window=12, stride=6)
    ppl, n, count = guide_loop(raw_model, bench.text(), 12, 6, max_windows=3)
    got = bench.evaluate(hf, ctx_for(tmp_path, limit=3))
    assert got["n_windows"] == got["n"] == count == 3 and got["n_tokens"] == n
    assert got["perplexity"] == pytest.approx(ppl, rel=1e-4)

    class Refusing:
        """Same tokenizer and context length, but any log-prob request fails the test."""

        max_length = hf.max_length
        encode = staticmethod(hf.encode)

        def token_logprobs(self, seqs: Any) -> list[list[float]]:
            raise AssertionError("window was not cached")

    again = bench.evaluate(Refusing(), ctx_for(tmp_path, limit=3))  # type: ignore[arg-type]
    assert again == got
