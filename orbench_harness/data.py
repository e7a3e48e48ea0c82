"""Reading benchmark files: validated, hashed, and never half-loaded.

Loaders read a whole file, validate every row, and only then return samples. A problem is a
``DataError`` naming the file, the row (1-based, header excluded) and the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbench_harness.errors import DataError
from orbench_harness.types import DataFile, Expected, Sample


@dataclass(frozen=True, slots=True)
class DataSource:
    """Where benchmark data comes from: a local data directory (docs/data.md) or the hub."""

    data_dir: Path | None = None

    def local(self, relpath: str) -> Path | None:
        """The local file if a data directory is set (whether or not the file exists)."""
        return None if self.data_dir is None else self.data_dir / relpath


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_file(path: Path) -> DataFile:
    """A DataFile record (path + sha256) for run.json."""
    return DataFile(str(path), sha256_file(path))


def read_text(path: Path) -> str:
    """A file's text; missing files and non-UTF-8 bytes become DataErrors."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 (line {line}, byte {e.start})") from None


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV with a header; every required column must be present.

    Parsed strictly: an unclosed quote (a file cut off mid-row, say) or a row with more or
    fewer fields than the header is an error naming the line, where Python's default reader
    would quietly fold the rest of the file into one field or fill the gap with None.
    """
    text = read_text(path)
    # the csv module's default field limit (128 KiB) is a guard for untrusted input, not a limit
    # of the format: a benchmark may hold a long document as one prompt (those get truncated to
    # the model's context and flagged), so the whole file is the only bound
    csv.field_size_limit(max(csv.field_size_limit(), min(len(text) + 1, 2**31 - 1)))
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}: missing column {missing[0]!r} (columns: {', '.join(header)})")
        rows = []
        for r in reader:
            if None in r or any(v is None for v in r.values()):
                n = len(header) + len(r.get(None) or []) - sum(v is None for v in r.values())
                raise DataError(f"{path}: line {reader.line_num}: {n} fields, the header has {len(header)}")
            rows.append(dict(r))
        return rows
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV after line {reader.line_num}: {e}") from None


def read_jsonl(path: Path, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Objects of a JSON-lines file; every required key must be present on every row."""
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: row {i}: malformed JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: row {i}: expected an object")
        rows.append(obj)
    check_columns(path, rows, required)
    return rows


def read_json_list(path: Path, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A JSON file holding a list of objects."""
    try:
        obj = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno} ({e.msg})") from None
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise DataError(f"{path}: expected a JSON list of objects")
    check_columns(path, obj, required)
    return obj


def check_columns(
    path: Path | str, rows: Sequence[Mapping[str, Any]], required: Iterable[str]
) -> None:
    """Every row has every required key."""
    for i, row in enumerate(rows, start=1):
        for col in required:
            if col not in row:
                raise DataError(f"{path}: row {i}: missing column {col!r}")


def build_samples(
    path: Path | str,
    rows: Sequence[Mapping[str, Any]],
    *,
    prompt_col: str,
    expected: Expected | Mapping[str, Expected],
    id_col: str | None = None,
    id_prefix: str = "",
    meta_cols: Sequence[str] = (),
    label_col: str | None = None,
) -> list[Sample]:
    """Validated samples: non-empty prompts, unique ids; errors name file, row and column.

    ``expected`` is either one value for all rows or a mapping from ``label_col`` values.
    """
    out: list[Sample] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        prompt = row.get(prompt_col)
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{path}: row {i}: empty prompt in column {prompt_col!r}")
        if id_col is not None:
            raw_id = row.get(id_col)
            if raw_id is None or not str(raw_id).strip():
                raise DataError(f"{path}: row {i}: empty id in column {id_col!r}")
        sid = f"{id_prefix}{row[id_col]}" if id_col else f"{id_prefix}{i}"
        if sid in seen:
            raise DataError(
                f"{path}: row {i}: duplicate id {sid!r} in column {id_col!r} (first at row {seen[sid]})"
            )
        seen[sid] = i
        if isinstance(expected, str):
            exp: Expected = expected
        else:
            key = str(row.get(label_col or "", ""))
            if key not in expected:
                raise DataError(f"{path}: row {i}: unexpected value {key!r} in column {label_col!r}")
            exp = expected[key]
        meta = {c: row[c] for c in meta_cols if c in row}
        out.append(Sample(sid, prompt, exp, meta))
    return out
