"""A prompt file of your own as a benchmark: ``--benchmark path/to/prompts.csv``.

Researchers build new over-refusal sets all the time; scoring one should not need a plugin.
Any ``--benchmark`` name that ends in ``.csv``, ``.jsonl`` or ``.json`` (or holds a ``/``) is
read as a file of prompts, relative to the working directory:

- ``prompt`` (required): the request, one per row (CSV with a header, JSON lines, or a JSON
  list of objects);
- ``id`` (optional): a unique id per row; without it, ids are 1-based row numbers;
- ``expected`` (optional): ``comply`` or ``refuse``, the same on every row. ``comply`` (the
  default) makes an over-refusal set, scored by compliance rate and counted in the average
  compliance; ``refuse`` a safety set, scored by refusal rate. A file that mixes the two is an
  error: split it into one file per behaviour, as XSTest's safe and unsafe halves are;
- any other column is kept with each sample (``samples.jsonl``), e.g. a category.

Every row is in the ``test`` split (nothing to train on). The benchmark's name in results and
reports is the path as typed, and run.json records the file's absolute path and sha256, so a
changed file is visible in the run record.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from orbench_harness.benchkit import PromptBenchmark, Source, SplitRule
from orbench_harness.data import DataSource, build_samples, read_csv, read_json_list, read_jsonl
from orbench_harness.errors import DataError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.types import BenchmarkKind, Expected, Sample

SUFFIXES = (".csv", ".jsonl", ".json")
BEHAVIOURS: dict[str, BenchmarkKind] = {"comply": "over_refusal", "refuse": "safety"}


def is_prompt_file(name: str) -> bool:
    """Whether ``--benchmark name`` means a file rather than a registered benchmark."""
    return name.lower().endswith(SUFFIXES) or "/" in name


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The file's rows, by its suffix; every row must have a ``prompt``."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return list(read_csv(path, required=("prompt",)))
    if suffix == ".jsonl":
        return read_jsonl(path, required=("prompt",))
    return read_json_list(path, required=("prompt",))


def behaviour(path: Path, rows: list[dict[str, Any]]) -> Expected:
    """The one behaviour the ``expected`` column asks for (``comply`` without the column)."""
    values = {str(r.get("expected", "comply")).strip().lower() for r in rows}
    unknown = sorted(values - set(BEHAVIOURS))
    if unknown:
        raise DataError(f"{path}: column 'expected' must be comply or refuse, found {unknown[0]!r}")
    if len(values) > 1:
        raise DataError(f"{path}: column 'expected' mixes comply and refuse; put each in its own file "
                        f"(one benchmark per behaviour, like xstest and xstest-unsafe)")
    return "refuse" if values == {"refuse"} else "comply"


def parse(path: Path) -> tuple[list[Sample], Expected]:
    """Validated samples (non-empty prompts, unique ids) and the file's behaviour."""
    rows = read_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    expected = behaviour(path, rows)
    meta = tuple(dict.fromkeys(k for r in rows for k in r if k not in ("prompt", "id", "expected")))
    id_col = "id" if all("id" in r for r in rows) else None
    return build_samples(path, rows, prompt_col="prompt", expected=expected, id_col=id_col, meta_cols=meta), expected


@hookimpl
def orbench_resolve_benchmark(name: str) -> Callable[[DataSource], PromptBenchmark] | None:
    """A factory for a prompt file's path; None for any other name. Reads the file once
    here, so a missing file or a bad column is an error before any model loads."""
    if not is_prompt_file(name):
        return None
    path = Path(name).expanduser().resolve()
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"--benchmark {name}: a prompt file is .csv, .jsonl or .json")
    if not path.is_file():
        raise DataError(f"--benchmark {name}: no such file ({path})")
    samples, expected = parse(path)
    kind = BEHAVIOURS[expected]
    source = Source(local=(path.name,), parse_local=lambda root: parse(root / path.name)[0])

    def create(data: DataSource) -> PromptBenchmark:
        # the run's --data-dir does not apply: the file is where the name says
        return PromptBenchmark(name, kind, source, DataSource(path.parent), SplitRule(), len(samples))

    return create
