"""Built-in benchmark plugins: one module per benchmark, registered by ``orbench_harness.plugins``."""
