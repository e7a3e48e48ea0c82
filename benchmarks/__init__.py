"""Built-in benchmark plugins, one module each. ``PLUGINS`` lists modules beyond the core set."""

PLUGINS: tuple[str, ...] = ()
