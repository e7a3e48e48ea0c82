"""``harness new method NAME``: start a method plugin as its own package.

    harness new method steer-v2 --out orbench-steer-v2
    cd orbench-steer-v2 && pip install -e . && python -m pytest
    harness run --method none,steer-v2 --model smollm2-135m-safety

The package works as generated (a small activation-steering method with tests on the tiny
offline model); its ``method.py`` says what each part is for, so the work left is the method.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orbench_harness.console import out
from orbench_harness.scaffold import method_package


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``new``."""
    p = sub.add_parser("new", help="start a method plugin package (tests included)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["method"], help="what to start")
    p.add_argument("name", help="its name, as typed after --method (e.g. steer-v2)")
    p.add_argument("--out", type=Path, help="directory to create (default: ./orbench-NAME)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Write the package and say what to do next."""
    target = args.out or Path(f"orbench-{args.name}")
    files = method_package(args.name, target)
    out.print(f"wrote {len(files)} files into {target}:")
    for f in files:
        out.print(f"  {f.relative_to(target)}")
    out.print(f"next: cd {target} && pip install -e . && python -m pytest")
    out.print(f"then: harness run --method none,{args.name} --model ... --benchmark ...")
    return 0
