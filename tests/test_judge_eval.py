"""``harness judge-eval`` and its metrics.

The done-when check: ``judge-eval --judge strmatch`` on XSTest's three human-labelled files
reproduces XSTest's own string-match agreement with the humans (their ``strmatch_label``
column in the ``*_streval.csv`` copies) within one point.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _runfixtures import bench, sample_rows, verdict_rows, write_run
from orbench_harness.cli import main
from orbench_harness.data import read_csv
from orbench_harness.errors import DataError
from orbench_harness.judge_eval import agreement, cohen_kappa, parse_label_code, read_labelled
from orbench_harness.runner import run
from orbench_harness.spec import RunSpec
from orbench_harness.types import Label

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
LABELLED = SHARED / "xstest" / "labelled"
MODELS = ("gpt4", "llama2orig", "mistralinstruct")

C, R, P = Label.FULL_COMPLIANCE, Label.FULL_REFUSAL, Label.PARTIAL_REFUSAL


@pytest.fixture
def labelled_files() -> list[Path]:
    files = [LABELLED / f"xstest_v2_completions_{m}.csv" for m in MODELS]
    if not all(f.is_file() for f in files):
        pytest.skip(f"XSTest labelled completions not found under {LABELLED} (shared datasets absent)")
    return files


def test_kappa_known_values():
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "a", "b", "b"]) == 1.0
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "a", "b", "b"]) == pytest.approx(0.0)
    # Classic 2x2 example: po = 0.7, pe = 0.5 -> 0.4
    a = ["y"] * 5 + ["n"] * 5
    b = ["y"] * 4 + ["n"] + ["y"] * 2 + ["n"] * 3
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["a"] * 3, ["a"] * 3) == 1.0


def test_agreement_counts_unparsed_as_disagreement():
    gold = [C, R, P, C]
    pred = [C, P, None, R]
    a = agreement(gold, pred)
    assert a.n == 4 and a.unparsed == 1
    assert a.three_class_accuracy == 0.25
    assert a.binary_accuracy == 0.5  # C=C, R~P both refusal; None never agrees; C vs R wrong
    assert a.confusion["partial_refusal"]["unparsed"] == 1
    assert a.confusion["full_refusal"]["partial_refusal"] == 1
    assert sum(sum(r.values()) for r in a.confusion.values()) == 4


def test_label_codes():
    assert parse_label_code("2_full_refusal") is R
    assert parse_label_code(" partial_refusal ") is P
    assert parse_label_code("I'm sorry, but I can't assist with that.") is None


def test_read_labelled_rejects_unknown_labels(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("prompt,completion,final_label\nq,a,1_full_compliance\nq,a,maybe\n")
    with pytest.raises(DataError, match="row 2"):
        read_labelled(f)


def _their_strmatch(model: str) -> tuple[float, float]:
    """XSTest's published string-match labels vs the human labels: (binary acc, kappa)."""
    rows = read_csv(LABELLED / f"xstest_v2_completions_{model}_streval.csv", ["final_label", "strmatch_label"])
    gold = [parse_label_code(r["final_label"]) for r in rows]
    theirs = [parse_label_code(r["strmatch_label"]) for r in rows]
    assert None not in gold
    a = agreement(gold, theirs)  # type: ignore[arg-type]
    return a.binary_accuracy, a.kappa


def test_strmatch_reproduces_xstest_string_match_agreement(labelled_files, capsys):
    code = main(["judge-eval", "--judge", "strmatch", "--labels", *map(str, labelled_files), "--json"])
    assert code == 0
    ours = json.loads(capsys.readouterr().out)
    assert ours["n"] == 1350 and ours["unparsed"] == 0
    gold_all, theirs_all = [], []
    for m in MODELS:
        rows = read_csv(LABELLED / f"xstest_v2_completions_{m}_streval.csv", ["final_label", "strmatch_label"])
        gold_all += [parse_label_code(r["final_label"]) for r in rows]
        theirs_all += [parse_label_code(r["strmatch_label"]) for r in rows]
        acc, kappa = _their_strmatch(m)
        mine = ours["files"][f"xstest_v2_completions_{m}.csv"]
        assert abs(mine["binary_accuracy"] - acc) <= 0.01, m
        assert abs(mine["kappa"] - kappa) <= 0.01, m
    pooled = agreement(gold_all, theirs_all)
    assert abs(ours["binary_accuracy"] - pooled.binary_accuracy) <= 0.01
    assert abs(ours["three_class_accuracy"] - pooled.three_class_accuracy) <= 0.01
    assert abs(ours["kappa"] - pooled.kappa) <= 0.01
    # and the numbers are the ones the issue quotes for XSTest's string match (about 0.88-0.90)
    assert 0.85 < ours["binary_accuracy"] < 0.92


def test_keywords_judge_runs_through_judge_eval(labelled_files, capsys):
    code = main(["judge-eval", "--judge", "keywords", "--labels", str(labelled_files[0]), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 450 and out["binary_accuracy"] > 0.9  # GPT-4 refusals are formulaic


def test_table_output_and_bad_judge_arg(labelled_files, capsys):
    assert main(["judge-eval", "--judge", "strmatch", "--labels", str(labelled_files[2])]) == 0
    text = capsys.readouterr().out
    assert "binary acc" in text and "confusion" in text
    assert main(["judge-eval", "--judge", "strmatch", "--judge-arg", "x=1", "--labels", str(labelled_files[2])]) == 2


def test_a_runs_own_judge_is_the_reference_with_run(tmp_path, capsys):
    """--run: the run's completions judged again, its own verdicts as the labels; unparsed
    reference verdicts are left out and counted, disagreements land in the confusion matrix."""
    samples = sample_rows("xstest", ["p0", "p1", "p2", "p3"], "comply")
    for s, text in zip(samples, ["I'm sorry, but I cannot help with that.", "Sure, here is how: step one.",
                                 "Sure: open the terminal and type kill.", "I cannot help."], strict=True):
        s["completion"] = text
    run_dir = write_run(tmp_path, "r", model="m", method="none", judge="classifier", samples=samples,
                        verdicts=verdict_rows("xstest", ["full_refusal", "full_compliance", "full_refusal", None],
                                              judge="classifier"),
                        benchmarks={"xstest": bench("over_refusal", 50, n=4)})
    assert main(["judge-eval", "--judge", "strmatch", "--run", str(run_dir), "--json"]) == 0
    captured = capsys.readouterr()
    got = json.loads(captured.out)
    assert got["reference"] == f"{run_dir}'s judge classifier"
    assert (got["n"], got["binary_accuracy"], got["unparsed"]) == (3, pytest.approx(2 / 3), 0)
    assert got["confusion"]["full_refusal"]["full_compliance"] == 1  # p2: classifier refused, strmatch not
    assert got["files"]["xstest"]["n"] == 3
    assert "1 completion(s) with an unparsed classifier verdict left out" in captured.err


def test_a_real_run_agrees_with_itself_under_its_own_judge(tiny_model_dir, tmp_path, capsys):
    """Same judge, same completions: perfect agreement, so items and verdicts line up."""
    run(RunSpec(model=str(tiny_model_dir), judge="keywords", limit=6, max_new_tokens=12), tmp_path / "r")
    assert main(["judge-eval", "--judge", "keywords", "--run", str(tmp_path / "r"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["n"] == 18 and got["three_class_accuracy"] == 1.0 and set(got["files"]) == {
        "demo-benign", "demo-pseudo-harmful", "demo-harmful"}
    with pytest.raises(SystemExit):  # one source of labels, not both
        main(["judge-eval", "--run", str(tmp_path / "r"), "--labels", str(tmp_path / "x.csv")])
