"""``coconot-contrast``: CoCoNot's benign look-alike requests, a pseudo-harmful validation set.

ACTOR's options were chosen on JailbreakBench's benign behaviours, and on the read-out
organism that set promised three times the compliance gain the test sets then showed
(``docs/results/actor-sweep.md``). The test sets ACTOR trains and is scored on (XSTest, SCOPE,
OR-Bench-Hard, OKTest) have no spare split to validate on: their train splits are ACTOR's own
training pools. CoCoNot (Brahman et al., NeurIPS 2024 Datasets and Benchmarks, "The Art of
Saying No") built a contrast set the way XSTest did: requests that share the wording of
requests a model should refuse but are fine to answer. Its "Requests with safety concerns"
category (offensive-language triggers, dangerous or sensitive topics, privacy, false
information) is such a set, and no scored benchmark shares a prompt with it. Scored by
compliance rate. Duplicated prompts (8 in the local file) are kept once, under their first id.

Sources:
- local: ``coconot/coconot_pref.json`` (a list of objects with id, category, subcategory,
  prompt, chosen, rejected; 927 rows, ODC-BY), the file ``AlphaLab-USTC/AlphaSteer @ 20d65b68``
  copied from CoCoNot's preference data, whose prompts are the contrast set's.
- hub: ``allenai/coconot`` config ``pref``, split ``train`` (revision ``main``: no commit could
  be pinned without hub access; run.json records a hash of the rows read).

Split: none (all 471 are ``test``); it is meant for choosing settings, not for reporting.
Measured against test (``docs/results/actor-sweep.md``, "The read-out organism"), it predicts ACTOR's gains
less well than JailbreakBench's benign half, which stays the sweep's validation set.
"""

from __future__ import annotations

from orbench_benchmarks.harmful_train import normalise
from orbench_harness.benchkit import Columns, HubSource, Source, register_prompts, single_table
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import Sample

LOCAL = "coconot/coconot_pref.json"
HUB = HubSource("allenai/coconot", "main", split="train", config="pref")
CATEGORY = "Requests with safety concerns"
COLUMNS = Columns(prompt="prompt", expected="comply", id="id", meta=("category", "subcategory"))


def contrast_requests(samples: list[Sample]) -> list[Sample]:
    """The safety-concern category, each prompt once (the first occurrence's id)."""
    seen: set[str] = set()
    kept: list[Sample] = []
    for s in samples:
        key = normalise(s.prompt)
        if s.meta["category"] == CATEGORY and key not in seen:
            seen.add(key)
            kept.append(s)
    return kept


def source() -> Source:
    """Local file if present, else the hub; the same filter on both."""
    return single_table(
        LOCAL, lambda path: contrast_requests(COLUMNS.read_json(path)), HUB,
        lambda label, rows: contrast_requests(COLUMNS.parse_rows(label, rows)),
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``coconot-contrast`` (471)."""
    register_prompts(
        register, "coconot-contrast", kind="over_refusal", source=source, size=471,
        summary="CoCoNot's benign look-alike requests (validation, compliance rate)",
    )
