"""Shared state: the store protocol and its implementations (memory, SQLite, Redis).

Policies keep whatever several workers must agree on (rate budgets, circuit state, tokens,
counters, cache entries, dead letters) in a ``StateStore``. Every operation that must be atomic
across processes is *one* method call here, so the SQLite implementation can run it in one
transaction and the Redis implementation as one Lua script, without the policies changing.

See ``docs/state-store.md`` for the contract of each method.
"""

from __future__ import annotations

from tether.state._protocol import StateStore

__all__ = ["StateStore"]
