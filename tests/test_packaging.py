"""The wheel: project-prefixed packages only, its data files, no research log, and it runs.

The repository keeps ``methods/``, ``judges/``, ``benchmarks/`` and ``reports/`` at the top, but
an installed wheel must not put modules with those generic names into site-packages, where
another distribution's ``methods`` would collide with ours. The wheel is built from this
checkout, installed into a fresh virtual environment (its third-party dependencies borrowed
from the running environment through a path entry, so nothing is downloaded), and the
installed ``harness`` runs a job on the embedded model from it.
"""

from __future__ import annotations

import re
import site
import subprocess
import sys
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from orbench_harness import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"orbench_harness", "orbench_methods", "orbench_judges", "orbench_benchmarks", "orbench_reports"}
GENERIC = {"methods", "judges", "benchmarks", "reports"}
DATED = re.compile(r"\b20\d\d-\d\d-\d\d\b")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("*.whl")
    return whl


def test_the_wheel_has_only_project_prefixed_top_level_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == PACKAGES
    assert not tops & GENERIC
    assert f"-{__version__}-" in wheel.name  # the version comes from orbench_harness.__version__
    for data in ("orbench_benchmarks/data/demo.jsonl", "orbench_judges/artifacts/refusal_head.json",
                 "orbench_harness/organisms/smollm2-135m-safety/adapter_model.safetensors"):
        assert data in names, data


def test_no_research_log_ships_in_the_wheel(wheel: Path) -> None:
    """Findings live in docs/results/; a markdown file in the wheel describes what it sits beside."""
    z = zipfile.ZipFile(wheel)
    for name in (n for n in z.namelist() if n.endswith(".md")):
        text = z.read(name).decode()
        assert not DATED.search(text), f"{name} has dated entries: {DATED.search(text)}"
        assert text.count("\n") <= 120, f"{name} is {text.count(chr(10))} lines: a log, not a description"


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin directory."""
    env = tmp_path_factory.mktemp("venv") / "v"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    fresh_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True).stdout.strip()
    # the running environment's packages as a plain path entry: its .pth files (among them the
    # editable install of this checkout) are not processed, so only the wheel's code is importable
    Path(fresh_site, "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env / "bin"


def test_the_installed_wheel_lists_its_files_without_generic_names(installed: Path, tmp_path: Path) -> None:
    code = ("from importlib import metadata; fs = metadata.distribution('orbench-harness').files; "
            "print('\\n'.join(sorted({str(f).split('/')[0] for f in fs})))")
    out = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout
    tops = {t for t in out.split() if not t.endswith(".dist-info") and t != ".." and not t.startswith("../")}
    assert tops == PACKAGES


def test_the_installed_wheel_runs_a_job_from_its_own_files(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "python"), "-c", "import orbench_methods; print(orbench_methods.__file__)"],
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert str(ROOT) not in where  # the wheel's copy, not this checkout
    res = subprocess.run(
        [str(installed / "harness"), "run", "--model", "smollm2-135m", "--method", "none,self-cd",
         "--benchmark", "demo", "--limit", "2", "--max-new-tokens", "4", "--judge", "classifier",
         "--out", str(tmp_path / "runs")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "runs" / "self-cd" / "results.json").is_file()
    assert metadata.version("orbench-harness") == __version__
