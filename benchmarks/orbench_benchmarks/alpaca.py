"""``alpaca``: Alpaca instructions without inputs (Taori et al., 2023), a benign training pool.

Plain, harmless instructions. The harness's alignment command pairs them with the model's own
answers when it builds the safety-tuned ``smollm2-135m-safety`` organism, and methods such as
SFT may use them as generic benign data; the held-out part measures compliance on ordinary
requests. A training source, in no suite.

Sources:
- local: ``alpaca/harmless_train.json``, ``alpaca/harmless_val.json``,
  ``alpaca/harmless_test.json`` (JSON lists of objects with instruction, category; 18793 +
  6264 + 6266 rows; CC-BY-NC-4.0), the files ``andyrdt/refusal_direction @ 9d852fae :
  dataset/splits/harmless_{train,val,test}.json`` (Arditi et al., 2024: Alpaca instructions
  with an empty input field). Ids are ``<split>-<row>``.
- hub: ``tatsu-lab/alpaca`` split ``train`` (columns instruction, input, output, text),
  revision ``dce01c9b08f87459cf36a430d809084718273017`` (a pin found in a third-party
  repository; not verified from here). Rows with a non-empty ``input`` are dropped (as
  refusal_direction does); the rest are divided 60/20/20 into train/val/test by a fixed hash
  rank (independent of the run seed), mirroring the local files' proportions.

Split: ``train`` is the train file; ``test`` is everything else (val and test files), so the
two never overlap.
"""

from __future__ import annotations

from pathlib import Path

from orbench_harness.benchkit import (
    Columns,
    HubSource,
    Rows,
    Source,
    SplitRule,
    rank_key,
    register_prompts,
)
from orbench_harness.catalog import Register
from orbench_harness.data import read_json_list
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

SPLITS = ("train", "val", "test")
LOCAL = tuple(f"alpaca/harmless_{s}.json" for s in SPLITS)
HUB = HubSource("tatsu-lab/alpaca", "dce01c9b08f87459cf36a430d809084718273017", split="train")
COLUMNS = Columns(prompt="instruction", expected="comply", id="id", meta=("split",))


def read_local(root: Path) -> list[Sample]:
    """The three split files, each validated, ids prefixed by split."""
    out: list[Sample] = []
    for split, rel in zip(SPLITS, LOCAL, strict=True):
        path = root / rel
        rows = read_json_list(path, required=("instruction",))
        tagged = [{**r, "id": f"{split}-{i}", "split": split} for i, r in enumerate(rows, 1)]
        out += COLUMNS.parse_rows(path, tagged)
    return out


def parse_hub(origin: str, rows: Rows) -> list[Sample]:
    """Instruction-only rows, split 60/20/20 by a fixed hash rank of the row number."""
    kept = [(i, r) for i, r in enumerate(rows, start=1) if not str(r.get("input") or "").strip()]
    order = sorted(kept, key=lambda ir: rank_key("alpaca", 0, "split", str(ir[0])))
    n = len(order)
    split_of = {
        i: "train" if k < 0.6 * n else "val" if k < 0.8 * n else "test"
        for k, (i, _) in enumerate(order)
    }
    tagged = [{**r, "id": f"{split_of[i]}-{i}", "split": split_of[i]} for i, r in kept]
    return COLUMNS.parse_rows(origin, tagged)


def source() -> Source:
    """The three local files if all present, else the hub."""
    return Source(LOCAL, read_local, (HUB,), lambda tables: parse_hub(HUB.label, tables[0]))


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``alpaca`` (31323 locally; training source)."""
    register_prompts(
        register, "alpaca", kind="over_refusal", source=source, size=31323,
        rule=SplitRule(meta_split="split"), training_only=True,
        summary="Alpaca instructions, benign training pool (train file to train)",
    )
