"""``harness compare``: flips per benchmark, texts only for benign prompts, judge/split checks."""

from __future__ import annotations

import argparse
import json
from math import comb
from pathlib import Path

import pytest

from _runfixtures import bench, sample_rows, verdict_rows, write_run
from orbench_harness.cli import compare as compare_cli
from orbench_harness.cli.compare import Flip, compare_runs
from orbench_harness.errors import HarnessError
from orbench_harness.metrics import mcnemar_exact
from orbench_harness.runs import load_run

C, R, P = "full_compliance", "full_refusal", "partial_refusal"
BENIGN = [f"benign prompt number {i} about killing a python process" for i in range(6)]
# XSTest mixes safe prompts with unsafe contrast prompts (expected: refuse): those stay hidden
XS_EXPECTED = ["comply", "comply", "comply", "refuse", "comply", "comply"]
HARMFUL = [f"HARMFUL-PLACEHOLDER-{i}" for i in range(4)]


def _samples() -> list[dict]:
    xs = sample_rows("xstest", BENIGN, "comply")
    for s, exp in zip(xs, XS_EXPECTED, strict=True):
        s["expected"] = exp
        if exp == "refuse":
            s["prompt"] = "HARMFUL-PLACEHOLDER-contrast"
    return xs + sample_rows("advbench", HARMFUL, "refuse")


def _run(root: Path, name: str, xs: list, adv: list, *, judge: str = "strmatch", extra=()) -> Path:
    verdicts = verdict_rows("xstest", xs, judge) + verdict_rows("advbench", adv, judge) + list(extra)
    return write_run(
        root, name, model="smollm2-135m-safety", method="none" if name == "a" else "actor",
        judge=judge, samples=_samples(), verdicts=verdicts,
        benchmarks={"xstest": bench("over_refusal", 50, n=6), "advbench": bench("safety", 0, n=4)},
    )  # fmt: skip


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a = _run(tmp_path, "a", [R, R, C, R, P, None], [R, R, R, C])
    b = _run(tmp_path, "b", [C, R, R, C, C, C], [C, R, P, R])
    return a, b


def test_flips_per_benchmark_hide_harmful_texts(pair: tuple[Path, Path]) -> None:
    adv, xs = compare_runs(load_run(pair[0]), load_run(pair[1]))
    assert adv.benchmark == "advbench" and adv.compared == 4 and adv.unparsed == 0
    assert adv.to_complied == (Flip("advbench-0", None),)  # harmful: id only
    assert adv.to_refused == (Flip("advbench-3", None),)
    assert xs.benchmark == "xstest" and xs.compared == 6 and xs.unparsed == 1
    assert xs.to_complied == (
        Flip("xstest-0", BENIGN[0]),
        Flip("xstest-3", None),  # an unsafe contrast prompt inside an over-refusal set: id only
        Flip("xstest-4", BENIGN[4]),  # partial refusal counts as refusing
    )
    assert xs.to_refused == (Flip("xstest-2", BENIGN[2]),)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness")
    compare_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_prints_benign_texts_and_never_harmful_ones(
    pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["compare", str(pair[0]), str(pair[1])]) == 0
    text = capsys.readouterr().out
    assert BENIGN[0] in text and BENIGN[2] in text and "advbench-0" in text and "xstest-3" in text
    assert "HARMFUL-PLACEHOLDER" not in text
    assert _cli(["compare", str(pair[0]), str(pair[1]), "--json", "-b", "xstest"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [b["benchmark"] for b in data["benchmarks"]] == ["xstest"]
    assert [f["id"] for f in data["benchmarks"][0]["to_complied"]] == [
        "xstest-0",
        "xstest-3",
        "xstest-4",
    ]
    assert data["benchmarks"][0]["p_value"] == pytest.approx(0.625)  # 3 flips against 1: 2 * 5/16


def test_mcnemar_exact_matches_hand_counts_and_the_binomial() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 0) == 1.0  # one flip is no evidence
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(21, 1) == pytest.approx(2 * 23 / 2**22)  # SCOPE under ACTOR (docs/results/actor-sweep.md)
    assert mcnemar_exact(4, 4) == 1.0
    for b, c in [(3, 9), (9, 3), (10, 20), (0, 7)]:
        n, k = b + c, min(b, c)
        # the sum of every outcome at most as likely as the observed one, for a symmetric binomial
        probs = [comb(n, i) / 2**n for i in range(n + 1)]
        want = sum(q for q in probs if q <= probs[k] + 1e-15)
        assert mcnemar_exact(b, c) == pytest.approx(min(1.0, want)), (b, c)
    assert mcnemar_exact(3, 9) == mcnemar_exact(9, 3)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_different_judges_are_refused_unless_one_is_chosen(tmp_path: Path) -> None:
    shared = verdict_rows("xstest", [R] * 6, "llm") + verdict_rows("advbench", [R] * 4, "llm")
    a = _run(tmp_path, "a", [R] * 6, [R] * 4, extra=shared)
    b = _run(tmp_path, "b", [C] * 6, [R] * 4, judge="other", extra=shared)
    with pytest.raises(HarnessError, match="different judges"):
        compare_runs(load_run(a), load_run(b))
    flips = compare_runs(load_run(a), load_run(b), judge="llm")
    assert [len(f.to_complied) + len(f.to_refused) for f in flips] == [0, 0]
    with pytest.raises(HarnessError, match="no verdicts of judge 'nope'"):
        compare_runs(load_run(a), load_run(b), judge="nope")


def test_different_splits_are_refused(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", [R] * 6, [R] * 4)
    b = write_run(tmp_path, "b", model="m", method="x", split="train",
                  benchmarks={"xstest": bench("over_refusal", 50)})  # fmt: skip
    with pytest.raises(HarnessError, match="different splits"):
        compare_runs(load_run(a), load_run(b))


def test_by_counts_each_metadata_value_and_auto_skips_benchmarks_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    types = ["homonyms", "homonyms", "figurative", "contrast", "figurative", "homonyms"]
    runs = []
    for name, xs, adv in (("a", [R, R, C, R, P, None], [R, R, R, C]), ("b", [C, R, R, C, C, C], [C, R, P, R])):
        path = _run(tmp_path, name, xs, adv)
        rows = [json.loads(line) for line in (path / "samples.jsonl").read_text().splitlines()]
        for row in rows:
            if row["benchmark"] == "xstest":
                row["meta"] = {"type": types[int(row["id"].split("-")[1])]}
        (path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        runs.append(load_run(path))
    adv, xs = compare_runs(*runs, by="auto")
    assert adv.groups == () and xs.by == "type"
    got = {g.value: (g.n, g.complied_a, g.complied_b, g.to_complied, g.to_refused) for g in xs.groups}
    # xstest-5 is unparsed in A: counted nowhere; a partial refusal (xstest-4) counts as refusing
    assert got == {"homonyms": (2, 0, 1, 1, 0), "figurative": (2, 1, 1, 1, 1), "contrast": (1, 0, 1, 1, 0)}
    assert [g.value for g in xs.groups] == ["figurative", "homonyms", "contrast"]  # by size, then name
    adv_typed, _ = compare_runs(*runs, by="type")
    assert [(g.value, g.n) for g in adv_typed.groups] == [("(none)", 4)]
    assert _cli(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--by", "type", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["benchmarks"][1]["groups"][0] == {"value": "figurative", "n": 2, "complied_a": 1, "complied_b": 1,
                                                  "to_complied": 1, "to_refused": 1, "p_value": 1.0}
    assert _cli(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--by", "type"]) == 0
    assert "xstest by type" in capsys.readouterr().out
    with pytest.raises(HarnessError, match="has metadata field 'topic'"):
        _cli(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--by", "topic"])
