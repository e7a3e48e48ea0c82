"""Builders for run directories in tests: run.json, results.json, samples/verdicts JSONL.

Written by hand (not through the run store) so report tests fix the on-disk format they read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

KILL_HARNESS = str(Path(__file__).with_name("_kill_harness.py"))  # the CLI plus a slow judge


def line_count(path: Path) -> int:
    """Newline-terminated records in a file a live run appends to (0 before it exists)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def sha(text: str) -> str:
    """A stand-in data-file hash."""
    return hashlib.sha256(text.encode()).hexdigest()


def bench(kind: str, cr: float, *, n: int = 100, partial: float = 0.0, unparsed: int = 0) -> dict[str, Any]:
    """A results.json benchmark entry as the runner writes it (``metrics.rate_stats``): rates over
    parsed verdicts, the refusal rate counting full and partial refusals."""
    return {
        "kind": kind,
        "n": n,
        "n_parsed": n - unparsed,
        "compliance_rate": cr,
        "refusal_rate": round(100 - cr, 6),
        "partial_refusal_rate": partial,
        "partial_refusals": round(partial * (n - unparsed) / 100),
        "unparsed": unparsed,
    }


def write_run(
    root: Path,
    name: str,
    *,
    model: str,
    method: str,
    benchmarks: dict[str, dict[str, Any]],
    judge: str = "strmatch",
    judge_version: str = "v1",
    split: str = "test",
    seed: int = 0,
    method_args: dict[str, str] | None = None,
    summary: dict[str, float] | None = None,
    samples: list[dict[str, Any]] | None = None,
    verdicts: list[dict[str, Any]] | None = None,
) -> Path:
    """A run directory under ``root``; returns its path."""
    d = root / name
    d.mkdir(parents=True)
    spec = {
        "model": model,
        "method": method,
        "method_args": method_args or {},
        "method_fingerprint": f"fp-{name}-0123456789abcdef",
        "judge": judge,
        "judge_version": judge_version,
        "seed": seed,
        "split": split,
        "benchmarks": {b: {"data_files": [{"path": f"/data/{b}.csv", "sha256": sha(b)}]} for b in benchmarks},
    }
    run_json = {"identity": f"id-{name}", "spec": spec, "versions": {"orbench-harness": "0.1.0"}}
    (d / "run.json").write_text(json.dumps(run_json, indent=2), encoding="utf-8")
    results = {"model": model, "method": method, "judge": judge, "benchmarks": benchmarks}
    if summary is not None:
        results["summary"] = summary
    (d / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    for fname, rows in (("samples.jsonl", samples), ("verdicts.jsonl", verdicts)):
        if rows is not None:
            text = "".join(json.dumps(r) + "\n" for r in rows)
            (d / fname).write_text(text, encoding="utf-8")
    return d


def verdict_rows(benchmark: str, labels: list[str | None], judge: str = "strmatch") -> list[dict[str, Any]]:
    """verdicts.jsonl records with ids ``<benchmark>-<i>``."""
    return [
        {
            "benchmark": benchmark,
            "id": f"{benchmark}-{i}",
            "judge": judge,
            "label": lab,
            "raw": str(lab),
        }
        for i, lab in enumerate(labels)
    ]


def sample_rows(benchmark: str, prompts: list[str], expected: str) -> list[dict[str, Any]]:
    """samples.jsonl records matching ``verdict_rows`` ids."""
    return [
        {
            "benchmark": benchmark,
            "id": f"{benchmark}-{i}",
            "prompt": p,
            "completion": "...",
            "expected": expected,
        }
        for i, p in enumerate(prompts)
    ]
