"""``harness new method NAME``: a pip-installable plugin package that works as generated.

Adding a method should take an afternoon, and most of that afternoon should go to the method.
The generated package has the entry point, the registration hook, a typed config whose fields
are the ``--method-arg`` options, the fingerprint, an artifact cached by ``prepare``, a
hooked ``apply``, and tests on the tiny offline model that pass before anything is changed.

The template under ``template/`` is ordinary code in the repository (our ruff checks it, and
``tests/test_scaffold.py`` installs a generated copy and runs its tests and a real run), with
the placeholder names ``my-method`` / ``orbench_my_method`` / ``MyMethod`` replaced here.
"""

from __future__ import annotations

import re
from pathlib import Path

from orbench_harness.errors import HarnessError

TEMPLATE = Path(__file__).with_name("template")
NAME_RE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def _files() -> list[Path]:
    """Template files, relative to ``TEMPLATE``: sources and the ``.in`` texts, no caches."""
    return sorted(p.relative_to(TEMPLATE) for p in TEMPLATE.rglob("*")
                  if p.is_file() and p.suffix in (".py", ".in") and "__pycache__" not in p.parts)


def method_package(name: str, out: Path) -> list[Path]:
    """Write the plugin package for method ``name`` into ``out``; return the files written.

    ``name`` is what users type after ``--method`` (lower case, digits, single hyphens). ``out``
    must not exist or be empty, so nothing of the user's is overwritten.
    """
    if not NAME_RE.fullmatch(name):
        raise HarnessError(f"method name {name!r}: use lower-case letters, digits and single hyphens "
                           f"(e.g. 'steer-v2'), starting with a letter")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HarnessError(f"{out}: exists and is not an empty directory; choose a new --out")
    module = name.replace("-", "_")
    camel = "".join(part.capitalize() for part in name.split("-"))
    swaps = (("orbench_my_method", f"orbench_{module}"), ("test_my_method", f"test_{module}"),
             ("my-method", name), ("MyMethod", camel))
    written = []
    for rel in _files():
        text = (TEMPLATE / rel).read_text(encoding="utf-8")
        target = str(rel.with_suffix("") if rel.suffix == ".in" else rel)
        for old, new in swaps:
            text, target = text.replace(old, new), target.replace(old, new)
        path = out / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
