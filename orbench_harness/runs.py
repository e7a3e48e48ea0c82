"""Read-only access to finished run directories, for reports and comparisons.

The run store (``orbench_harness.store``) writes and repairs run directories; this module only
reads them and never rewrites a file, so a report can be made from a directory another process
is still appending to. A run directory holds ``run.json`` (the spec), ``results.json`` (the
metrics), ``samples.jsonl`` and ``verdicts.jsonl`` (one record per line).

``run.json`` is read tolerantly: fields are looked up under ``spec`` first and at the top level
second, and names may be plain strings or objects (``{"name": ..., "version": ...}``), so a
report still works across small changes of the writer's layout.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbench_harness.errors import HarnessError

RUN_FILE = "run.json"
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
VERDICTS_FILE = "verdicts.jsonl"


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: not found") from None
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: malformed JSON at line {e.lineno} ({e.msg})") from None
    except UnicodeDecodeError:
        raise HarnessError(f"{path}: not UTF-8") from None
    if not isinstance(obj, dict):
        raise HarnessError(f"{path}: expected a JSON object")
    return obj


def _name_of(value: Any) -> str | None:
    """A component name given either as a string or as an object with a ``name`` field."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        name = value.get("name")
        return str(name) if name is not None else None
    return None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One finished run: its ``run.json``, its ``results.json`` and where it lives."""

    run_json: Mapping[str, Any]
    results: Mapping[str, Any]
    path: Path

    @property
    def spec(self) -> Mapping[str, Any]:
        """The run's spec (``run.json["spec"]``, or run.json itself when it has none)."""
        spec = self.run_json.get("spec")
        return spec if isinstance(spec, Mapping) else self.run_json

    def _candidates(self, key: str) -> list[Any]:
        """Values of ``key`` in the spec, at run.json's top level, then in results.json."""
        return [src[key] for src in (self.spec, self.run_json, self.results) if src.get(key) is not None]

    def _name(self, key: str) -> str:
        names = [n for n in map(_name_of, self._candidates(key)) if n is not None]
        return names[0] if names else "?"

    def _attr(self, key: str, attr: str, of: str) -> str | None:
        """``key`` given directly, or ``attr`` of an object-valued ``of`` (``judge.version``)."""
        direct = self._candidates(key)
        if direct:
            return str(direct[0])
        for obj in self._candidates(of):
            if isinstance(obj, Mapping) and obj.get(attr) is not None:
                return str(obj[attr])
        return None

    @property
    def model(self) -> str:
        """The model name (alias) the run evaluated."""
        return self._name("model")

    @property
    def method(self) -> str:
        """The method name."""
        return self._name("method")

    @property
    def method_args(self) -> dict[str, str]:
        """The method's arguments (``spec.method_args``), as strings, sorted by key."""
        found = self._candidates("method_args")
        found += [m["args"] for m in self._candidates("method") if isinstance(m, Mapping) and "args" in m]
        args = found[0] if found else None
        if not isinstance(args, Mapping):
            return {}
        return {str(k): str(args[k]) for k in sorted(args)}

    @property
    def method_fingerprint(self) -> str | None:
        """The method's config hash, if recorded."""
        return self._attr("method_fingerprint", "fingerprint", "method")

    @property
    def judge(self) -> str:
        """The judge whose verdicts produced the results."""
        return self._name("judge")

    @property
    def judge_version(self) -> str | None:
        """The judge's version string, if recorded (a judge's rubric or model may change)."""
        return self._attr("judge_version", "version", "judge")

    @property
    def split(self) -> str:
        """The benchmark split evaluated."""
        found = self._candidates("split")
        return str(found[0]) if found else "?"

    @property
    def seed(self) -> int | None:
        """The run's seed."""
        found = [v for v in self._candidates("seed") if isinstance(v, int)]
        return found[0] if found else None

    @property
    def benchmarks(self) -> dict[str, dict[str, Any]]:
        """``results.json["benchmarks"]``: benchmark name -> metrics."""
        b = self.results.get("benchmarks")
        if not isinstance(b, Mapping):
            return {}
        return {str(k): dict(v) for k, v in b.items() if isinstance(v, Mapping)}

    @property
    def summary(self) -> dict[str, Any]:
        """``results.json["summary"]``."""
        s = self.results.get("summary")
        return dict(s) if isinstance(s, Mapping) else {}

    def data_hashes(self) -> dict[str, list[str]]:
        """Benchmark name -> sha256 of each data file it read (from run.json)."""
        out: dict[str, list[str]] = {}
        for raw in (
            self.spec.get("benchmarks"),
            self.run_json.get("benchmarks"),
            self.run_json.get("data_files"),
        ):
            if isinstance(raw, Mapping):
                items: Iterable[tuple[Any, Any]] = raw.items()
            elif isinstance(raw, Sequence) and not isinstance(raw, str):
                items = ((_name_of(b), b) for b in raw if isinstance(b, Mapping))
            else:
                continue
            for name, info in items:
                shas = _shas(info)
                if name is not None and shas:
                    out.setdefault(str(name), shas)
        return out

    @property
    def label(self) -> str:
        """The row label: the method, with its arguments when it has any."""
        args = self.method_args
        if not args:
            return self.method
        return f"{self.method} ({', '.join(f'{k}={v}' for k, v in args.items())})"


def _shas(info: Any) -> list[str]:
    """sha256 values found in a benchmark's data-file record, in any of the accepted shapes."""
    if isinstance(info, Mapping):
        if "sha256" in info:
            return [str(info["sha256"])]
        for key in ("data_files", "files", "data"):
            if key in info:
                return _shas(info[key])
        return []
    if isinstance(info, Sequence) and not isinstance(info, str):
        out: list[str] = []
        for item in info:
            out.extend(_shas(item))
        return out
    return []


def load_run(path: Path) -> RunRecord:
    """A finished run; a directory without ``results.json`` is an unfinished run (an error)."""
    path = Path(path)
    if not (path / RUN_FILE).is_file():
        raise HarnessError(f"{path}: not a run directory (no {RUN_FILE})")
    if not (path / RESULTS_FILE).is_file():
        raise HarnessError(f"{path}: run has no {RESULTS_FILE} yet (unfinished or interrupted)")
    return RunRecord(_read_json_object(path / RUN_FILE), _read_json_object(path / RESULTS_FILE), path)


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run directories named directly or found below the given directories, sorted, unique."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise HarnessError(f"{p}: no such file or directory")
        if p.is_file() and p.name == RUN_FILE:
            p = p.parent
        if (p / RUN_FILE).is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(f.parent for f in p.rglob(RUN_FILE)))
    return list(dict.fromkeys(found))


def read_jsonl_tolerant(path: Path, key_fields: Sequence[str]) -> list[dict[str, Any]]:
    """Records of a JSON-lines file, last one per key winning; a cut-off last line is dropped.

    A run killed mid-write leaves a last line without its newline; that record is simply not
    there yet. A malformed line *before* the end is real corruption and an error naming it.
    """
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records: dict[tuple[str, ...], dict[str, Any]] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = n == len(lines)
        try:
            rec = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            if last:
                break
            raise HarnessError(f"{path}: line {n} is not valid JSON") from None
        if not isinstance(rec, dict) or any(k not in rec for k in key_fields):
            if last:
                break
            raise HarnessError(f"{path}: line {n} lacks {', '.join(key_fields)}")
        records[tuple(str(rec[k]) for k in key_fields)] = rec
    return list(records.values())


def load_samples(run_dir: Path) -> list[dict[str, Any]]:
    """``samples.jsonl`` records (one per benchmark and sample id)."""
    return read_jsonl_tolerant(Path(run_dir) / SAMPLES_FILE, ("benchmark", "id"))


def load_verdicts(run_dir: Path, judge: str | None = None) -> list[dict[str, Any]]:
    """``verdicts.jsonl`` records, optionally only those of one judge."""
    rows = read_jsonl_tolerant(Path(run_dir) / VERDICTS_FILE, ("benchmark", "id", "judge"))
    return rows if judge is None else [r for r in rows if r.get("judge") == judge]


def prompt_text(prompt: Any) -> str:
    """A sample's prompt as text: a string, or the last user turn of a message list."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        for msg in reversed(prompt):
            if isinstance(msg, Mapping) and msg.get("role") == "user":
                return str(msg.get("content", ""))
    return ""
