"""orbench-harness plugin: the ``my-method`` method (made by ``harness new method``).

The harness finds this module through the ``orbench_harness`` entry point in
``pyproject.toml`` and calls its ``orbench_register_*`` hooks. Keep this module light: it is
imported whenever ``harness`` starts, so torch and the method's own module load only when a
run creates the method.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from orbench_harness import hookimpl
from orbench_harness.catalog import Register
from orbench_harness.methodargs import parse_config

if TYPE_CHECKING:
    from orbench_harness.protocols import MethodEnv

    from orbench_my_method.method import MyMethod


def create(args: Mapping[str, str], env: MethodEnv) -> MyMethod:
    """The method from ``--method-arg`` strings; unknown keys are an error with suggestions."""
    from orbench_my_method.method import MyMethod, MyMethodConfig

    return MyMethod(parse_config(MyMethodConfig, args, method="my-method"), env)


@hookimpl
def orbench_register_methods(register: Register) -> None:
    """Register ``my-method``."""
    register("my-method", create, summary="my-method: describe it in one line")
