"""The read-outs of `probes/separability.py` (AUC, logistic regression), `probes/decision_probe.py`
and the id list of `probes/mine_refusals.py`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from probes.separability import auc, logistic


def test_auc_orders_pairs_and_counts_ties_half() -> None:
    assert auc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auc(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])) == 0.0
    assert auc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5
    # pairs (2>1) (2<3) (4>1) (4>3): 3 of 4 ordered
    assert auc(torch.tensor([2.0, 4.0]), torch.tensor([1.0, 3.0])) == 0.75


def test_logistic_finds_the_informative_feature_and_generalises() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    y = (x[:, 2] > 0).double()
    w = logistic(x, y)
    assert int(w[:-1].abs().argmax()) == 2 and float(w[2]) > 0
    held = torch.randn(100, 5, generator=gen, dtype=torch.float64)
    pos, neg = held[held[:, 2] > 0], held[held[:, 2] <= 0]
    assert auc(pos @ w[:-1], neg @ w[:-1]) > 0.95
    # the penalty shrinks the weights: a stronger one gives a smaller norm
    assert float(logistic(x, y, l2=50.0)[:-1].norm()) < float(w[:-1].norm())


def test_probe_rates_count_flagged_and_passed_at_zero() -> None:
    from probes.decision_probe import rates_at_zero

    flagged, passed = rates_at_zero(torch.tensor([1.0, 2.0, -1.0, 0.5]), torch.tensor([-1.0, 0.0, 3.0]))
    assert flagged == 75.0  # 3 of 4 harmful scored above the threshold
    assert abs(passed - 200 / 3) < 1e-9  # 0 counts as passed: 2 of 3 benign


def test_mined_ids_are_the_train_requests_not_fully_answered(tmp_path: Path) -> None:
    from probes.mine_refusals import main

    run = tmp_path / "run"
    run.mkdir()
    rows = [("alpaca", "train-9", "full_refusal"), ("alpaca", "train-2", "full_compliance"),
            ("alpaca", "train-10", "partial_refusal"), ("alpaca", "train-4", "unparsed"),
            ("xstest", "train-1", "full_refusal")]
    (run / "verdicts.jsonl").write_text("".join(json.dumps({"benchmark": b, "id": i, "label": lab}) + "\n"
                                                for b, i, lab in rows))
    out = tmp_path / "mined.txt"
    assert main([str(run), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[1:] == ["train-10", "train-9"]  # sorted; other benchmarks and unparsed left out
    assert "2 of 4 alpaca requests" in lines[0] and "1 unparsed" in lines[0]
    (run / "verdicts.jsonl").write_text(json.dumps({"benchmark": "alpaca", "id": "test-3", "label": "full_refusal"}))
    with pytest.raises(SystemExit, match="not a --split train run"):
        main([str(run), "--out", str(out)])
