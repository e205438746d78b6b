"""Fault-injection suite: the `figures` fixture (what each test measured) lives in tests/figures.py."""
