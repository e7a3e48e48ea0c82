"""The plugin example of docs/writing-plugins.md and its test, run as they stand: users copy them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"


def _block(first_line: str) -> str:
    """The page's python code block that starts with ``first_line``."""
    for body in re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S):
        if body.startswith(first_line):
            return body
    raise AssertionError(f"docs/writing-plugins.md has no python block starting {first_line!r}")


def test_the_documented_method_and_its_test_pass_as_written(tmp_path: Path) -> None:
    """The method block becomes package ``my_method``, the test block its test module; pytest
    runs that test in a separate process, so a page that drifts from the API fails here."""
    (tmp_path / "my_method").mkdir()
    (tmp_path / "my_method" / "__init__.py").write_text(_block("# my_method/__init__.py"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_my_method.py").write_text(_block("# tests/test_my_method.py"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / "tests" / "test_my_method.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
