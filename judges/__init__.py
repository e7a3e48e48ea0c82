"""Built-in judge plugins, one module each. ``PLUGINS`` lists modules beyond the core set."""

PLUGINS: tuple[str, ...] = ("judges.keywords", "judges.llm", "judges.classifier")
