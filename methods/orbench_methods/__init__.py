"""Built-in method plugins: one module or folder per method, registered by ``orbench_harness.plugins``."""
