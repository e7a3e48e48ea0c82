"""End-to-end runs on the tiny model: files, schema, caching, resume, and user errors."""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from orbench_harness.cli import main
from orbench_harness.hookspecs import hookimpl
from orbench_harness.plugins import get_plugin_manager
from orbench_harness.registry import Registry
from orbench_harness.runner import run
from orbench_harness.spec import RunSpec
from orbench_harness.testing import CHATML_TEMPLATE
from orbench_harness.types import Label, Verdict
from orbench_methods.none import NoneMethod


def _spec(model: Path, **kw: object) -> RunSpec:
    base: dict[str, object] = {"model": str(model), "benchmarks": ("demo",), "limit": 6,
                               "max_new_tokens": 8, "batch_size": 4}
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_run_writes_every_file_with_the_stable_schema(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run(_spec(tiny_model_dir), out)
    for name in ("run.json", "samples.jsonl", "verdicts.jsonl", "results.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text()) == res
    assert set(res) >= {"model", "method", "judge", "benchmarks", "summary"}
    assert set(res["benchmarks"]) == {"demo-benign", "demo-pseudo-harmful", "demo-harmful"}
    for b in res["benchmarks"].values():
        assert {"kind", "n", "compliance_rate", "refusal_rate", "partial_refusal_rate", "unparsed"} <= set(b)
        assert b["n"] == 6
        assert 0 <= b["compliance_rate"] <= 100
        assert b["compliance_rate"] + b["refusal_rate"] == pytest.approx(100)
    s = res["summary"]
    assert s["trade_off_score"] == pytest.approx((s["avg_compliance_rate"] + s["safety_score"]) / 2)
    meta = json.loads((out / "run.json").read_text())
    assert meta["method"]["fingerprint"] == "none-v1"
    assert meta["model"]["revision"].startswith("local:")
    assert all(len(f["sha256"]) == 64 for b in meta["benchmarks"].values() for f in b["files"])
    assert meta["spec"]["seed"] == 0 and "torch" in meta["versions"]
    assert len(_lines(out / "samples.jsonl")) == 18
    assert len(_lines(out / "verdicts.jsonl")) == 18


def test_rerun_recomputes_nothing_and_new_dir_hits_the_cache(tiny_model_dir: Path, tmp_path: Path) -> None:
    spec = _spec(tiny_model_dir)
    first = run(spec, tmp_path / "a")
    again = run(spec, tmp_path / "a")
    assert again["timing"]["model_loaded"] is False
    assert again["benchmarks"] == first["benchmarks"]
    other = run(spec, tmp_path / "b")  # a new run dir: generations come from the cache
    assert other["timing"]["model_loaded"] is False
    def key(r: dict[str, object]) -> str:
        return f"{r['benchmark']}/{r['id']}"

    assert sorted(_lines(tmp_path / "b" / "samples.jsonl"), key=key) == sorted(
        _lines(tmp_path / "a" / "samples.jsonl"), key=key)


def test_interrupted_run_resumes_with_one_record_per_sample(tiny_model_dir: Path, tmp_path: Path) -> None:
    spec = _spec(tiny_model_dir)
    out = tmp_path / "r"
    full = run(spec, out)
    samples = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    # simulate a kill: half the samples written, the next line cut off, no verdicts yet
    (out / "samples.jsonl").write_text("".join(samples[:9]) + samples[9][:20])
    (out / "verdicts.jsonl").unlink()
    (out / "results.json").unlink()
    resumed = run(spec, out)
    assert resumed["benchmarks"] == full["benchmarks"]
    recs = _lines(out / "samples.jsonl")
    assert len(recs) == 18 and len({(r["benchmark"], r["id"]) for r in recs}) == 18


def test_changing_the_judge_rejudges_without_regenerating(tiny_model_dir: Path, tmp_path: Path) -> None:
    run(_spec(tiny_model_dir), tmp_path / "a")

    class AlwaysRefuse:
        name, version = "always-refuse", "1"

        def preflight(self) -> None: ...

        def judge(self, items):  # type: ignore[no-untyped-def]
            return [Verdict(Label.FULL_REFUSAL, "r") for _ in items]

    class Plugin:
        @hookimpl
        def orbench_register_judges(self, register):  # type: ignore[no-untyped-def]
            register("always-refuse", lambda args: AlwaysRefuse())

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin())
    res = run(_spec(tiny_model_dir, judge="always-refuse"), tmp_path / "b", registry=Registry(pm))
    assert res["timing"]["model_loaded"] is False
    assert all(b["refusal_rate"] == 100 for b in res["benchmarks"].values())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--method", "actr"], "unknown method 'actr'"),
        (["run", "--judge", "strmach"], "did you mean strmatch"),
        (["run", "--benchmark", "xstset"], "unknown benchmark 'xstset'"),
        (["run", "--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["run", "--method-arg", "alpha"], "malformed --method-arg 'alpha'"),
        (["run", "--limit", "0"], "--limit must be a positive integer"),
        (["run", "--judge-model", "a", "--judge-arg", "model=b"], "conflicting flags"),
        (["run", "--data-dir", "/nonexistent/dir"], "is not a directory"),
        (["run", "--method", "none", "--method-arg", "x=1"], "takes no --method-arg"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())
    assert "Traceback" not in err


def test_model_without_chat_template_fails_before_work(tiny_model_no_template: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", str(tiny_model_no_template), "--limit", "2", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "no chat template" in capsys.readouterr().err
    assert not (tmp_path / "r" / "samples.jsonl").exists()


def test_chat_template_flag_rescues_a_model_without_one(tiny_model_no_template: Path, tmp_path: Path) -> None:
    tpl = tmp_path / "t.jinja"
    tpl.write_text(CHATML_TEMPLATE)
    code = main(["run", "--model", str(tiny_model_no_template), "--limit", "2", "--max-new-tokens", "4",
                 "--chat-template", str(tpl), "--out", str(tmp_path / "r")])
    assert code == 0


def test_empty_completions_are_counted_and_a_mostly_empty_benchmark_is_flagged(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken model answers nothing, and an empty answer contains no refusal, so judges call
    it compliance (an ACTOR block trained into NaN on a GPU scored 100% compliance and 0 safety
    this way). results.json counts empty completions per benchmark and the run says so."""

    class Blank:
        def __init__(self, model: object) -> None:
            self.model = model

        def __getattr__(self, name: str) -> object:
            return getattr(self.model, name)

        def generate(self, prompts, params, *, batch_size=8, on_batch=None):  # type: ignore[no-untyped-def]
            made = self.model.generate(prompts, params, batch_size=batch_size)  # type: ignore[attr-defined]
            out = [dataclasses.replace(c, text="") for c in made]
            if on_batch is not None:
                on_batch(list(range(len(out))), out)
            return out

    class Silent(NoneMethod):
        name = "silent"

        def fingerprint(self) -> str:
            return "silent-v1"

        @contextmanager
        def apply(self, model, artifact):  # type: ignore[no-untyped-def]
            yield Blank(model)

    class Plugin:
        @hookimpl
        def orbench_register_methods(self, register):  # type: ignore[no-untyped-def]
            register("silent", lambda args, env=None: Silent())

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin())
    res = run(_spec(tiny_model_dir, method="silent", judge="strmatch"), tmp_path / "silent", registry=Registry(pm))
    demo = res["benchmarks"]
    assert all(b["empty_completions"] == b["n"] > 0 for b in demo.values())
    assert all(b["compliance_rate"] == 100 for b in demo.values())  # what the judge makes of silence
    err = capsys.readouterr().err
    assert "completions are empty" in err and "may be broken" in err
    plain = run(_spec(tiny_model_dir, judge="strmatch"), tmp_path / "plain")
    samples = _lines(tmp_path / "plain" / "samples.jsonl")
    assert sum(b["empty_completions"] for b in plain["benchmarks"].values()) == sum(
        1 for x in samples if not str(x["completion"]).strip())
