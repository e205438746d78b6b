"""Shared worker runtime: config, WebSocket/REST loops, Redis sink, status."""
