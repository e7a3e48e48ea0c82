"""The only module that imports rich: progress, tables and messages on stderr/stdout.

Progress has two forms. On a terminal it is rich's live bars. Anywhere else (``nohup``, a
Slurm or CI log, a pipe) a live display prints nothing until the end, so a long phase looks
hung; there every phase that runs longer than ``ORBENCH_PROGRESS_INTERVAL`` seconds (30 by
default) writes one plain line per interval instead — phase, done/total, rate, ETA — and a last
line when it ends. ``ORBENCH_NO_PROGRESS=1`` turns the live bars off (the CI sets it); it keeps
the plain lines, which are a log rather than an animation, so a long CI job still shows where
it is. ``--quiet`` turns both off, with the dim info lines; ``--verbose`` adds debug lines.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
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
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

QUIET, NORMAL, VERBOSE = -1, 0, 1
_level = NORMAL
DEFAULT_INTERVAL = 30.0


def set_verbosity(level: int) -> None:
    """``QUIET`` (errors, warnings and results only), ``NORMAL`` or ``VERBOSE`` (debug lines)."""
    global _level
    _level = level


def verbosity() -> int:
    """The level ``set_verbosity`` chose (``NORMAL`` until a CLI flag says otherwise)."""
    return _level


def error(message: str) -> None:
    """One red line on stderr (user errors)."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)


def warn(message: str) -> None:
    """One yellow line on stderr."""
    err.print(f"[yellow]warning:[/] {escape(message)}", markup=True, soft_wrap=True)


def info(message: str) -> None:
    """One dim line on stderr (hidden by ``--quiet``)."""
    if _level > QUIET:
        err.print(f"[dim]{escape(message)}[/]", markup=True, soft_wrap=True)


def debug(message: str) -> None:
    """One dim line on stderr, only with ``--verbose``."""
    if _level >= VERBOSE:
        err.print(f"[dim]debug: {escape(message)}[/]", markup=True, soft_wrap=True)


def progress_interval() -> float:
    """Seconds between plain progress lines (``ORBENCH_PROGRESS_INTERVAL``, default 30)."""
    raw = os.environ.get("ORBENCH_PROGRESS_INTERVAL", "")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(phase: str, done: float, total: float | None, seconds: float, start: float = 0) -> str:
    """``phase: done/total (pct), rate/s, ETA ...`` from the work done since ``start`` in ``seconds``."""
    rate = (done - start) / seconds if seconds > 0 else 0.0
    count = f"{done:g}/{total:g} ({done / total:.0%})" if total else f"{done:g} done"
    pace = f"{rate:.2f}/s" if rate > 0 else "rate ?"
    if total and done >= total:
        return f"progress: {phase}: {count}, {pace}, done in {_duration(seconds)}"
    eta = "" if not total else f", ETA {_duration((total - done) / rate)}" if rate > 0 else ", ETA ?"
    return f"progress: {phase}: {count}, {pace}{eta} (elapsed {_duration(seconds)})"


class LoggedProgress(Progress):
    """rich's ``Progress`` that, away from a terminal, prints a plain line per task every
    ``interval`` seconds from a daemon thread (so a single slow batch still shows a line), and
    a closing line for each task that printed any. The callers' API is rich's, unchanged."""

    def __init__(self, *columns: Any, interval: float | None, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.interval = interval
        self._starts: dict[TaskID, tuple[float, float]] = {}  # task -> (monotonic start, completed at start)
        self._logged: set[TaskID] = set()  # tasks that printed a line, so they get a closing one
        self._closed: set[TaskID] = set()  # tasks whose closing line is printed
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: int = 0, visible: bool = True, **fields: Any) -> TaskID:
        """rich's ``add_task``, recording when the task began for the plain lines' rate."""
        task = super().add_task(description, start, total, completed, visible, **fields)
        self._starts[task] = (time.monotonic(), float(completed))
        return task

    def start(self) -> None:
        """Start rich's display and, when plain lines are on, the ticker thread."""
        super().start()
        if self.interval is not None and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="orbench-progress", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        """Stop the ticker, print the closing lines, then stop rich's display."""
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._ticker = None
            for task in list(self._logged):
                self._log(task)
        super().stop()

    def _tick(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            for task in list(self._starts):
                self._log(task)
                self._logged.add(task)

    def _log(self, task_id: TaskID) -> None:
        # only the ticker thread, and stop() after joining it, come here: _closed needs no lock
        task = next((t for t in self.tasks if t.id == task_id), None)  # ``tasks`` takes rich's lock
        if task is None or task_id in self._closed:
            return
        description, done, total = task.description, task.completed, task.total
        if total is not None and done >= total:
            self._closed.add(task_id)
        began, first = self._starts[task_id]
        line = progress_line(description, done, total, time.monotonic() - began, first)
        err.print(line, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def progress() -> Iterator[Progress]:
    """Progress on stderr: rich bars on a terminal, plain timed lines elsewhere (module doc)."""
    tty = sys.stderr.isatty()
    bars = tty and not os.environ.get("ORBENCH_NO_PROGRESS") and _level > QUIET
    lines = not tty and _level > QUIET
    prog = LoggedProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not bars,
        transient=False,
        interval=progress_interval() if lines else None,
    )
    with prog:
        yield prog


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table on stdout. On a terminal rich fits it to the window; anywhere else (a
    file, a pipe) it is printed at its natural width, so no name or number is ever cut."""
    t = Table(title=Text(title))  # Text: a cell such as "[/INST]" is data, never rich markup
    for c in columns:
        t.add_column(Text(c), overflow="fold")
    for r in rows:
        t.add_row(*(Text("" if v is None else str(v)) for v in r))
    if out.is_terminal:
        out.print(t)
        return
    width = out.measure(t, options=out.options.update_width(1_000_000)).maximum
    Console(highlight=False, width=max(width, 20)).print(t)  # out's own width caps any print at 80


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (the ``--json`` form of the table commands)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()
