"""Built-in benchmark plugins, one module each. ``PLUGINS`` lists modules beyond the core set."""

PLUGINS: tuple[str, ...] = (
    "benchmarks.xstest",
    "benchmarks.scope",
    "benchmarks.orbench",
    "benchmarks.phtest",
    "benchmarks.oktest",
    "benchmarks.advbench",
    "benchmarks.hexphi",
    "benchmarks.koala",
    "benchmarks.jailbreakbench",
    "benchmarks.sorry_bench",
    "benchmarks.gsm8k",
    "benchmarks.sql1k",
    "benchmarks.ultrachat",
    "benchmarks.truthfulqa",
    "benchmarks.alpaca",
    "benchmarks.harmful_train",
    "benchmarks.suites",
    "benchmarks.mmlu",
    "benchmarks.wikitext2",
    "benchmarks.mt_bench",
)
