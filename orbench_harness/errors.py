"""User-facing errors: the CLI prints them as one line and exits with code 2.

Anything else that escapes is a bug in the harness or a plugin and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class UnknownNameError(HarnessError):
    """An unknown method, judge, benchmark, model, backend or reporter name."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        listing = f" (known: {', '.join(known)})" if len(known) <= 12 else ""
        super().__init__(f"unknown {kind} {name!r}{hint}{listing}")
        self.kind = kind
        self.name = name
        self.suggestions = close


class DataError(HarnessError):
    """A benchmark file is missing or malformed; the message names file, row and column."""


class CapabilityError(HarnessError):
    """A method needs something the chosen backend cannot do."""


class JudgeUnavailable(HarnessError):
    """A judge's backend (an API endpoint, a model) could not be reached or kept failing."""
