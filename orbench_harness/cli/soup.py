"""``harness soup``: the uniform mean of several LoRA adapters of one base, as one adapter.

    harness soup --out runs/soup/adapter runs/align-s0/adapter runs/align-s1/adapter
    harness run --model runs/soup/adapter --method none --suite quick

The members must share their base model, rank, alpha and target modules (e.g. seeds of one
``harness align`` recipe). The soup's weight update is exactly the mean of theirs, stored at
rank k*r (``orbench_harness/alignment/soup.py`` says why and how).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orbench_harness.alignment.soup import soup
from orbench_harness.console import out


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``soup``."""
    p = sub.add_parser("soup", help="average LoRA adapters of one base into one adapter",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("adapters", nargs="+", type=Path, metavar="ADAPTER_DIR", help="peft adapter directories")
    p.add_argument("--out", type=Path, required=True, help="directory of the souped adapter")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Soup the adapters and print where the result is."""
    recipe = soup(args.adapters, args.out, command="harness " + " ".join(sys.argv[1:]))
    ad = recipe["adapter"]
    out.print(f"soup of {len(args.adapters)} adapters: {args.out}  (rank {recipe['rank']}, "
              f"{ad['bytes'] / 1e6:.1f} MB, {ad['revision']})")
    return 0
