"""Browser tests: the `browser` and `shots` fixtures live in tests/conftest.py (the panel's multi-node test uses them too)."""
