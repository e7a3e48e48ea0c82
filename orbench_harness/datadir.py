"""Filling a data directory from the hub, and checking one against its manifest.

``harness data fetch`` downloads each benchmark's hub tables through ``datasets`` and keeps
their rows, exactly as the hub gave them, as JSON lines under ``DIR/hub/`` (the path is
``HubSource.local_copy``). A benchmark reads those rows with ``--data-dir DIR`` as it would
read them from the hub, so a run from the fetched copy records the same data hash in run.json
as a run on a machine with hub access: fetching once and copying the directory to an offline
machine changes nothing in the results. Benchmarks that read their own files (SCOPE, OKTest,
...; no hub copy) cannot be fetched and are listed, each with the file to place by hand.

``DIR/manifest.json`` records, per file, where it came from (hub id, revision, config, split,
data files), its licence where the hub states one, its size and sha256; ``verify`` compares a
directory with it and names every missing, changed or extra file.

``ORBENCH_HUB_DIR`` points fetch at a directory standing in for the hub, laid out like
``DIR/hub/`` (``<id>/<revision>/<config>.<split>.jsonl``); it is read through ``datasets``
too, so a mirror copied from a machine with hub access, or a test's fake hub, goes through the
same path as the hub.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbench_harness import __version__
from orbench_harness.benchkit import HubSource, HubUnavailable, Source
from orbench_harness.data import DataSource, sha256_file
from orbench_harness.errors import HarnessError
from orbench_harness.hubcheck import ensure_decided
from orbench_harness.registry import Registry

MANIFEST = "manifest.json"
HUB_DIR_ENV = "ORBENCH_HUB_DIR"


@dataclass(frozen=True, slots=True)
class Fetched:
    """One table written: its path in the directory and its manifest entry."""

    relpath: str
    entry: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FetchReport:
    """What a fetch did: tables written, benchmarks that need their files placed by hand, failures."""

    fetched: tuple[Fetched, ...] = ()
    manual: Mapping[str, str] = field(default_factory=dict)  # benchmark -> why, and what to provide
    failed: Mapping[str, str] = field(default_factory=dict)  # hub label -> error


Tables = dict[str, tuple[HubSource, list[str]]]


def hub_tables(names: Sequence[str], registry: Registry) -> tuple[Tables, dict[str, str]]:
    """Each hub table the benchmarks read, by label, with the benchmarks reading it; and the
    benchmarks that cannot be fetched, with why and which file to provide instead."""
    tables: Tables = {}
    manual: dict[str, str] = {}
    for name in registry.expand_benchmarks(names):
        bench = registry.create("benchmarks", name, DataSource(None))
        source = getattr(bench, "source", None)
        if not isinstance(source, Source):
            local = ", ".join(registry.benchmarks().get(name).info.get("local", [])) or "its files"
            manual[name] = f"reads its own data (not a hub table this command can copy); provide {local} by hand"
        elif not source.hub or source.parse_hub is None:
            note = f" ({source.hub_note})" if source.hub_note else ""
            manual[name] = f"has no hub copy{note}; provide {', '.join(source.local)} by hand"
        else:
            for hub in source.hub:
                tables.setdefault(hub.label, (hub, []))[1].append(name)
    return tables, manual


def load_table(src: HubSource) -> tuple[list[dict[str, Any]], str | None]:
    """A hub table's rows and its licence (None when the hub states none), from the hub or from
    ``ORBENCH_HUB_DIR``; any failure is HubUnavailable."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise HubUnavailable("the `datasets` package is not installed (pip install 'orbench-harness[hub]')") from None
    mirror = os.environ.get(HUB_DIR_ENV)
    try:
        if mirror:
            path = Path(mirror) / src.local_copy.removeprefix("hub/")
            if not path.is_file():
                raise HubUnavailable(f"{src.label}: {path} not found in {HUB_DIR_ENV}")
            ds = load_dataset("json", data_files=str(path), split="train")
        else:
            ensure_decided()
            kwargs: dict[str, Any] = dict(src.options)
            if src.data_files is not None:
                kwargs["data_files"] = src.data_files
            ds = load_dataset(src.id, src.config, revision=src.revision, split=src.split, **kwargs)
    except HubUnavailable:
        raise
    except Exception as e:  # offline, gated, renamed, bad revision
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise HubUnavailable(f"could not load {src.label} ({type(e).__name__}: {reason})") from None
    licence = getattr(getattr(ds, "info", None), "license", None)
    return [dict(r) for r in ds], (str(licence) if licence else None)


def write_rows(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Rows as JSON lines, written to a temporary file and renamed (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


def fetch(names: Sequence[str], to: Path, *, registry: Registry | None = None) -> FetchReport:
    """Fetch every hub table of the benchmarks (suites expanded) into ``to`` and update its manifest."""
    registry = registry or Registry()
    tables, manual = hub_tables(names, registry)
    fetched: list[Fetched] = []
    failed: dict[str, str] = {}
    for src, benches in tables.values():
        try:
            rows, licence = load_table(src)
        except HubUnavailable as e:
            failed[src.label] = str(e)
            continue
        path = to / src.local_copy
        write_rows(path, rows)
        entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "rows": len(rows),
                 "source": src.id, "revision": src.revision, "config": src.config, "split": src.split,
                 "data_files": src.data_files, "licence": licence, "benchmarks": sorted(benches)}
        fetched.append(Fetched(src.local_copy, entry))
    report = FetchReport(tuple(fetched), manual, failed)
    write_manifest(to, names, report)
    return report


def read_manifest(root: Path) -> dict[str, Any]:
    """``DIR/manifest.json``; a missing or malformed one is a one-line error."""
    path = root / MANIFEST
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: not found (a directory filled by `harness data fetch` has one)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not a valid manifest ({e})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("files"), dict):
        raise HarnessError(f"{path}: not a valid manifest (no \"files\" object)")
    return obj


def write_manifest(root: Path, names: Sequence[str], report: FetchReport) -> None:
    """Merge this fetch into the manifest: earlier fetches' files stay recorded."""
    root.mkdir(parents=True, exist_ok=True)
    old = read_manifest(root) if (root / MANIFEST).is_file() else {"files": {}, "not_fetched": {}}
    files = dict(old.get("files", {}))
    files.update({f.relpath: dict(f.entry) for f in report.fetched})
    not_fetched = {**old.get("not_fetched", {}), **report.manual}
    manifest = {"format": 1, "harness": __version__, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "requested": sorted({*old.get("requested", []), *names}),
                "files": dict(sorted(files.items())), "not_fetched": dict(sorted(not_fetched.items()))}
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, root / MANIFEST)


def verify(root: Path) -> list[str]:
    """One line per problem: a manifest file missing or changed, or a file the manifest lacks."""
    manifest = read_manifest(root)
    problems = []
    recorded: dict[str, Any] = manifest["files"]
    for rel, entry in recorded.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif (actual := sha256_file(path)) != entry.get("sha256"):
            problems.append(f"changed: {rel} (sha256 {actual[:12]}, manifest {str(entry.get('sha256'))[:12]})")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != MANIFEST and rel not in recorded:
            problems.append(f"extra: {rel} (not in the manifest)")
    return problems
