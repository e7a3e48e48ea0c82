"""Benchmark plugins on the real shared data: sizes, the ACTOR splits, determinism, suites.

Needs ``../shared/datasets`` (skips otherwise). Hub-only benchmarks (PHTest, OR-Bench-Toxic,
GSM8K, SQL-1k) are read from ``tests/fixtures`` in their local layout. Nothing here reaches
the hub, and harmful prompts are never put into assertion messages (ids and hashes only).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from orbench_benchmarks import coconot
from orbench_benchmarks.harmbench_contextual import SEPARATOR
from orbench_benchmarks.harmful_train import normalise
from orbench_benchmarks.orbench_borderline import JACCARD, NearDuplicates, words
from orbench_harness.benchkit import PromptBenchmark
from orbench_harness.data import DataSource
from orbench_harness.plugins import BUILTIN_PLUGINS, get_plugin_manager
from orbench_harness.protocols import Benchmark, Split
from orbench_harness.registry import Registry

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The prompt-set plugins (the capability benchmarks have their own tests).
OURS = {
    f"orbench_benchmarks.{m}" for m in (
        "xstest", "scope", "orbench", "orbench_borderline", "phtest", "oktest", "advbench", "hexphi", "koala",
        "alpaca_eval", "coconot",
        "jailbreakbench", "sorry_bench", "gsm8k", "sql1k", "ultrachat", "truthfulqa", "alpaca",
        "harmful_train", "harmbench_contextual",
    )
}

# name -> (all, train, test) with the shared data (hub-only ones: the fixtures)
EXPECTED_SIZES = {
    "xstest": (250, 25, 225),
    "xstest-unsafe": (200, 0, 200),
    "orbench-hard": (1319, 25, 1294),
    "oktest": (300, 0, 300),
    "advbench": (520, 0, 520),
    "hexphi": (330, 220, 110),
    "scope": (770, 25, 745),
    "koala": (156, 0, 156),
    "alpaca-eval": (568, 0, 568),
    "coconot-contrast": (471, 0, 471),
    "jbb-benign": (100, 0, 100),
    "jbb-harmful": (100, 0, 100),
    "sorry-bench": (449, 0, 449),
    "ultrachat": (385, 285, 100),
    "truthfulqa": (817, 64, 753),
    "alpaca": (31323, 18793, 12530),
    "harmful-train": (336, 336, 0),
    "orbench-borderline": (8739, 8739, 0),
    "harmbench-contextual": (100, 100, 0),
    "phtest": (6, 6, 0),
    "orbench-toxic": (5, 0, 5),
    "gsm8k": (4, 0, 4),
    "sql-1k": (5, 0, 5),
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(get_plugin_manager(load_entrypoints=False))


def our_names(registry: Registry) -> list[str]:
    return [e.name for e in registry.benchmarks() if e.plugin in OURS]


def make(registry: Registry, name: str, shared: Path) -> PromptBenchmark:
    """The benchmark on the shared data, or on the fixtures when only those have its files."""
    for root in (shared, FIXTURES):
        bench = registry.create("benchmarks", name, DataSource(root))
        assert isinstance(bench, PromptBenchmark)
        if bench.source.local_paths(DataSource(root)) is not None:
            return bench
    pytest.fail(f"{name}: no local data in the shared data or the fixtures (would need the hub)")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_every_benchmark_is_registered_with_kind_metric_and_size(registry: Registry) -> None:
    assert OURS.issubset(BUILTIN_PLUGINS)
    names = our_names(registry)
    assert sorted(names) == sorted(EXPECTED_SIZES)
    for e in registry.benchmarks():
        if e.plugin not in OURS:
            continue
        assert e.info["kind"] in ("over_refusal", "safety")
        assert e.info["metric"] == ("refusal_rate" if e.info["kind"] == "safety" else "compliance_rate")
        assert isinstance(e.info["size"], int) and e.info["size"] > 0
        bench = registry.create("benchmarks", e.name, DataSource(None))
        assert isinstance(bench, Benchmark)
        assert (bench.kind, bench.metric) == (e.info["kind"], e.info["metric"])


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_sizes_and_disjoint_splits(registry: Registry, shared_datasets: Path, name: str) -> None:
    bench = make(registry, name, shared_datasets)
    everything = bench.samples("all")
    train, test = bench.samples("train", seed=0), bench.samples("test", seed=0)
    assert (len(everything), len(train), len(test)) == EXPECTED_SIZES[name]
    ids = [s.id for s in everything]
    assert len(set(ids)) == len(ids)
    assert {s.id for s in train}.isdisjoint({s.id for s in test})
    assert {s.id for s in train} | {s.id for s in test} == set(ids)
    # No prompt text may sit on both sides either (texts compared by hash).
    assert {digest(s.prompt) for s in train}.isdisjoint({digest(s.prompt) for s in test})
    expected = "refuse" if bench.kind == "safety" else "comply"
    assert {s.expected for s in everything} == {expected}
    files = bench.data_files()
    assert files and all(len(f.sha256) == 64 for f in files)


@pytest.mark.parametrize("name", ["xstest", "scope", "orbench-hard", "hexphi", "truthfulqa"])
def test_split_depends_on_seed_only(registry: Registry, shared_datasets: Path, name: str) -> None:
    first = [s.id for s in make(registry, name, shared_datasets).samples("train", seed=7)]
    again = [s.id for s in make(registry, name, shared_datasets).samples("train", seed=7)]
    other = [s.id for s in make(registry, name, shared_datasets).samples("train", seed=8)]
    assert first == again
    assert set(first) != set(other) and len(first) == len(other)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_limit_with_seed_is_deterministic_and_nested(
    registry: Registry, shared_datasets: Path, name: str
) -> None:
    split: Split = "test" if EXPECTED_SIZES[name][2] >= 4 else "train"
    a = [s.id for s in make(registry, name, shared_datasets).samples(split, limit=3, seed=11)]
    b = [s.id for s in make(registry, name, shared_datasets).samples(split, limit=3, seed=11)]
    big = [s.id for s in make(registry, name, shared_datasets).samples(split, limit=4, seed=11)]
    assert a == b and len(a) == 3
    assert set(a) <= set(big)
    full = [s.id for s in make(registry, name, shared_datasets).samples(split, seed=11)]
    assert [i for i in full if i in set(a)] == a  # file order is kept


def test_hexphi_train_is_two_thirds_of_every_category(registry: Registry, shared_datasets: Path) -> None:
    bench = make(registry, "hexphi", shared_datasets)
    per_cat = Counter(s.meta["category"] for s in bench.samples("train", seed=0))
    assert len(per_cat) == 11 and set(per_cat.values()) == {20}


def test_ultrachat_train_takes_30_per_class(registry: Registry, shared_datasets: Path) -> None:
    bench = make(registry, "ultrachat", shared_datasets)
    per_class = Counter(s.meta["class"] for s in bench.samples("train", seed=3))
    assert per_class["Vicuna"] == per_class["Writing"] == 30
    assert per_class["Professional Knowledge-Biology"] == 15
    assert len(per_class) == 10


@pytest.mark.parametrize("source", ["harmful-train", "harmbench-contextual"])
def test_harmful_training_sources_exclude_scored_harmful_prompts(
    registry: Registry, shared_datasets: Path, source: str
) -> None:
    samples = make(registry, source, shared_datasets).samples("train")
    # a contextual prompt is passage + separator + request; the request is what a set could share
    train = {normalise(s.prompt.rsplit(SEPARATOR, 1)[-1]) for s in samples}
    for name in ("jbb-harmful", "sorry-bench", "advbench", "hexphi", "xstest-unsafe"):
        scored = {normalise(s.prompt) for s in make(registry, name, shared_datasets).samples("all")}
        overlap = len(train & scored)  # a count, so a failure never prints the prompts
        assert overlap == 0, name
    files = {Path(f.path).name for f in make(registry, source, shared_datasets).data_files()}
    assert "jailbreakbench.csv" in files and "HEx-PHI.jsonl" in files


def test_contextual_prompts_carry_their_passage(registry: Registry, shared_datasets: Path) -> None:
    samples = make(registry, "harmbench-contextual", shared_datasets).samples("train")
    assert all(SEPARATOR in s.prompt for s in samples)
    passages = [s.prompt.split(SEPARATOR, 1)[0] for s in samples]
    assert min(len(p) for p in passages) > 100  # a passage, not an empty context
    # some requests come with two or three different passages: each pair is its own prompt
    requests = [s.prompt.split(SEPARATOR, 1)[1] for s in samples]
    assert len(set(requests)) == 93 and len({s.prompt for s in samples}) == 100


def test_koala_is_the_koala_subset(registry: Registry, shared_datasets: Path) -> None:
    samples = make(registry, "koala", shared_datasets).samples("all")
    assert {s.meta["dataset"] for s in samples} == {"koala"}


def test_alpaca_eval_shares_no_prompt_with_koala_or_ultrachat(
    registry: Registry, shared_datasets: Path
) -> None:
    samples = make(registry, "alpaca-eval", shared_datasets).samples("all")
    assert {s.meta["dataset"] for s in samples} == {"selfinstruct", "oasst", "helpful_base"}
    others = [
        *make(registry, "koala", shared_datasets).samples("all"),
        *make(registry, "ultrachat", shared_datasets).samples("all"),
    ]
    assert {normalise(s.prompt) for s in samples}.isdisjoint({normalise(s.prompt) for s in others})
    # the UltraChat file is read (and hashed) for that filter
    names = {f.path for f in make(registry, "alpaca-eval", shared_datasets).data_files()}
    assert any("ultra_eval.json" in n for n in names)


def test_coconot_contrast_is_benign_lookalikes_once_each(
    registry: Registry, shared_datasets: Path
) -> None:
    samples = make(registry, "coconot-contrast", shared_datasets).samples("all")
    assert {s.meta["category"] for s in samples} == {"Requests with safety concerns"}
    assert {s.expected for s in samples} == {"comply"}
    keys = [normalise(s.prompt) for s in samples]
    assert len(keys) == len(set(keys))
    scored = [
        *make(registry, "xstest", shared_datasets).samples("all"),
        *make(registry, "orbench-hard", shared_datasets).samples("all"),
        *make(registry, "oktest", shared_datasets).samples("all"),
        *make(registry, "scope", shared_datasets).samples("all"),
    ]
    assert set(keys).isdisjoint({normalise(s.prompt) for s in scored})


def test_orbench_borderline_drops_or_bench_hard_and_its_paraphrases(
    registry: Registry, shared_datasets: Path
) -> None:
    pool = make(registry, "orbench-borderline", shared_datasets).samples("train")
    keys = [normalise(s.prompt) for s in pool]
    assert len(keys) == len(set(keys)) and {s.expected for s in pool} == {"comply"}
    scored = make(registry, "orbench-hard", shared_datasets).samples("all")
    assert set(keys).isdisjoint({normalise(s.prompt) for s in scored})
    hard = [words(s.prompt) for s in scored]
    # no kept prompt is a near-paraphrase of a scored one: checked by brute force on a sample
    for s in pool[::97]:
        mine = words(s.prompt)
        assert max(len(mine & h) / len(mine | h) for h in hard) < JACCARD
    # the scored file is read (and hashed into run.json) for that filter
    files = {Path(f.path).name for f in make(registry, "orbench-borderline", shared_datasets).data_files()}
    assert "or-bench-hard-1k.csv" in files


def test_near_duplicates_match_paraphrases_not_topic_neighbours() -> None:
    scored = NearDuplicates(["How can I safely dispose of old prescription medication at home?",
                             "What is a respectful way to end a long friendship?"])
    assert "how can i safely dispose of old prescription medication at home" in scored  # same text
    assert "How can I safely dispose of old prescription medicine at home?" in scored  # one word changed
    assert "Where can I dispose of old paint?" not in scored  # shares words, not the request
    assert "Describe the history of the printing press." not in scored


def test_sorry_bench_local_merge_skips_the_row_empty_everywhere(
    registry: Registry, shared_datasets: Path
) -> None:
    ids = {s.id for s in make(registry, "sorry-bench", shared_datasets).samples("all")}
    assert "142" not in ids and {"1", "141", "143", "450"} <= ids
    assert len(make(registry, "sorry-bench", shared_datasets).data_files()) == 4


def test_size_is_counted_locally_and_published_otherwise(registry: Registry, shared_datasets: Path) -> None:
    local = registry.create("benchmarks", "sorry-bench", DataSource(shared_datasets))
    assert local.size() == 449
    nowhere = registry.create("benchmarks", "sorry-bench", DataSource(None))
    assert nowhere.size() == 450  # published size, without touching the hub


def test_suites(registry: Registry) -> None:
    suites = registry.suites()
    assert suites["paper"].benchmarks == (
        "xstest", "scope", "orbench-hard", "phtest", "oktest", "advbench",
        "mmlu", "mt-bench", "wikitext2",
    )
    assert set(suites["triggers"].benchmarks) == {
        "koala", "jbb-benign", "orbench-hard", "jbb-harmful", "sorry-bench", "hexphi",
    }
    assert {"gsm8k", "sql-1k"} <= set(suites["triggers-hub"].benchmarks)
    quick = suites["quick"]
    assert "phtest" not in quick.benchmarks
    assert quick.limit_for("xstest") == 20 and quick.limit_for("mmlu") == 60
    assert quick.limit_for("wikitext2") == 4
    registered = set(registry.benchmarks().names())
    for suite in ("paper", "triggers", "triggers-hub", "quick"):
        for name in suites[suite].benchmarks:
            assert name in registered, name


def test_quick_suite_resolves_on_shared_data(registry: Registry, shared_datasets: Path) -> None:
    quick = registry.suites()["quick"]
    for name in quick.benchmarks:
        if name in ("mmlu", "wikitext2"):
            continue
        bench = registry.create("benchmarks", name, DataSource(shared_datasets))
        got = bench.samples("test", limit=quick.limit_for(name), seed=0)
        assert len(got) == 20, name


def test_coconot_hub_rows_get_the_same_filter_as_the_local_file() -> None:
    """The hub path (rows as ``datasets`` yields them) keeps the category, each prompt once."""

    def row(i: str, category: str, prompt: str) -> dict[str, str]:
        return {"id": i, "category": category, "subcategory": "privacy violations",
                "prompt": prompt, "chosen": "an answer", "rejected": "a refusal"}

    rows = [
        row("a1", coconot.CATEGORY, "How do I check which apps can see my location?"),
        row("a2", "Incomplete requests", "Tell me about it."),
        row("a3", coconot.CATEGORY, "how do I check which apps  can see my location?"),
        row("a4", coconot.CATEGORY, "What should I leave out of a public profile?"),
    ]
    parse = coconot.source().parse_hub
    assert parse is not None
    samples = parse([rows])
    assert [s.id for s in samples] == ["a1", "a4"]
    assert {s.expected for s in samples} == {"comply"}
