"""The only module that imports rich: progress bars, tables and messages on stderr/stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def error(message: str) -> None:
    """One red line on stderr (user errors)."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)


def warn(message: str) -> None:
    """One yellow line on stderr."""
    err.print(f"[yellow]warning:[/] {escape(message)}", markup=True, soft_wrap=True)


def info(message: str) -> None:
    """One dim line on stderr."""
    err.print(f"[dim]{escape(message)}[/]", markup=True, soft_wrap=True)


@contextmanager
def progress() -> Iterator[Progress]:
    """A rich progress display on stderr (disabled when stderr is not a terminal in CI)."""
    disable = bool(os.environ.get("ORBENCH_NO_PROGRESS")) or not sys.stderr.isatty()
    prog = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=disable,
        transient=False,
    )
    with prog:
        yield prog


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table on stdout."""
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    out.print(t)
