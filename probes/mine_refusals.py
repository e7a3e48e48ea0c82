"""The benign requests a build refuses, as an id list for ``harness align --benign-extra``.

Why: every safety build of the organism sits on one trade-off line between refusing HEx-PHI and
answering UltraChat, while a linear probe of its own states separates the two almost perfectly
(``probes/decision_probe.py``). The benign requests a build refuses mark where its learned line
runs; a random draw of Alpaca requests seldom puts an example there. This script turns a judged
run of a build over Alpaca *train* requests into the list of those it did not fully answer,
so that the next build can be trained to answer them (hard-negative mining, in two stages).

    harness run --model smollm2-135m-safety --method none --benchmark alpaca --split train \\
        --limit 2000 --max-new-tokens 48 --data-dir ../shared/datasets --out runs/mine
    python probes/mine_refusals.py runs/mine --out runs/mined.txt
    harness align --model smollm2-135m --recipe safety --n-benign 700 \\
        --benign-extra runs/mined.txt --out runs/align-mined --data-dir ../shared/datasets

Verdicts the judge could not parse are counted and left out, never guessed. The list is sorted
by id, so the same run always gives the same file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orbench_harness.types import Label


def _label(value: object) -> Label | None:
    """The stored verdict as a Label; None (unparsed) for null or anything outside the vocabulary."""
    try:
        return Label(value) if value else None
    except ValueError:
        return None


def mined_ids(verdicts: Path, benchmark: str = "alpaca") -> tuple[list[str], Counter[Label | None]]:
    """Ids of ``benchmark``'s items not fully answered, sorted; and the count of each label."""
    labels: Counter[Label | None] = Counter()
    ids: list[str] = []
    with verdicts.open() as f:
        for line in f:
            v = json.loads(line)
            if v["benchmark"] != benchmark:
                continue
            label = _label(v["label"])
            labels[label] += 1
            if label is not None and label.is_refusal:
                ids.append(str(v["id"]))
    return sorted(ids), labels


def main(argv: list[str] | None = None) -> int:
    """Write the mined id list with a header naming its source run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a harness run directory (verdicts.jsonl) over alpaca --split train")
    ap.add_argument("--out", type=Path, required=True, help="id list to write")
    ap.add_argument("--benchmark", default="alpaca")
    args = ap.parse_args(argv)
    ids, labels = mined_ids(args.run / "verdicts.jsonl", args.benchmark)
    if not labels:
        raise SystemExit(f"{args.run}: no {args.benchmark} verdicts")
    if not all(i.startswith("train-") for i in ids):
        raise SystemExit(f"{args.run}: not a --split train run (ids like {ids[0]!r}); mining held-out "
                         "requests would train on the evaluation data")
    other = labels[None]
    run = json.loads((args.run / "run.json").read_text()) if (args.run / "run.json").exists() else {}
    spec = run.get("model") or {}
    model = " ".join(str(spec[k]) for k in ("name", "adapter") if spec.get(k)) or "?"
    header = [f"# mined from {args.run} (model {model}): {len(ids)} of {sum(labels.values())} "
              f"{args.benchmark} requests not fully answered; {other} unparsed verdicts left out"]
    args.out.write_text("\n".join(header + ids) + "\n")
    print(header[0].lstrip("# "))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
