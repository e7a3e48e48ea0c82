"""``harness describe``: every option of every method, from the config dataclass it parses.

The meanings live in the dataclasses as attribute docstrings, so these tests read the same
dataclasses independently (``dataclasses.fields``) and check that the description covers every
field with its real type and default, that no built-in option is left without a meaning, and
that a plugin made with ``harness new method`` is described the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orbench_harness.cli import main
from orbench_harness.cli.describe import describe
from orbench_harness.methodargs import config_of, field_docs
from orbench_harness.protocols import MethodEnv
from orbench_harness.registry import Registry
from orbench_harness.types import ModelSpec
from orbench_methods.actor.config import MODEL_DEFAULTS, ActorConfig

BUILTIN_METHODS = [e.name for e in Registry().methods() if e.plugin.startswith("orbench_methods.")]


def _harness(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbench_harness.cli", *args], env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=300)


def _config_class(name: str) -> type | None:
    entry = Registry().methods().get(name)
    env = MethodEnv(model=ModelSpec(name="", source=""), seed=0, train_samples=lambda _n: [])
    found = config_of(entry.factory, env)
    return None if found is None else found.cls


@pytest.mark.parametrize("name", BUILTIN_METHODS)
def test_every_builtin_option_has_its_type_default_and_a_meaning(name: str) -> None:
    d = describe("method", name)
    cls = _config_class(name)
    if cls is None:  # the reference method takes no options
        assert d["options"] == [] and d["factory_doc"]
        return
    fields = dataclasses.fields(cls)
    assert [o["name"] for o in d["options"]] == [f.name for f in fields]
    for o, f in zip(d["options"], fields, strict=True):
        assert o["default"] == f.default
        assert o["meaning"] and not o["meaning"].startswith("Paper:"), f"{name}.{f.name} has no meaning"
        assert o["type"]
    json.dumps(d)  # --json must be able to print it


def test_the_paper_column_and_per_model_defaults_come_from_the_same_sources() -> None:
    model, defaults = next(iter(MODEL_DEFAULTS.items()))
    d = describe("method", "actor", model=model)
    by_name = {o["name"]: o for o in d["options"]}
    for key, value in defaults.items():
        assert by_name[key]["model_default"] == value
    # the paper's value is the docstring's closing "Paper: ..." sentence, split off the meaning
    assert field_docs(ActorConfig)["lr"] == f"{by_name['lr']['meaning']} Paper: {by_name['lr']['paper']}."
    assert by_name["sign"]["type"].startswith("one of ") and "magnitude" in by_name["sign"]["type"]
    assert "Paper:" not in by_name["alpha"]["meaning"]


def test_text_output_to_a_pipe_shows_every_option_in_full() -> None:
    r = _harness(["describe", "method", "safe-decoding"])
    assert r.returncode == 0, r.stderr
    cls = _config_class("safe-decoding")
    assert cls is not None
    for f in dataclasses.fields(cls):
        assert f.name in r.stdout
    assert "…" not in r.stdout and "``" not in r.stdout
    as_json = json.loads(_harness(["describe", "method", "safe-decoding", "--json"]).stdout)
    assert as_json["config"] == cls.__name__


@pytest.mark.parametrize(("kind", "name"), [("judge", "strmatch"), ("backend", "hf"), ("benchmark", "xstest"),
                                             ("method", "none")])
def test_other_kinds_describe_without_building_anything_heavy(kind: str, name: str) -> None:
    assert main(["describe", kind, name]) == 0
    d = describe(kind, name)
    assert d["name"] == name and d["summary"]


def test_an_unknown_name_is_a_one_line_error_with_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "method", "actr"]) == 2
    assert "actor" in capsys.readouterr().err


def test_a_scaffolded_plugin_method_is_described_from_its_own_dataclass(tmp_path: Path) -> None:
    pkg = tmp_path / "orbench-steer-v3"
    assert main(["new", "method", "steer-v3", "--out", str(pkg)]) == 0
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(pkg)], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    r = _harness(["describe", "method", "steer-v3", "--json"], env)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert d["plugin"] == "steer-v3" and d["config"] == "SteerV3Config"
    sys.path.insert(0, str(site))
    try:
        from orbench_steer_v3.method import SteerV3Config  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(site))
    fields = dataclasses.fields(SteerV3Config)
    assert [o["name"] for o in d["options"]] == [f.name for f in fields]
    assert all(o["meaning"] for o in d["options"])
    assert [o["default"] for o in d["options"]] == [f.default for f in fields]
    text = _harness(["describe", "method", "steer-v3"], env)
    assert text.returncode == 0 and all(f.name in text.stdout for f in fields)
