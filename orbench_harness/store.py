"""The run directory: run.json, samples.jsonl, verdicts.jsonl, results.json.

JSON-lines files are append-only and each batch is flushed and fsynced as it is produced, so a
killed run loses at most the batch in flight. On reopening, a truncated last line (the write a
kill interrupted) or a corrupted line is reported with its path and dropped, and the file is
rewritten without it; the runner then recomputes what is missing (usually from the cache).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orbench_harness.console import warn
from orbench_harness.errors import HarnessError
from orbench_harness.scratch import writing
from orbench_harness.types import Label

Check = Callable[[Any], bool]
_LABELS = frozenset(lab.value for lab in Label)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


# the fields the runner reads back from each file, with what their values must be
SAMPLE_FIELDS: dict[str, Check] = {"benchmark": _is_str, "id": _is_str, "prompt": _is_str, "completion": _is_str}
VERDICT_FIELDS: dict[str, Check] = {"benchmark": _is_str, "id": _is_str, "judge": _is_str,
                                    "label": lambda v: v is None or (isinstance(v, str) and v in _LABELS)}
# what a run directory holds besides run.json: records made under the spec that run.json records
RECORD_FILES = ("samples.jsonl", "verdicts.jsonl", "capability.jsonl", "results.json")
STAMP = "run"  # the field holding the identity prefix of the run that wrote a record


def file_mode() -> int:
    """The mode a new file gets from ``open``: 0666 less the umask.

    Every file the harness writes follows this one rule. ``tempfile.mkstemp`` creates 0600
    files whatever the umask, so an atomic write (temporary file, then rename) would leave
    run.json and results.json private beside a group-readable samples.jsonl; the writers below
    chmod their temporary file to this mode before the rename. The umask is read from
    /proc where the system has it, because reading it with ``os.umask`` briefly sets it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, file_mode())
        with writing(path), os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """A JSON file, with a one-line error naming the path if it is malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: malformed JSON at line {e.lineno} ({e.msg})") from None
    except UnicodeDecodeError:
        raise HarnessError(f"{path}: not UTF-8") from None


class JsonlLog:
    """An append-only JSON-lines file of records keyed by ``key_fields``."""

    def __init__(self, path: Path, key_fields: tuple[str, ...],
                 required: Mapping[str, Check] | None = None) -> None:
        self.path = path
        self.key_fields = key_fields
        # fields a record must hold, with their JSON types: a line that parses but lacks one
        # (hand-edited, or written by a buggy plugin) would otherwise fail later with a KeyError
        # on every re-run, while its key kept it from being recomputed
        self.required = dict(required or {})
        # the run identity (a prefix) each appended record carries, so a file copied from a run
        # of another spec is recognised line by line; records without one predate stamps
        self.stamp: str | None = None

    def valid(self, rec: Any) -> bool:
        """Whether a parsed line is a usable record: an object with the key fields and every
        required field of its type."""
        return (isinstance(rec, dict) and all(f in rec for f in self.key_fields)
                and all(f in rec and ok(rec[f]) for f, ok in self.required.items()))

    def key(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """The record's identity (e.g. benchmark + sample id)."""
        return tuple(str(record.get(f)) for f in self.key_fields)

    def read(self) -> dict[tuple[str, ...], dict[str, Any]]:
        """Valid records by key (last one wins); repairs the file if anything was dropped."""
        if not self.path.exists():
            return {}
        raw = self.path.read_bytes()
        records: dict[tuple[str, ...], dict[str, Any]] = {}
        conflicts: set[tuple[str, ...]] = set()
        dropped = 0
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        if tail.strip():
            warn(f"{self.path}: last line was cut off (interrupted write); recomputing that record")
            dropped += 1
        for n, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
            except (ValueError, UnicodeDecodeError, RecursionError):
                warn(f"{self.path}: line {n} is corrupted; dropping it and recomputing")
                dropped += 1
                continue
            if not self.valid(rec):
                warn(f"{self.path}: line {n} is not a complete record (a field is missing or of the wrong "
                     "type); dropping it and recomputing")
                dropped += 1
                continue
            if self.stamp is not None and rec.get(STAMP, self.stamp) != self.stamp:
                warn(f"{self.path}: line {n} was written by a run of another spec; dropping it and recomputing")
                dropped += 1
                continue
            k = self.key(rec)
            if k in records:
                dropped += 1
                if records[k] != rec:  # two answers for one prompt: neither can be trusted
                    conflicts.add(k)
            records[k] = rec
        for k in conflicts:
            warn(f"{self.path}: {'/'.join(k)} has two different records; dropping both and recomputing")
            del records[k]
        if dropped:
            self.rewrite(records.values())
        return records

    def keep(self, wanted: Callable[[tuple[str, ...]], bool], what: str) -> dict[tuple[str, ...], dict[str, Any]]:
        """Valid records whose key ``wanted`` accepts; any other record (a prompt this run does not
        have: ``what``) is removed from the file, so a run directory holds one run's records only."""
        records = self.read()
        foreign = [k for k in records if not wanted(k)]
        if foreign:
            warn(f"{self.path}: {len(foreign)} record(s) for {what} (e.g. {'/'.join(foreign[0])}); removing them")
            records = {k: v for k, v in records.items() if wanted(k)}
            self.rewrite(records.values())
        return records

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records and fsync, so they survive a kill right after this returns."""
        if self.stamp is not None:
            records = ({**r, STAMP: self.stamp} for r in records)
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if not data:
            return
        try:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # name the file: a full disk is reported with it (cli.disk_full)
            if e.filename is not None:
                raise
            raise OSError(e.errno, e.strerror, str(self.path)) from e

    def rewrite(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Replace the file's content atomically."""
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            os.fchmod(fd, file_mode())
            with writing(self.path), os.fdopen(fd, "w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)  # the old file stays as it was
            raise


LOCK_FILE = ".lock"


def lock_holder(run_dir: Path, proc_locks: Path = Path("/proc/locks")) -> int | None:
    """The pid holding ``run_dir``'s run lock (``RunStore.locked``), 0 when a holder exists but
    its pid is not visible here (another pid namespace), None when nobody holds it.

    Read from Linux's ``/proc/locks`` rather than by trying the lock: taking it, even for a
    moment, could make a run starting at that moment stop as if the directory were in use.
    Where ``/proc/locks`` cannot be read, the answer is None (not known to be held).
    """
    try:
        st = (run_dir / LOCK_FILE).stat()
        table = proc_locks.read_text()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 fe:00:2146332 0 EOF" (a "->" marks a waiter)
        if len(fields) >= 6 and fields[1] == "FLOCK" and "->" not in fields and fields[5] == device:
            try:
                return max(int(fields[4]), 0)
            except ValueError:
                return 0
    return None


class RunStore:
    """One run's directory."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            probe = run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise HarnessError(f"cannot write to output directory {run_dir}: {e.strerror}") from None
        self.samples = JsonlLog(run_dir / "samples.jsonl", ("benchmark", "id"), SAMPLE_FIELDS)
        self.verdicts = JsonlLog(run_dir / "verdicts.jsonl", ("benchmark", "id", "judge"), VERDICT_FIELDS)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory for this process while it runs.

        Two runs pointed at one ``--out`` would both compute everything (the cache only helps
        once an answer is finished) and both write the same files. The second one now stops at
        once instead. The lock is an advisory ``flock`` on ``.lock``, which the kernel drops
        when the holder dies, so a killed run never leaves the directory locked.
        """
        import fcntl  # POSIX only: imported here so the module itself loads on any platform

        with (self.dir / LOCK_FILE).open("a") as f:
            held = True
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise HarnessError(f"{self.dir} is in use by another harness run; wait for it to finish, "
                                   "or pass another --out") from None
            except OSError as e:  # a filesystem without locks (some NFS set-ups): run unguarded
                warn(f"{self.dir}: cannot lock the run directory ({e.strerror}); "
                     "make sure no other run writes into it")
                held = False
            try:
                yield
            finally:
                if held:
                    fcntl.flock(f, fcntl.LOCK_UN)

    @property
    def run_json(self) -> Path:
        """Path of run.json."""
        return self.dir / "run.json"

    @property
    def results_json(self) -> Path:
        """Path of results.json."""
        return self.dir / "results.json"

    def open_run(self, meta: dict[str, Any]) -> bool:
        """Write run.json; returns True when resuming a run with the same identity.

        A directory holding a *different* run (another model, method, judge, seed, ...) is
        refused rather than mixed.
        """
        self.samples.stamp = self.verdicts.stamp = str(meta["identity"])[:16]
        if self.run_json.exists():
            try:
                old = read_json(self.run_json)
            except HarnessError:
                old = None
            if isinstance(old, dict) and old.get("identity") == meta["identity"]:
                meta = {**meta, "started": old.get("started", meta.get("started"))}
                write_json_atomic(self.run_json, meta)
                return True
            if isinstance(old, dict):
                raise HarnessError(
                    f"{self.dir} holds a different run ({_describe(old)}); it differs in "
                    f"{_differences(old, meta)}. Use another --out: generations come from the cache, "
                    "so a new judge or judge version only re-judges"
                )
        self._refuse_unattributed_records()
        if self.run_json.exists():
            warn(f"{self.run_json} was unreadable; rewriting it (the directory holds no records)")
        write_json_atomic(self.run_json, meta)
        return False

    def _refuse_unattributed_records(self) -> None:
        """Stop when records are present but run.json cannot say which spec made them.

        Resuming would keep completions made under another command (8 new tokens reused for a
        16-token run, say) beside new ones, and nothing in results.json would show the mix.
        """
        present = [name for name in RECORD_FILES if (self.dir / name).is_file() and (self.dir / name).stat().st_size]
        if present:
            state = "unreadable" if self.run_json.exists() else "missing"
            raise HarnessError(
                f"{self.run_json} is {state}, so the records in {self.dir} ({', '.join(present)}) cannot be "
                "matched to this command; move the directory aside or pass another --out "
                "(finished generations come from the cache)"
            )

    def write_results(self, results: dict[str, Any]) -> None:
        """results.json, atomically."""
        write_json_atomic(self.results_json, results)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What separates two runs' identities, in words (at most four items)."""
    diffs = []
    for section, key in (("judge", "version"), ("method", "fingerprint"), ("model", "revision"), ("model", "adapter")):
        a, b = old.get(section, {}).get(key), new.get(section, {}).get(key)
        if a != b:
            diffs.append(f"{section} {key} ({a} there, {b} now)")
    spec_a, spec_b = old.get("spec", {}), new.get("spec", {})
    diffs += [f"{k} ({spec_a.get(k)!r} there, {spec_b.get(k)!r} now)"
              for k in sorted(set(spec_a) | set(spec_b)) if spec_a.get(k) != spec_b.get(k)]
    return "; ".join(diffs[:4]) if diffs else "its recorded identity (run.json from another harness version?)"


def _describe(meta: Mapping[str, Any]) -> str:
    spec = meta.get("spec", {})
    return ", ".join(f"{k}={spec.get(k)}" for k in ("model", "method", "judge", "seed") if k in spec)
