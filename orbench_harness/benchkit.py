"""Shared code of the benchmark plugins: two data sources, validation, and seeded splits.

Every prompt benchmark can be read from a local data directory (``--data-dir`` /
``ORBENCH_DATA_DIR``: one sub-folder per source, layout in docs/data.md; ``harness data fetch``
fills one from the hub, keeping the hub's rows under ``hub/``) or from the Hugging Face hub through
``datasets.load_dataset(id, revision=..., split=...)``, imported only when needed. The local file
wins when it exists; otherwise the hub is tried; when neither works the error names the file
to provide, so a machine without hub access knows exactly what to download.

Splits follow the ACTOR paper's protocol (Dabas et al., ICML 2025; docs/methods.md,
ACTOR): a few prompts per benchmark go to ``train`` (the pools methods may learn from) and
everything else is ``test``. Which prompts go where is a pure function of the benchmark's rows
and the seed: each sample is ranked by ``sha256(name, seed, sample id)``, so the division does
not depend on row order, Python's ``random`` implementation or earlier calls, and train and
test are disjoint by construction. ``limit`` takes the first ``limit`` samples of a second,
independently salted ranking, so a smaller limit is always a subset of a larger one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbench_harness.catalog import Register
from orbench_harness.data import (
    DataSource,
    build_samples,
    data_file,
    read_csv,
    read_json_list,
    read_jsonl,
)
from orbench_harness.errors import DataError
from orbench_harness.hubcheck import ensure_decided
from orbench_harness.protocols import Split
from orbench_harness.types import BenchmarkKind, DataFile, Expected, Sample

Rows = list[dict[str, Any]]


class HubUnavailable(DataError):
    """The hub could not provide a dataset (no ``datasets`` package, offline, gated, missing)."""


@dataclass(frozen=True, slots=True)
class HubSource:
    """One pinned table on the hub: ``load_dataset(id, config, revision=, split=, data_files=)``.

    ``options`` are further keyword arguments for ``load_dataset`` (e.g. CSV reader settings),
    kept as a tuple of pairs so the value stays hashable.
    """

    id: str
    revision: str
    split: str = "train"
    config: str | None = None
    data_files: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """How errors and run.json name this table."""
        extra = f"/{self.config}" if self.config else ""
        extra += f"/{self.data_files}" if self.data_files else ""
        return f"hub:{self.id}@{self.revision}{extra}[{self.split}]"

    @property
    def local_copy(self) -> str:
        """Where ``harness data fetch`` keeps this table's rows (JSON lines, as the hub gave them)
        inside a data directory: ``hub/<id>/<revision>/<config>[.<data files>].<split>.jsonl``."""
        name = self.config or "default"
        if self.data_files:
            name += "." + re.sub(r"[^A-Za-z0-9._-]", "_", self.data_files.replace("/", "__"))
        return f"hub/{self.id}/{re.sub(r'[^A-Za-z0-9._-]', '_', self.revision)}/{name}.{self.split}.jsonl"


def hub_rows(src: HubSource) -> Rows:
    """All rows of a hub table as plain dicts; any failure becomes HubUnavailable."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise HubUnavailable(
            "the `datasets` package is not installed (pip install 'orbench-harness[hub]')"
        ) from None
    kwargs: dict[str, Any] = dict(src.options)
    if src.data_files is not None:
        kwargs["data_files"] = src.data_files
    if not Path(src.id).exists():  # no network: one line and offline mode, not half a minute of retries
        ensure_decided()
    try:
        ds = load_dataset(src.id, src.config, revision=src.revision, split=src.split, **kwargs)
    except Exception as e:  # offline, gated, renamed, bad revision: all mean "not from the hub"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise HubUnavailable(f"could not load {src.label} ({type(e).__name__}: {reason})") from None
    return [dict(r) for r in ds]


def rows_sha256(rows: Sequence[Mapping[str, Any]]) -> str:
    """A content hash of hub rows, recorded in run.json in place of a file hash."""
    blob = json.dumps(list(rows), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Columns:
    """How a flat table's columns become samples; the same for a file and for hub rows.

    ``expected`` is one behaviour for every row, or a mapping from the ``label`` column's
    values (unknown values are errors). ``id`` names an id column; without one, ids are
    1-based row numbers. Required columns are the prompt, id, label and meta columns.
    """

    prompt: str
    expected: Expected | Mapping[str, Expected]
    id: str | None = None
    meta: tuple[str, ...] = ()
    label: str | None = None

    @property
    def required(self) -> tuple[str, ...]:
        """Columns every row must have."""
        cols = (self.prompt, self.id, self.label, *self.meta)
        return tuple(dict.fromkeys(c for c in cols if c is not None))

    def parse_rows(self, origin: Path | str, rows: Sequence[Mapping[str, Any]]) -> list[Sample]:
        """Validated samples (non-empty prompts and ids, unique ids) in row order."""
        return build_samples(
            origin, rows, prompt_col=self.prompt, expected=self.expected, id_col=self.id,
            meta_cols=self.meta, label_col=self.label,
        )

    def read_csv(self, path: Path) -> list[Sample]:
        """A CSV file with a header row."""
        return self.parse_rows(path, read_csv(path, required=self.required))

    def read_jsonl(self, path: Path) -> list[Sample]:
        """A JSON-lines file of objects."""
        return self.parse_rows(path, read_jsonl(path, required=self.required))

    def read_json(self, path: Path) -> list[Sample]:
        """A JSON file holding a list of objects."""
        return self.parse_rows(path, read_json_list(path, required=self.required))


Loaded = tuple[list[Sample], list[DataFile]]
LocalParser = Callable[[Path], list[Sample]]
RowsParser = Callable[[str, Rows], list[Sample]]


@dataclass(frozen=True, slots=True)
class Source:
    """Where one benchmark's data lives, locally and on the hub.

    ``local`` are paths relative to the data directory (the first is named in errors);
    ``parse_local(data_dir)`` reads and validates them. ``hub`` lists the hub tables;
    ``parse_hub(tables)`` turns their rows (one list per table, in order) into samples.
    ``hub`` empty means there is no known hub copy and only the local files work.
    ``optional`` are further local files the parser reads when present (hashed into run.json
    when they are).
    """

    local: tuple[str, ...]
    parse_local: Callable[[Path], list[Sample]]
    hub: tuple[HubSource, ...] = ()
    parse_hub: Callable[[list[Rows]], list[Sample]] | None = None
    hub_note: str = ""
    optional: tuple[str, ...] = ()

    def local_paths(self, data: DataSource) -> list[Path] | None:
        """The local files, if a data directory is set and all of them exist."""
        if data.data_dir is None:
            return None
        paths = [data.data_dir / rel for rel in self.local]
        return paths if all(p.is_file() for p in paths) else None

    def load(self, name: str, data: DataSource) -> Loaded:
        """Local files if present, else the hub, else a DataError naming the file to provide."""
        root = data.data_dir
        paths = [root / rel for rel in self.local] if root is not None else []
        missing = [p for p in paths if not p.is_file()]
        if root is not None and not missing:
            extra = [root / rel for rel in self.optional if (root / rel).is_file()]
            return self.parse_local(root), [data_file(p) for p in (*paths, *extra)]
        copies = [root / h.local_copy for h in self.hub] if root is not None else []
        if copies and self.parse_hub is not None and all(p.is_file() for p in copies):
            # fetched hub rows: the same rows, so the same hash in run.json as read from the hub
            tables = [read_jsonl(p) for p in copies]
            hashed = [DataFile(h.label, rows_sha256(t)) for h, t in zip(self.hub, tables, strict=True)]
            return self.parse_hub(tables), hashed
        where = f"{missing[0]} not found" if missing else "no data directory given (--data-dir)"
        if not self.hub or self.parse_hub is None:
            note = f" ({self.hub_note})" if self.hub_note else ""
            raise DataError(
                f"{name}: {where} and there is no hub source{note}; "
                f"provide {self.local[0]} under --data-dir"
            )
        try:
            tables = [hub_rows(h) for h in self.hub]
        except HubUnavailable as e:
            raise DataError(
                f"{name}: {where} and {e}; provide {self.local[0]} under --data-dir, or fetch it there on "
                f"a machine with hub access (harness data fetch --benchmark {name} --to DIR; docs/data.md)"
            ) from None
        files = [DataFile(h.label, rows_sha256(t)) for h, t in zip(self.hub, tables, strict=True)]
        return self.parse_hub(tables), files


def single_table(
    relpath: str,
    read: LocalParser,
    hub: HubSource | None = None,
    parse_rows: RowsParser | None = None,
    hub_note: str = "",
) -> Source:
    """The common case: one local file, or one hub table parsed by ``parse_rows``."""
    if hub is None or parse_rows is None:
        return Source((relpath,), lambda root: read(root / relpath), hub_note=hub_note)
    label = hub.label
    return Source(
        (relpath,),
        lambda root: read(root / relpath),
        (hub,),
        lambda tables: parse_rows(label, tables[0]),
        hub_note,
    )


# ---------------------------------------------------------------- splits


def rank_key(name: str, seed: int, salt: str, sample_id: str) -> str:
    """The order samples are drawn in: a hash, so it is independent of row order."""
    return hashlib.sha256(f"{name}\0{seed}\0{salt}\0{sample_id}".encode()).hexdigest()


def first_by_rank(
    samples: Sequence[Sample], n: int, *, name: str, seed: int, salt: str
) -> set[str]:
    """Ids of the ``n`` samples with the smallest rank keys."""
    ranked = sorted(samples, key=lambda s: rank_key(name, seed, salt, s.id))
    return {s.id for s in ranked[: max(0, n)]}


@dataclass(frozen=True, slots=True)
class SplitRule:
    """Which samples form the ``train`` pool; ``test`` is everything else.

    - ``train_n``: that many samples in total (ACTOR: 25 pseudo-harmful per benchmark).
    - ``per`` + ``train_n``: that many per value of the meta column ``per`` (UltraChat: 30
      per topic class; a smaller class goes to train whole).
    - ``per`` + ``fraction``: that share of each group, rounded (HEx-PHI: 2/3 per category).
    - ``meta_split``: a meta column that already says ``train`` (files shipped as splits).
    - ``all_train``: a training-only source; its test split is empty.
    Nothing set: everything is test (evaluation-only benchmarks).
    """

    train_n: int | None = None
    per: str | None = None
    fraction: float | None = None
    meta_split: str | None = None
    all_train: bool = False

    def train_ids(self, samples: Sequence[Sample], *, name: str, seed: int) -> set[str]:
        """The ids in the train pool: a pure function of the samples and the seed."""
        if self.all_train:
            return {s.id for s in samples}
        if self.meta_split is not None:
            return {s.id for s in samples if s.meta.get(self.meta_split) == "train"}
        if self.per is not None:
            groups: dict[str, list[Sample]] = {}
            for s in samples:
                groups.setdefault(str(s.meta.get(self.per, "")), []).append(s)
            out: set[str] = set()
            for key, group in groups.items():
                share = self.fraction
                n = round(share * len(group)) if share is not None else (self.train_n or 0)
                out |= first_by_rank(group, n, name=name, seed=seed, salt=f"train:{key}")
            return out
        if self.train_n is not None:
            return first_by_rank(samples, self.train_n, name=name, seed=seed, salt="train")
        return set()


def select(
    samples: Sequence[Sample],
    rule: SplitRule,
    split: Split,
    *,
    name: str,
    limit: int | None,
    seed: int,
) -> list[Sample]:
    """One split, optionally capped at ``limit`` (nested across limits), in file order."""
    if split not in ("train", "test", "all"):
        raise DataError(f"{name}: unknown split {split!r} (train, test or all)")
    if split == "all":
        chosen = list(samples)
    else:
        train = rule.train_ids(samples, name=name, seed=seed)
        chosen = [s for s in samples if (s.id in train) == (split == "train")]
    if limit is not None and limit < len(chosen):
        keep = first_by_rank(chosen, limit, name=name, seed=seed, salt=f"limit:{split}")
        chosen = [s for s in chosen if s.id in keep]
    return chosen


# ---------------------------------------------------------------- the benchmark object


@dataclass
class PromptBenchmark:
    """A set of prompts with one expected behaviour; loads once, on first use.

    ``kind`` decides the metric: over-refusal sets are scored by compliance rate (higher is
    better), safety sets by refusal rate (the safety score).
    """

    name: str
    kind: BenchmarkKind
    source: Source
    data: DataSource
    rule: SplitRule = field(default_factory=SplitRule)
    published_size: int | None = None
    _loaded: Loaded | None = field(default=None, init=False, repr=False)

    @property
    def metric(self) -> str:
        """compliance_rate for over-refusal sets, refusal_rate for safety sets."""
        return "refusal_rate" if self.kind == "safety" else "compliance_rate"

    @property
    def expected(self) -> Expected:
        """What a well-calibrated model does on every prompt of this set."""
        return "refuse" if self.kind == "safety" else "comply"

    def _load(self) -> Loaded:
        if self._loaded is None:
            self._loaded = self.source.load(self.name, self.data)
        return self._loaded

    def samples(
        self, split: Split = "test", *, limit: int | None = None, seed: int = 0
    ) -> list[Sample]:
        """Validated samples of a split; deterministic given ``seed``."""
        return select(self._load()[0], self.rule, split, name=self.name, limit=limit, seed=seed)

    def data_files(self) -> list[DataFile]:
        """The files (or hub tables) read, with their sha256, for run.json."""
        return list(self._load()[1])

    def size(self) -> int | None:
        """Items in the ``all`` split: counted when the local files are there, else the
        published size (listing benchmarks never waits on the hub)."""
        if self.source.local_paths(self.data) is not None:
            return len(self.samples("all"))
        return self.published_size


def text_or_empty(value: Any) -> str:
    """A cell as text; hub rows may hold None or numbers where files hold strings."""
    return "" if value is None else str(value)


def register_prompts(
    register: Register,
    name: str,
    *,
    kind: BenchmarkKind,
    source: Callable[[], Source],
    size: int,
    summary: str,
    rule: SplitRule | None = None,
    training_only: bool = False,
) -> None:
    """Register a PromptBenchmark with the info ``harness list benchmarks`` shows.

    ``source`` is called inside the factory, so registering reads no data.
    """
    split_rule = rule or SplitRule()

    def create(data: DataSource) -> PromptBenchmark:
        return PromptBenchmark(name, kind, source(), data, split_rule, size)

    src = source()
    register(
        name,
        create,
        summary=summary,
        size=size,
        kind=kind,
        metric="refusal_rate" if kind == "safety" else "compliance_rate",
        local=list(src.local),
        hub=[h.label for h in src.hub],
        training_only=training_only,
    )
