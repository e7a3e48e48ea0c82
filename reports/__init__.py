"""Built-in reporter plugins, one module each. ``PLUGINS`` lists modules beyond the core set."""

PLUGINS: tuple[str, ...] = (
    "reports.markdown",
    "reports.html",
    "reports.csv_report",
    "reports.json_report",
)
