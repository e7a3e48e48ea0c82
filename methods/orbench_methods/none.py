"""``none``: the unmodified model, the reference row of every leaderboard."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from orbench_harness.catalog import Register
from orbench_harness.errors import HarnessError
from orbench_harness.hookspecs import hookimpl
from orbench_harness.protocols import MethodContext, MethodEnv, ModelHandle, Policy
from orbench_harness.types import Capability


class NoneMethod:
    """No intervention: ``apply`` hands back the loaded model itself."""

    name = "none"
    requires: frozenset[Capability] = frozenset()
    exportable = True

    def fingerprint(self) -> str:
        """Constant: there is nothing to configure."""
        return "none-v1"

    def prepare(self, model: ModelHandle, ctx: MethodContext) -> None:
        """Nothing to train."""
        return None

    @contextmanager
    def apply(self, model: ModelHandle, artifact: Any) -> Iterator[Policy]:
        """The model as loaded."""
        yield model


def create(args: Mapping[str, str], env: MethodEnv | None = None) -> NoneMethod:
    """Factory; ``none`` takes no arguments."""
    if args:
        raise HarnessError(f"method 'none' takes no --method-arg (got {', '.join(args)})")
    return NoneMethod()


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``none`` (alias ``baseline``)."""
    register("none", create, summary="the unmodified model (reference row)", aliases=("baseline",))
