"""Built-in judge plugins: one module or folder per judge, registered by ``orbench_harness.plugins``."""
