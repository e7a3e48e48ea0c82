"""Built-in reporter plugins (leaderboard renderers), registered by ``orbench_harness.plugins``."""
