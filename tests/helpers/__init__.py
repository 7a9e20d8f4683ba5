"""Reusable builders for tests (tiny models that run in milliseconds on CPU)."""
