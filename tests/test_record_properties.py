"""Property tests (hypothesis) for what run directories and caches are keyed and read by.

``JsonlLog.read`` must survive any bytes a crash, a disk fault or a hand edit leaves (and say
which lines it dropped); ``cache_key`` must tell every payload apart whatever its key order; and
``spec.identity`` must change with every setting that changes a run's outputs and with no other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from orbench_harness.cache import cache_key
from orbench_harness.errors import HarnessError
from orbench_harness.spec import RunSpec, identity
from orbench_harness.store import JsonlLog, RunStore
from orbench_harness.types import Label

LABELS = [lab.value for lab in Label]
# what the runner needs of each record, written out here rather than taken from the store
NEEDS: dict[str, dict[str, Any]] = {
    "samples.jsonl": {"benchmark": str, "id": str, "prompt": str, "completion": str},
    "verdicts.jsonl": {"benchmark": str, "id": str, "judge": str, "label": "label"},
}
KEYS = {"samples.jsonl": ("benchmark", "id"), "verdicts.jsonl": ("benchmark", "id", "judge")}
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
json_value = st.recursive(json_scalar, lambda kids: st.lists(kids, max_size=3)
                          | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=8)
short = st.text(max_size=6)


def well_typed(name: str, rec: Any) -> bool:
    """Whether a parsed line holds every field the runner reads, of the right type."""
    if not isinstance(rec, dict):
        return False
    for fld, kind in NEEDS[name].items():
        if fld not in rec:
            return False
        v = rec[fld]
        if kind == "label" and not (v is None or (isinstance(v, str) and v in LABELS)):
            return False
        if kind is str and not isinstance(v, str):
            return False
    return True


@st.composite
def record_line(draw: st.DrawFn, name: str) -> bytes:
    """A line as a damaged log may hold it: a good record, one with a field dropped or of the
    wrong type, some other JSON, or random bytes."""
    rec: dict[str, Any] = {"benchmark": draw(st.sampled_from(["a", "b"])), "id": draw(st.sampled_from(["1", "2"])),
                           "prompt": draw(short), "completion": draw(short), "judge": "j",
                           "label": draw(st.none() | st.sampled_from(LABELS))}
    how = draw(st.sampled_from(["good", "drop", "retype", "json", "bytes"]))
    if how == "drop":
        rec.pop(draw(st.sampled_from(sorted(NEEDS[name]))))
    elif how == "retype":
        rec[draw(st.sampled_from(sorted(NEEDS[name])))] = draw(st.integers() | st.lists(short, max_size=2))
    elif how == "json":
        return json.dumps(draw(json_value)).encode()
    elif how == "bytes":
        return draw(st.binary(max_size=30)).replace(b"\n", b"")
    return json.dumps(rec, ensure_ascii=draw(st.booleans())).encode()


@st.composite
def log_bytes(draw: st.DrawFn, name: str) -> bytes:
    """A whole file: structured lines (maybe cut off at the end), or any bytes at all."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    body = b"".join(line + b"\n" for line in draw(st.lists(record_line(name), max_size=8)))
    return body + draw(st.sampled_from([b"", b'{"benchmark": "a", "id', b"\xff\xfe"]))


@pytest.mark.parametrize("name", sorted(NEEDS))
@FAST
@given(data=st.data())
def test_jsonl_read_keeps_good_records_and_names_bad_lines(name: str, tmp_path: Path, data: st.DataObject) -> None:
    raw = data.draw(log_bytes(name))
    run_dir = tmp_path / "run"
    store = RunStore(run_dir)
    log: JsonlLog = store.samples if name == "samples.jsonl" else store.verdicts
    log.path.write_bytes(raw)

    *complete, tail = raw.split(b"\n")
    expected: dict[tuple[str, ...], Any] = {}
    conflicting: set[tuple[str, ...]] = set()
    bad: list[int] = []
    for n, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            bad.append(n)
            continue
        if well_typed(name, rec):
            key = tuple(str(rec[k]) for k in KEYS[name])
            if key in expected and expected[key] != rec:
                conflicting.add(key)
            expected[key] = rec
        else:
            bad.append(n)
    for key in conflicting:  # two different records for one key: neither is trusted
        del expected[key]

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            got = log.read()
        except HarnessError:  # the project's own error: allowed, anything else fails the test
            return
    assert got == expected and all(well_typed(name, rec) for rec in got.values())
    said = stderr.getvalue()
    for n in bad:
        assert f"line {n} " in said
    if tail.strip():
        assert "cut off" in said
    with contextlib.redirect_stderr(io.StringIO()) as again:
        assert log.read() == expected  # the file was repaired: a second read drops nothing more
    assert "line" not in again.getvalue()


payloads = st.dictionaries(st.text(max_size=6), json_value, min_size=1, max_size=6)


@settings(max_examples=100, deadline=None)
@given(payloads, st.data())
def test_cache_key_changes_with_every_value(payload: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(payload)))
    new = data.draw(json_value)
    assume(json.dumps(new, sort_keys=True) != json.dumps(payload[key], sort_keys=True))
    assert cache_key("k", {**payload, key: new}) != cache_key("k", payload)


@settings(max_examples=100, deadline=None)
@given(payloads, st.randoms(use_true_random=False))
def test_cache_key_ignores_key_order(payload: dict[str, Any], rnd: Any) -> None:
    items = list(payload.items())
    rnd.shuffle(items)
    assert cache_key("k", dict(items)) == cache_key("k", payload)


kv = st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4), max_size=3)
OUTPUT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": st.text(min_size=1, max_size=8),
    "method": st.sampled_from(["none", "actor", "sft", "dro"]),
    "method_args": kv,
    "judge": st.sampled_from(["strmatch", "classifier", "llm"]),
    "judge_args": kv,
    "benchmarks": st.lists(st.sampled_from(["demo", "xstest", "orbench", "mmlu"]), min_size=1, max_size=3,
                           unique=True).map(tuple),
    "split": st.sampled_from(["train", "test", "all"]),
    "limit": st.none() | st.integers(1, 10_000),
    "seed": st.integers(0, 2**31),
    "max_new_tokens": st.none() | st.integers(1, 32768),
    "chat_template": st.none() | st.text(max_size=8),
    "dtype": st.none() | st.sampled_from(["float32", "bfloat16", "float16", "auto"]),
}
OTHER_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "batch_size": st.integers(1, 512),
    "judge_batch_size": st.integers(1, 512),
    "data_dir": st.none() | st.text(min_size=1, max_size=8).map(Path),
    "backend_args": kv,
    "max_unparsed": st.none() | st.integers(0, 100),
}
specs = st.fixed_dictionaries({**OUTPUT_FIELDS, **OTHER_FIELDS}).map(lambda d: RunSpec(**d))


def ident(spec: RunSpec) -> str:
    return identity(spec, {"source": "org/m", "revision": "main"}, "fp", "judge@1")


@settings(max_examples=100, deadline=None)
@given(specs, st.sampled_from(sorted(OUTPUT_FIELDS)), st.data())
def test_identity_changes_with_every_output_setting(spec: RunSpec, name: str, data: st.DataObject) -> None:
    new = data.draw(OUTPUT_FIELDS[name])
    assume(new != getattr(spec, name))
    assert ident(dataclasses.replace(spec, **{name: new})) != ident(spec)


@settings(max_examples=100, deadline=None)
@given(specs, st.sampled_from(sorted(OTHER_FIELDS)), st.data())
def test_identity_ignores_batching_paths_and_backend(spec: RunSpec, name: str, data: st.DataObject) -> None:
    new = data.draw(OTHER_FIELDS[name])
    assert ident(dataclasses.replace(spec, **{name: new})) == ident(spec)
