"""Benchmarks and the chaos suite: scripts run from the repository, never timed tests."""
