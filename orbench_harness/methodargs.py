"""Typed method configuration from ``--method-arg key=value`` strings, and fingerprints.

A method declares a frozen dataclass of options; ``parse_config`` converts the CLI strings by
each field's type and rejects unknown keys with suggestions, and ``fingerprint`` hashes the
resulting config, so every option a user can set is part of the method's cache identity.

The same dataclass documents the options (``harness describe method NAME``): a field's meaning
is its attribute docstring, the string literal right below it, and a closing sentence
``Paper: VALUE.`` names the source paper's setting. Help therefore lives next to the field it
describes and cannot drift from the options the method accepts.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import inspect
import itertools
import json
import re
import textwrap
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_args, get_origin

from orbench_harness.errors import HarnessError

C = TypeVar("C")


def parse_config(cls: type[C], args: Mapping[str, str], *, method: str, defaults: Mapping[str, Any] = {}) -> C:
    """Instantiate ``cls`` from string arguments (and per-model ``defaults`` underneath).

    Given a ``DescribeRequest`` instead of arguments it raises ``ConfigFound`` with ``cls``:
    that is how ``harness describe`` finds the very class a factory parses (``describe.py``).
    """
    if isinstance(args, DescribeRequest):
        raise ConfigFound(cls, dict(defaults))
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {k: v for k, v in defaults.items() if k in fields}
    for key, raw in args.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=2)
            hint = f"; did you mean {', '.join(close)}?" if close else f" (options: {', '.join(fields)})"
            raise HarnessError(f"method {method!r} has no option {key!r}{hint}")
        values[key] = _convert(raw, hints[key], key, method)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise HarnessError(f"method {method!r}: {e}") from None


def _convert(raw: str, tp: Any, key: str, method: str) -> Any:
    origin = get_origin(tp)
    options = get_args(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        errors = []
        for option in options:
            if option is type(None):
                if raw.lower() in ("none", "null", ""):
                    return None
                continue
            try:
                return _convert(raw, option, key, method)
            except HarnessError as e:
                errors.append(str(e))
        raise HarnessError(f"method {method!r}: bad value {raw!r} for {key!r}")
    if origin is typing.Literal:
        if raw in options:
            return raw
        raise HarnessError(f"method {method!r}: {key} must be one of {', '.join(map(str, options))} (got {raw!r})")
    try:
        if tp is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if tp in (int, float, str):
            return tp(raw)
    except ValueError:
        raise HarnessError(f"method {method!r}: {key} must be a {tp.__name__} (got {raw!r})") from None
    raise HarnessError(f"method {method!r}: option {key!r} has an unsupported type {tp}")


# Field metadata for an option added after a method's first release: left at its default, it
# is not part of the fingerprint, so artifacts cached before the option existed stay valid.
ADDED_LATER: dict[str, bool] = {"fingerprint_omit_default": True}


def fingerprint(name: str, version: int, config: Any, **extra: Any) -> str:
    """sha256 of the method name, its implementation version, its config and extras."""
    cfg = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.metadata.get("fingerprint_omit_default") and cfg[f.name] == f.default:
            del cfg[f.name]
    payload = {"method": name, "version": version, "config": cfg, **extra}
    blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class DescribeRequest(Mapping[str, str]):
    """The empty arguments ``harness describe`` hands a factory: ``parse_config`` answers it
    with ``ConfigFound`` instead of building the component, so nothing else the factory would
    do (reading train data, loading a judge) runs."""

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class ConfigFound(Exception):
    """Raised by ``parse_config`` for a ``DescribeRequest``: the config class and the per-model
    defaults the factory passed."""

    def __init__(self, cls: type, defaults: dict[str, Any]) -> None:
        super().__init__(cls.__name__)
        self.cls = cls
        self.defaults = defaults


def config_of(factory: Callable[..., Any], *rest: Any) -> ConfigFound | None:
    """The config class ``factory`` parses (and its per-model defaults), or None for a factory
    that does not go through ``parse_config`` (a component without typed options)."""
    try:
        factory(DescribeRequest(), *rest)
    except ConfigFound as found:
        return found
    return None


@dataclass(frozen=True, slots=True)
class OptionDoc:
    """One option as ``harness describe`` shows it."""

    name: str
    type: str
    default: Any
    meaning: str
    paper: str | None = None
    model_default: Any = None  # the per-model default for the model asked about, where one applies

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``--json``)."""
        return dataclasses.asdict(self)


PAPER = re.compile(r"\s*Paper:\s*(.+?)\.?\s*$", re.S)


def field_docs(cls: type) -> dict[str, str]:
    """Each field's attribute docstring (the string literal right below it), by field name."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    node = next((n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)), None)
    docs: dict[str, str] = {}
    body = node.body if node is not None else []
    for stmt, after in itertools.pairwise(body):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[stmt.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def type_name(tp: Any) -> str:
    """A field type as users read it: ``int``, ``one of a|b``, ``float or none``."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Literal:
        return "one of " + "|".join(map(str, args))
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " or ".join("none" if a is type(None) else type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def describe_options(found: ConfigFound) -> list[OptionDoc]:
    """Every option of the config class ``found`` names: type, default, meaning, paper value."""
    cls = found.cls
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        text = docs.get(f.name, "")
        match = PAPER.search(text)
        paper = match.group(1) if match else None
        meaning = text[: match.start()].strip() if match else text
        out.append(OptionDoc(f.name, type_name(hints[f.name]), default, meaning, paper,
                             found.defaults.get(f.name)))
    return out
