"""Health checks of run directories and of the cache (``harness doctor``), and the safe repairs.

A run directory is repaired by the run store the next time its run resumes, but only the
records that run reads, and silently for duplicates. A directory that is only reported on
(``harness report``, ``compare``) or copied between machines keeps its damage, and a hand
edit to ``run.json`` shows only when a resume refuses the directory. The doctor names every
damaged line with its file and line number beforehand, and ``--fix`` does what is safe:
a JSON-lines log is rewritten without its damaged and duplicate lines (the first good record
of each id kept, every good record kept), and the stale temporaries of a killed model
conversion are removed. A run that holds its lock (running) is never written; the doctor holds
that lock itself while it repairs, so a run started meanwhile stops instead of mixing in.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbench_harness.errors import HarnessError
from orbench_harness.runs import RESULTS_FILE, RUN_FILE, SAMPLES_FILE, VERDICTS_FILE
from orbench_harness.scratch import remove_stale, stale_temporaries
from orbench_harness.spec import identity_of
from orbench_harness.store import (
    LOCK_FILE,
    SAMPLE_FIELDS,
    STAMP,
    VERDICT_FIELDS,
    JsonlLog,
    RunStore,
    lock_holder,
    read_json,
)

CACHE_FILE = "cache.sqlite"
MODELS_DIR = "models"
LOG_KEYS: dict[str, tuple[str, ...]] = {SAMPLES_FILE: ("benchmark", "id"), VERDICTS_FILE: ("benchmark", "id", "judge")}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found: ``where`` is a file or ``file:line``; a note (``problem=False``) does not
    make the exit status fail; ``fixable`` says ``--fix`` repairs it."""

    where: str
    message: str
    problem: bool = True
    fixable: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {"where": self.where, "message": self.message, "problem": self.problem, "fixable": self.fixable}


@dataclass(slots=True)
class Report:
    """What was found in one place (a run directory, or the cache), and what ``--fix`` did."""

    path: Path
    findings: list[Finding] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No problem left (notes allowed)."""
        return not any(f.problem for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {"path": str(self.path), "healthy": self.healthy, "fixed": self.fixed,
                "findings": [f.to_json() for f in self.findings]}


@dataclass(slots=True)
class LogScan:
    """A JSON-lines log read line by line: the first good record per key and what is wrong."""

    kept: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def scan_log(path: Path, key_fields: tuple[str, ...], required: Mapping[str, Any],
             stamp: str | None = None) -> LogScan:
    """Every damaged, incomplete, foreign and duplicate line of ``path``, by line number.

    A repeated identical record is a harmless duplicate: the first is kept. Two *different*
    records for one key cannot both be right and neither can be chosen, so both go and the
    run's command recomputes it (as the runner itself does). ``stamp`` is the run's identity
    prefix: a record stamped by another run was made under another spec.
    """
    scan = LogScan()
    if not path.is_file():
        return scan
    log = JsonlLog(path, key_fields, required)
    lines = path.read_bytes().split(b"\n")
    first_line: dict[tuple[str, ...], int] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        if n == len(lines):  # no newline after it: a write a kill interrupted
            scan.findings.append(Finding(where, "last line was cut off (interrupted write)", fixable=True))
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            scan.findings.append(Finding(where, "not valid JSON (corrupted line)", fixable=True))
            continue
        if not log.valid(rec):
            missing = [f for f in (*key_fields, *required) if not isinstance(rec, dict) or f not in rec]
            why = f"lacks {', '.join(dict.fromkeys(missing))}" if missing else "a field has the wrong type"
            scan.findings.append(Finding(where, f"not a complete record ({why})", fixable=True))
            continue
        if stamp is not None and rec.get(STAMP, stamp) != stamp:
            scan.findings.append(Finding(where, "written by a run of another spec (its run stamp differs)",
                                         fixable=True))
            continue
        key = log.key(rec)
        if key in first_line:
            same = scan.kept.get(key) == rec
            what = "duplicate of" if same else "disagrees with"
            scan.findings.append(Finding(where, f"{what} line {first_line[key]} ({'/'.join(key)})", fixable=True))
            if not same and key in scan.kept:
                del scan.kept[key]
                scan.findings.append(Finding(f"{path}:{first_line[key]}", f"disagrees with line {n} "
                                             f"({'/'.join(key)}); both removed, re-running recomputes it",
                                             fixable=True))
            continue
        first_line[key] = n
        scan.kept[key] = rec
    return scan



def check_run(run_dir: Path) -> Report:
    """Everything wrong with one run directory; reads only, so it is safe beside a live run."""
    report = Report(run_dir)
    add = report.findings.append
    holder = lock_holder(run_dir)
    finished = (run_dir / RESULTS_FILE).is_file()
    if holder is not None:
        add(Finding(str(run_dir), f"running (pid {holder or 'in another namespace'}): checked, never repaired",
                    problem=False))
    elif (run_dir / LOCK_FILE).exists() and not finished:
        add(Finding(str(run_dir / LOCK_FILE), "stale lock: the run that held it is no longer running (killed or "
                    "crashed); nothing holds the directory, and re-running its command resumes it", problem=False))
    meta = _check_run_json(run_dir, report)
    stamp = _stamp_of(run_dir)
    scans = {name: scan_log(run_dir / name, keys, SAMPLE_FIELDS if name == SAMPLES_FILE else VERDICT_FIELDS, stamp)
             for name, keys in LOG_KEYS.items()}
    for scan in scans.values():
        report.findings += scan.findings
    samples = {k[:2] for k in scans[SAMPLES_FILE].kept}
    orphans = [k for k in scans[VERDICTS_FILE].kept if k[:2] not in samples]
    if orphans:
        shown = ", ".join("/".join(k[:2]) for k in orphans[:3]) + (" ..." if len(orphans) > 3 else "")
        add(Finding(str(run_dir / VERDICTS_FILE), f"{len(orphans)} verdict(s) without a sample ({shown}); "
                    "re-running the run's command regenerates the samples"))
    if finished:
        try:
            if not isinstance(read_json(run_dir / RESULTS_FILE), dict):
                raise HarnessError(f"{run_dir / RESULTS_FILE}: not a JSON object")
        except (HarnessError, OSError) as e:
            add(Finding(str(run_dir / RESULTS_FILE), f"unreadable ({e}); re-run the run's command to rewrite it"))
    elif holder is None and meta is not None:
        add(Finding(str(run_dir / RESULTS_FILE), "missing: the run has not finished", problem=False))
    return report


def _check_run_json(run_dir: Path, report: Report) -> dict[str, Any] | None:
    """run.json readable, and its identity the one its spec, model, method and judge give."""
    path = run_dir / RUN_FILE
    try:
        meta = read_json(path)
    except (HarnessError, OSError) as e:
        report.findings.append(Finding(str(path), f"unreadable ({e}); its records cannot be matched to a command"))
        return None
    if not isinstance(meta, dict):
        report.findings.append(Finding(str(path), "not a JSON object"))
        return None
    spec, model, method, judge = (meta.get(k) for k in ("spec", "model", "method", "judge"))
    if not all(isinstance(v, dict) for v in (spec, model, method, judge)) or "identity" not in meta:
        report.findings.append(Finding(str(path), "identity not checked: run.json lacks identity, spec, model, "
                                       "method or judge (written by another tool?)", problem=False))
        return meta
    assert isinstance(spec, dict) and isinstance(model, dict) and isinstance(method, dict) and isinstance(judge, dict)
    expected = identity_of(spec, {k: v for k, v in model.items() if k != "name"}, str(method.get("fingerprint")),
                           f"{judge.get('name')}@{judge.get('version')}")
    if meta["identity"] != expected:
        report.findings.append(Finding(str(path), "identity does not match its spec, model, method and judge "
                                       "(edited by hand?); a resume would refuse the directory as another run"))
    return meta


def fix_run(run_dir: Path) -> Report:
    """Repair what is safe in one run directory, then check it again.

    Only a log with a damaged or duplicate line is rewritten, and only that line goes. The
    directory's lock is held meanwhile; a running run is left as it is.
    """
    before = check_run(run_dir)
    if not any(f.fixable for f in before.findings):
        return before
    if lock_holder(run_dir) is not None:
        return before
    fixed: list[str] = []
    stamp = _stamp_of(run_dir)
    try:
        store = RunStore(run_dir)
        with store.locked():
            for log in (store.samples, store.verdicts):
                scan = scan_log(log.path, log.key_fields, log.required, stamp)
                if any(f.fixable for f in scan.findings):
                    log.rewrite(scan.kept.values())
                    fixed.append(f"{log.path}: removed {sum(f.fixable for f in scan.findings)} damaged or "
                                 f"duplicate line(s), kept {len(scan.kept)} record(s)")
    except HarnessError as e:  # the directory is in use, or cannot be written
        before.findings.append(Finding(str(run_dir), f"not repaired: {e}"))
        return before
    after = check_run(run_dir)
    after.fixed = fixed
    return after


def check_cache(cache_dir: Path, *, fix: bool = False) -> Report:
    """The cache file's integrity and row count, and the stale conversion temporaries (removed
    with ``fix``). A corrupt cache is reported, not repaired: the next run moves it aside."""
    report = Report(cache_dir)
    path = cache_dir / CACHE_FILE
    if not path.is_file():
        report.findings.append(Finding(str(path), "no cache yet", problem=False))
    else:
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                verdict = [row[0] for row in conn.execute("PRAGMA integrity_check")]
                rows = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            verdict, rows = [str(e)], None
        if verdict != ["ok"]:
            report.findings.append(Finding(str(path), f"integrity check failed ({'; '.join(verdict[:3])}); the next "
                                           "run moves it aside and starts an empty cache"))
        else:
            report.findings.append(Finding(str(path), f"integrity ok, {rows} row(s)", problem=False))
    models = cache_dir / MODELS_DIR
    for s in remove_stale(models) if fix else []:
        report.fixed.append(f"{s.path}: removed {_describe_stale(s.size, s.age)}")
    for s in stale_temporaries(models):  # with fix: those that could not be removed
        report.findings.append(Finding(str(s.path), _describe_stale(s.size, s.age), fixable=True))
    return report


def _describe_stale(size: int, age: float) -> str:
    return f"stale temporary of an interrupted model conversion ({size / 1e6:.1f} MB, {age / 3600:.1f} h old)"


def _stamp_of(run_dir: Path) -> str | None:
    """The run stamp records of this directory carry (``STAMP``), from run.json's identity."""
    try:
        meta = read_json(run_dir / "run.json")
    except (HarnessError, OSError):
        return None
    return str(meta["identity"])[:16] if isinstance(meta, dict) and "identity" in meta else None
