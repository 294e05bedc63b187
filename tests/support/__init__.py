"""Helpers shared by the integration tests: server fixtures, a hazmon process, a test publisher."""
