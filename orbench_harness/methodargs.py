"""Typed method configuration from ``--method-arg key=value`` strings, and fingerprints.

A method declares a frozen dataclass of options; ``parse_config`` converts the CLI strings by
each field's type and rejects unknown keys with suggestions, and ``fingerprint`` hashes the
resulting config, so every option a user can set is part of the method's cache identity.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, get_args, get_origin

from orbench_harness.errors import HarnessError

C = TypeVar("C")


def parse_config(cls: type[C], args: Mapping[str, str], *, method: str, defaults: Mapping[str, Any] = {}) -> C:
    """Instantiate ``cls`` from string arguments (and per-model ``defaults`` underneath)."""
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
