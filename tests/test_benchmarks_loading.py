"""Loader validation: every bad file is a DataError naming file, row and column; nothing else
escapes (property tests); hub-only loaders work on fixtures and through ``datasets`` itself.

No network: the hub path is exercised with ``datasets.load_dataset`` on a local directory, and
the unreachable-hub message with ``HF_HUB_OFFLINE=1`` in a subprocess.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbench_benchmarks import gsm8k, harmful_train, oktest, orbench, phtest, scope, sorry_bench, sql1k
from orbench_benchmarks import xstest as xs
from orbench_harness.benchkit import HubSource, PromptBenchmark, Source, SplitRule, hub_rows, select
from orbench_harness.data import DataSource
from orbench_harness.errors import DataError
from orbench_harness.types import Sample

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
XS_HEADER = ["id", "prompt", "type", "label", "focus", "note"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def xs_row(i: int, prompt: str, label: str = "safe") -> list[str]:
    return [str(i), prompt, "homonyms", label, "kill", ""]


# ------------------------------------------------------------ clear errors


def test_missing_file_names_the_file_to_provide(tmp_path: Path) -> None:
    bench = scope.source()
    with pytest.raises(DataError) as e:
        PromptBenchmark("scope", "over_refusal", bench, DataSource(tmp_path)).samples()
    msg = str(e.value)
    assert str(tmp_path / "scope" / "scope_prompts.jsonl") in msg and "--data-dir" in msg


def test_no_data_dir_and_no_hub_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"oktest: no data directory given .*provide oktest/OKTest.csv"):
        PromptBenchmark("oktest", "over_refusal", oktest.source(), DataSource(None)).samples()


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", ["id", "prompt", "type"], [["1", "a", "t"]])
    with pytest.raises(DataError, match=r"x\.csv: missing column 'label'"):
        xs.read_file(path)


def test_empty_prompt_names_row_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", XS_HEADER, [xs_row(1, "fine"), xs_row(2, "   ")])
    with pytest.raises(DataError, match=r"x\.csv: row 2: empty prompt in column 'prompt'"):
        xs.read_file(path)


def test_duplicate_id_names_both_rows(tmp_path: Path) -> None:
    rows = [xs_row(1, "a"), xs_row(2, "b"), xs_row(1, "c")]
    path = write_csv(tmp_path / "x.csv", XS_HEADER, rows)
    with pytest.raises(DataError, match=r"row 3: duplicate id '1' in column 'id' \(first at row 1\)"):
        xs.read_file(path)


def test_empty_id_is_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", XS_HEADER, [xs_row(1, "a"), ["", "b", "t", "safe", "", ""]])
    with pytest.raises(DataError, match=r"row 2: empty id in column 'id'"):
        xs.read_file(path)


def test_unknown_label_names_row_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", XS_HEADER, [xs_row(1, "a", label="maybe")])
    with pytest.raises(DataError, match=r"row 1: unexpected value 'maybe' in column 'label'"):
        xs.read_file(path)


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "OKTest.csv"
    path.write_bytes(b"prompt\nfine\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"OKTest\.csv: not UTF-8 \(line 3"):
        oktest.COLUMNS.read_csv(path)


def test_malformed_jsonl_names_row(tmp_path: Path) -> None:
    path = tmp_path / "scope.jsonl"
    path.write_text('{"prompt": "a", "hexphi_category": 1}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"scope\.jsonl: row 2: malformed JSON"):
        scope.COLUMNS.read_jsonl(path)


def test_sorry_bench_bad_cell_and_disagreeing_files(tmp_path: Path) -> None:
    def chat(text: str) -> str:
        return json.dumps([{"role": "user", "content": text}, {"role": "assistant", "content": "x"}])

    for rel in sorry_bench.LOCAL:
        write_csv(tmp_path / rel, ["answers", "llm-eval"], [[chat("p1"), "ok"], ["", ""]])
    assert [s.id for s in sorry_bench.read_local(tmp_path)] == ["1"]
    write_csv(tmp_path / sorry_bench.LOCAL[2], ["answers", "llm-eval"], [[chat("p1"), ""], ["{", ""]])
    with pytest.raises(DataError, match=r"gpt-4o/vanilla_responses\.csv: row 2: column 'answers'"):
        sorry_bench.read_local(tmp_path)
    write_csv(tmp_path / sorry_bench.LOCAL[2], ["answers", "llm-eval"], [[chat("other"), ""]])
    with pytest.raises(DataError, match=r"row 1: column 'answers': the user prompt differs"):
        sorry_bench.read_local(tmp_path)


def test_harmful_train_string_list_names_row(tmp_path: Path) -> None:
    path = tmp_path / "tdc.json"
    path.write_text(json.dumps(["a request", 3]), encoding="utf-8")
    with pytest.raises(DataError, match=r"tdc\.json: row 2: expected a non-empty string"):
        harmful_train.read_string_list(path)


def test_unknown_split_is_an_error() -> None:
    with pytest.raises(DataError, match="unknown split 'dev'"):
        select([], SplitRule(), "dev", name="x", limit=None, seed=0)  # type: ignore[arg-type]


# ------------------------------------------------------------ property tests

cell = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)  # any encodable character


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=300), cell.map(lambda t: t.encode("utf-8"))))
def test_arbitrary_bytes_load_or_raise_data_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "any.csv"
    path.write_bytes(b"id,prompt,type,label,focus,note\n" + raw)
    try:
        samples = xs.read_file(path)
    except DataError:
        return
    assert all(isinstance(s, Sample) and s.prompt.strip() for s in samples)
    assert len({s.id for s in samples}) == len(samples)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(cell, cell, st.sampled_from(["safe", "unsafe", "other"])), max_size=8))
def test_well_formed_csv_loads_exactly_or_raises(tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    path = write_csv(tmp_path / "x.csv", XS_HEADER, [[i, p, "t", lab, "", ""] for i, p, lab in rows])
    valid = (
        all(i.strip() and p.strip() and lab != "other" for i, p, lab in rows)
        and len({i for i, _, _ in rows}) == len(rows)
    )
    try:
        samples = xs.read_file(path)
    except DataError:
        assert not valid
        return
    assert valid
    assert [(s.id, s.prompt, s.meta["label"]) for s in samples] == list(rows)


nonblank = cell.filter(lambda t: t.strip() != "")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(nonblank, nonblank, st.sampled_from(["safe", "unsafe"])),
        min_size=1, max_size=8, unique_by=lambda r: r[0],
    )
)
def test_valid_csv_round_trips(tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    """Commas, quotes, line breaks and any Unicode inside cells survive loading."""
    path = write_csv(tmp_path / "x.csv", XS_HEADER, [[i, p, "t", lab, "", ""] for i, p, lab in rows])
    samples = xs.read_file(path)
    assert [(s.id, s.prompt, s.expected) for s in samples] == [
        (i, p, "comply" if lab == "safe" else "refuse") for i, p, lab in rows
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=cell, lines=st.lists(cell, max_size=5))
def test_arbitrary_jsonl_loads_or_raises_data_error(tmp_path: Path, text: str, lines: list[str]) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([text, *lines]), encoding="utf-8")
    try:
        samples = scope.COLUMNS.read_jsonl(path)
    except DataError:
        return
    assert all(s.prompt.strip() for s in samples)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 60), k=st.integers(0, 70), seed=st.integers(0, 2**31),
    limit=st.integers(0, 70),
)
def test_split_is_a_partition_and_limit_is_nested(n: int, k: int, seed: int, limit: int) -> None:
    samples = [Sample(f"s{i}", f"prompt {i}", "comply", {"g": str(i % 3)}) for i in range(n)]
    for rule in (SplitRule(train_n=k), SplitRule(per="g", train_n=k), SplitRule(per="g", fraction=0.5)):
        train = select(samples, rule, "train", name="b", limit=None, seed=seed)
        test = select(samples, rule, "test", name="b", limit=None, seed=seed)
        assert {s.id for s in train}.isdisjoint({s.id for s in test})
        assert len(train) + len(test) == n
        # Same rows in a different order: same division (a function of the rows, not their order).
        again = select(list(reversed(samples)), rule, "train", name="b", limit=None, seed=seed)
        assert {s.id for s in again} == {s.id for s in train}
        small = select(samples, rule, "test", name="b", limit=limit, seed=seed)
        bigger = select(samples, rule, "test", name="b", limit=limit + 1, seed=seed)
        assert len(small) == min(limit, len(test)) and {s.id for s in small} <= {s.id for s in bigger}
    assert len(select(samples, SplitRule(train_n=k), "train", name="b", limit=None, seed=seed)) == min(k, n)


# ------------------------------------------------------------ hub-only loaders on fixtures


def test_phtest_fixture_keeps_harmless_rows() -> None:
    samples = phtest.read_file(FIXTURES / "phtest" / "PHTest.csv")
    assert [s.id for s in samples] == ["1", "2", "4", "5", "7", "8"]
    assert all(s.expected == "comply" for s in samples)


def test_orbench_toxic_fixture() -> None:
    samples = orbench.TOXIC.read_csv(FIXTURES / "or-bench" / "or-bench-toxic.csv")
    assert len(samples) == 5 and {s.expected for s in samples} == {"refuse"}
    assert samples[0].meta["category"] == "illegal"


def test_gsm8k_fixture() -> None:
    samples = gsm8k.COLUMNS.read_jsonl(FIXTURES / "gsm8k" / "test.jsonl")
    assert [s.id for s in samples] == ["1", "2", "3", "4"]
    assert samples[1].prompt.startswith("A train travels")


def test_sql1k_fixture_renders_the_template() -> None:
    samples = sql1k.read_file(FIXTURES / "sql-1k" / "sql_create_context_v4.json")
    assert len(samples) == 5
    first = samples[0]
    assert "CREATE TABLE rivers" in first.prompt and "longer than 500 km" in first.prompt
    assert first.meta["question"] == "How many rivers are longer than 500 km?"


def test_sql1k_keeps_a_fixed_1000_of_a_larger_file(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}?", "context": "CREATE TABLE t (a INT)", "answer": "x"} for i in range(1500)]
    path = tmp_path / "sql.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    a = [s.id for s in sql1k.read_file(path)]
    b = [s.id for s in sql1k.read_file(path)]
    assert len(a) == 1000 and a == b


def test_hub_path_through_datasets_on_a_local_directory(tmp_path: Path) -> None:
    """``load_dataset`` on a directory follows the same code path as a hub id."""
    pytest.importorskip("datasets")
    hub = HubSource(
        str(FIXTURES / "phtest"), "main", split="train", data_files="PHTest.csv",
        options=(("cache_dir", str(tmp_path / "hf")),),
    )
    rows = hub_rows(hub)
    assert len(rows) == 8 and isinstance(rows[0]["ID"], int)  # the CSV builder types ids
    src = Source(
        (phtest.LOCAL,), phtest.read_file, (hub,), lambda t: phtest.parse_hub(hub.label, t[0])
    )
    bench = PromptBenchmark("phtest", "over_refusal", src, DataSource(None), SplitRule(train_n=2))
    assert [s.id for s in bench.samples("all")] == ["1", "2", "4", "5", "7", "8"]
    assert len(bench.samples("train")) == 2 and len(bench.samples("test")) == 4
    (f,) = bench.data_files()
    assert f.path.startswith("hub:") and len(f.sha256) == 64


def test_local_file_wins_over_the_hub() -> None:
    bench = PromptBenchmark("phtest", "over_refusal", phtest.source(), DataSource(FIXTURES))
    assert len(bench.samples("all")) == 6
    assert bench.data_files()[0].path.endswith("PHTest.csv")


def test_unreachable_hub_says_which_file_to_provide(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    code = (
        "from orbench_benchmarks.phtest import source\n"
        "from orbench_harness.benchkit import PromptBenchmark\n"
        "from orbench_harness.data import DataSource\n"
        "from orbench_harness.errors import DataError\n"
        "try:\n"
        "    PromptBenchmark('phtest', 'over_refusal', source(), DataSource(None)).samples()\n"
        "except DataError as e:\n"
        "    print('DataError:', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert "DataError: phtest: no data directory given" in out.stdout, out.stderr[-500:]
    assert "furonghuang-lab/PHTest" in out.stdout
    assert "provide phtest/PHTest.csv under --data-dir" in out.stdout
