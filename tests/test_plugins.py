"""The plugin system: built-ins as plugins, entry points, blocking, did-you-mean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orbench_harness.catalog import Catalog, Entry
from orbench_harness.errors import HarnessError, UnknownNameError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.plugins import get_plugin_manager
from orbench_harness.registry import KINDS, Registry


def test_builtins_are_registered_as_plugins() -> None:
    reg = Registry(get_plugin_manager(load_entrypoints=False))
    assert "none" in reg.methods()
    assert "strmatch" in reg.judges()
    assert "hf" in reg.backends()
    assert reg.suites()["demo"].benchmarks == ("demo-benign", "demo-pseudo-harmful", "demo-harmful")
    assert reg.methods().get("baseline").name == "none"  # alias


def test_unknown_name_suggests_close_matches() -> None:
    reg = Registry(get_plugin_manager(load_entrypoints=False))
    with pytest.raises(UnknownNameError) as e:
        reg.methods().get("nnoe")
    assert "did you mean none" in str(e.value)
    with pytest.raises(UnknownNameError):
        reg.expand_benchmarks(["demo-benigns"])


def test_duplicate_names_are_a_loud_conflict() -> None:
    cat: Catalog[object] = Catalog("method")
    cat.add(Entry("x", object, "", (), "a", {}))
    with pytest.raises(HarnessError, match="registered by both a and b"):
        cat.add(Entry("y", object, "", ("x",), "b", {}))


class _ExtraPlugin:
    @hookimpl
    def orbench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register("extra", lambda args, env: None, summary="test plugin")


def test_fresh_manager_registers_a_plugin_object() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(_ExtraPlugin(), name="extra-plugin")
    reg = Registry(pm)
    assert reg.methods().get("extra").plugin == "extra-plugin"
    # a second fresh manager does not see it
    assert "extra" not in Registry(get_plugin_manager(load_entrypoints=False)).methods()


def test_blocking_a_builtin_plugin() -> None:
    reg = Registry(get_plugin_manager(load_entrypoints=False, blocked=["orbench_judges.strmatch"]))
    assert "strmatch" not in reg.judges()


def test_plugin_names_from_before_the_move_still_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.1.0 registered built-ins as ``methods.actor``, ``judges.llm``...; those names keep working."""
    monkeypatch.setenv("ORBENCH_DISABLE_PLUGINS", "methods.actor,reports.html")
    reg = Registry(get_plugin_manager(load_entrypoints=False, blocked=["judges.llm"]))
    assert "actor" not in reg.methods() and "scans" in reg.methods()
    assert "llm" not in reg.judges() and "strmatch" in reg.judges()
    assert "html" not in reg.reporters().names() and "markdown" in reg.reporters().names()


def test_expand_benchmarks_accepts_commas_and_suites() -> None:
    reg = Registry(get_plugin_manager(load_entrypoints=False))
    assert reg.expand_benchmarks(["demo-harmful,demo-benign", "demo"]) == [
        "demo-harmful", "demo-benign", "demo-pseudo-harmful"]


def test_registration_imports_nothing_heavy() -> None:
    code = textwrap.dedent(f"""
        import sys
        from orbench_harness.registry import Registry
        r = Registry()
        for kind in {KINDS!r}:
            r._catalog(kind)
        r.suites(); r.models()
        heavy = [m for m in ("torch", "transformers", "openai", "vllm", "datasets") if m in sys.modules]
        assert not heavy, heavy
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_third_party_plugin_installed_through_entry_point(tmp_path: Path) -> None:
    """Install a separate package with pip and see its method in ``harness list``."""
    pkg = tmp_path / "src"
    (pkg / "orbench_hello").mkdir(parents=True)
    (pkg / "orbench_hello" / "__init__.py").write_text(textwrap.dedent("""
        from orbench_harness import hookimpl

        @hookimpl
        def orbench_register_methods(register):
            register("hello", lambda args, env: None, summary="a third-party method")
    """))
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "orbench-hello"
        version = "0.0.1"
        [project.entry-points.orbench_harness]
        hello = "orbench_hello"
        [tool.setuptools]
        packages = ["orbench_hello"]
    """))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(pkg)],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    harness = [sys.executable, "-m", "orbench_harness.cli"]
    out = subprocess.run([*harness, "list", "methods", "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["hello"]["plugin"] == "hello"
    assert "none" in rows
    # the env-var filter loads no entry-point plugin when empty
    env["ORBENCH_LOAD_PLUGINS"] = ""
    out = subprocess.run([*harness, "list", "methods", "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert "hello" not in {r["name"] for r in json.loads(out)}


def test_suite_limits_hold_when_suites_are_combined_with_a_comma() -> None:
    """``--suite quick,safety`` reached the run as one raw name; its limits used to be dropped,
    so the quick suite's 20-prompt samples became whole benchmarks (745 SCOPE prompts)."""
    reg = Registry(get_plugin_manager(load_entrypoints=False))
    assert reg.suite_cap(["quick,safety"], "scope") == 20
    assert reg.suite_cap(["quick", "safety"], "advbench-heldout") == 20
    assert reg.suite_cap(["quick, safety"], "mmlu") == 60
    assert reg.suite_cap(["demo"], "scope") is None
