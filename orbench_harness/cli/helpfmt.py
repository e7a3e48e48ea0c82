"""The help formatter every ``harness`` parser uses.

Module docstrings are the subcommands' descriptions, written for the docs with RST literals
(double backticks) and wrapped by hand; the formatter keeps their line breaks and drops the
literal markers, so one text serves both. It also appends each option's default where the help
text does not already say it, so ``harness run --help`` shows what a bare run uses.
"""

from __future__ import annotations

import argparse

LITERAL = "``"


class HarnessHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Raw descriptions without RST literals, and ``(default: X)`` on options that have one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        hidden = default is None or default is False or default is argparse.SUPPRESS or default == []
        shown = not hidden and bool(action.option_strings)
        if shown and "default" not in text and "%(default)" not in text:
            text = f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text

    def _format_text(self, text: str) -> str:
        return super()._format_text(text.replace(LITERAL, ""))

    def _expand_help(self, action: argparse.Action) -> str:
        return super()._expand_help(action).replace(LITERAL, "")


def use_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every subcommand parser below it the harness formatter."""
    parser.formatter_class = HarnessHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                use_everywhere(child)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("harness",)) -> list[tuple[tuple[str, ...],
                                                                                           argparse.ArgumentParser]]:
    """``parser`` and every subcommand parser below it, with its command path."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if child is not parser:
                    found += walk(child, (*path, name))
    return found
