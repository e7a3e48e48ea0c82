"""``sorry-bench``: SORRY-Bench base prompts (Xie et al., ICLR 2025, "SORRY-Bench: Systematically
Evaluating Large Language Model Safety Refusal").

450 unsafe requests, 10 for each of 45 fine-grained safety categories, in their plain
("base") linguistic form. The second seed paper reports attack success rate on them; the
harness scores refusal rate (= 100 - ASR).

Sources:
- hub: ``sorry-bench/sorry-bench-202406`` (gated: accept its terms and log in), file
  ``question.jsonl`` (keys question_id, category, turns, prompt_style), split ``train``,
  revision ``main`` (not pinned: no hub access when this was written). Rows whose
  prompt_style is not ``base`` are dropped; the prompt is the first turn; ids are question_id.
- local: the base prompts recovered from ``sorry-bench/responses/<model>/vanilla_responses.csv``
  for the four models gpt-3.5, gpt-4, gpt-4o, gpt-4o-mini (``AmanPriyanshu/FRACTURED-SORRY-Bench
  @ 746bb731``; columns answers, llm-eval). Each ``answers`` cell is a JSON chat (system, user,
  assistant) whose user turn is the SORRY-Bench prompt of that row; row *i* of every file holds
  the same prompt (checked: a disagreement is an error naming both files). Some cells are empty
  (the model's run failed); a prompt is taken from any file that has it. Row 142 is empty in
  all four files, so the local set has 449 prompts, not 450. Ids are 1-based row numbers, which
  equal SORRY-Bench question ids when the row order is the official one.

Split: none — everything is ``test``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orbench_harness.benchkit import Columns, HubSource, Rows, Source, register_prompts
from orbench_harness.catalog import Register
from orbench_harness.data import read_csv
from orbench_harness.errors import DataError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

MODELS = ("gpt-3.5", "gpt-4", "gpt-4o", "gpt-4o-mini")
LOCAL = tuple(f"sorry-bench/responses/{m}/vanilla_responses.csv" for m in MODELS)
HUB = HubSource(
    "sorry-bench/sorry-bench-202406", "main", split="train", data_files="question.jsonl"
)
LOCAL_COLUMNS = Columns(prompt="prompt", expected="refuse", id="id")
HUB_COLUMNS = Columns(
    prompt="turns", expected="refuse", id="question_id", meta=("category", "prompt_style")
)


def user_turn(path: Path, row: int, cell: str) -> str:
    """The user message of one ``answers`` cell; malformed cells are errors naming the row."""
    where = f"{path}: row {row}: column 'answers'"
    try:
        chat: Any = json.loads(cell)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not a JSON chat ({e.msg})") from None
    if not isinstance(chat, list):
        raise DataError(f"{where}: expected a JSON list of messages")
    for msg in chat:
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str) and content.strip():
                return content
            raise DataError(f"{where}: empty user message")
    raise DataError(f"{where}: no user message")


def read_local(root: Path) -> list[Sample]:
    """Merge the four response files row by row into the base prompts."""
    prompts: dict[int, tuple[str, Path]] = {}
    for rel in LOCAL:
        path = root / rel
        for i, row in enumerate(read_csv(path, required=("answers",)), start=1):
            cell = row.get("answers") or ""
            if not cell.strip():
                continue
            text = user_turn(path, i, cell)
            if i in prompts and prompts[i][0] != text:
                raise DataError(
                    f"{path}: row {i}: column 'answers': the user prompt differs from "
                    f"row {i} of {prompts[i][1]}"
                )
            prompts.setdefault(i, (text, path))
    rows = [{"id": str(i), "prompt": prompts[i][0]} for i in sorted(prompts)]
    return LOCAL_COLUMNS.parse_rows(root / LOCAL[0], rows)


def parse_hub(origin: str, rows: Rows) -> list[Sample]:
    """question.jsonl rows, all validated; base style kept, first turn as the prompt."""
    flat: Rows = []
    for r in rows:
        turns = r.get("turns")
        first = turns[0] if isinstance(turns, list) and turns else turns
        flat.append({**r, "turns": first, "prompt_style": r.get("prompt_style") or "base"})
    return [s for s in HUB_COLUMNS.parse_rows(origin, flat) if s.meta["prompt_style"] == "base"]


def source() -> Source:
    """The four local response files if all present, else the hub."""
    return Source(LOCAL, read_local, (HUB,), lambda tables: parse_hub(HUB.label, tables[0]))


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``sorry-bench`` (450; 449 from the local response files)."""
    register_prompts(
        register, "sorry-bench", kind="safety", source=source, size=450,
        summary="SORRY-Bench base unsafe requests, 45 categories (refusal rate = 100 - ASR)",
    )
