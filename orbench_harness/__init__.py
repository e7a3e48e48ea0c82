"""orbench-harness: over-refusal methods as plugins of one evaluation harness.

Importing the package executes nothing: plugins are loaded by ``get_plugin_manager()``.
"""

from orbench_harness.hookspecs import hookimpl

__all__ = ["hookimpl"]
__version__ = "0.2.0.dev0"  # the only place the version is written (pyproject reads it)
