"""Built-in method plugins, one module each. ``PLUGINS`` lists modules beyond the core set."""

PLUGINS: tuple[str, ...] = (
    "methods.actor",
    "methods.scans",
    "methods.surgical",
    "methods.self_cd",
    "methods.safe_decoding",
    "methods.sft",
    "methods.dro",
)
