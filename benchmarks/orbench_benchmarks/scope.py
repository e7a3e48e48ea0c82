"""``scope``: SCOPE, benign prompts with spurious unsafe features (reds-lab.github.io/SCOPE).

SCOPE rewrites red-teaming prompts into benign requests that keep the surface features
(keywords, syntax) a safety-tuned model associates with harm, so refusing them is
over-refusal; scored by compliance rate. Each prompt carries the HEx-PHI category (1-11) of
the red-teaming prompt it was derived from.

Sources:
- local: ``scope/scope_prompts.jsonl`` (keys prompt, hexphi_category; 770 rows), derived from
  ``reds-lab/WokeyTalky @ 6de091f5 : WokeyTalky_Research_Code/scripts/archive
  results/base-generalv2/*_results.json`` — WokeyTalky is SCOPE's earlier name; see
  ``reds-lab.github.io/SCOPE``. Ids are 1-based row numbers.
- hub: none. The final SCOPE release's hub location could not be resolved from here, so no
  hub loader is offered (a guessed id would fail in a confusing way); provide the file above.

Split (ACTOR protocol): 25 prompts drawn by seed are ``train``; the other 745 are ``test``.
"""

from __future__ import annotations

from orbench_harness.benchkit import Columns, Source, SplitRule, register_prompts, single_table
from orbench_harness.catalog import Register
from orbench_harness.hookspecs import hookimpl

LOCAL = "scope/scope_prompts.jsonl"
COLUMNS = Columns(prompt="prompt", expected="comply", meta=("hexphi_category",))


def source() -> Source:
    """Local file only."""
    return single_table(
        LOCAL, COLUMNS.read_jsonl, hub_note="the final SCOPE release's hub id is not resolved"
    )


@hookimpl
def orbench_register_benchmarks(register: Register) -> None:
    """Register ``scope`` (770)."""
    register_prompts(
        register, "scope", kind="over_refusal", source=source, size=770,
        rule=SplitRule(train_n=25),
        summary="SCOPE benign prompts with spurious unsafe features (compliance rate)",
    )
