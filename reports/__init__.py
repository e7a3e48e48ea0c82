"""Built-in reporter plugins, one module each. ``PLUGINS`` lists modules beyond the core set."""

PLUGINS: tuple[str, ...] = ()
