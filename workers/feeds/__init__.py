"""Wiring: which connections, REST loops and discovery each feed runs.

One module per exchange; each builder takes a FeedContext and returns the feed's
sources. Protocol (frames, parsing, selection rules) stays in `workers/exchanges/`,
shared machinery (loops, paging, chain rule, sharding, the sink) in `workers/runtime/`.
"""
