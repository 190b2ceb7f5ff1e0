"""``tether.mock``: a fault-injecting loopback HTTP/1.1 server for tests and benchmarks.

::

    from tether.mock import Chaos, Fault, FaultServer

    async with FaultServer() as server:
        server.route("GET", "/data/{id}", Fault.status(503), Fault.ok(json={"ok": True}))
        server.route("GET", "/limited", Fault.ok(json={}), rate_limit="600/minute", burst=10)
        ...  # call server.url + "/data/1"
        server.requests("GET", "/data/{id}")  # what the server received

``spawn_server()`` runs one in a subprocess (``python -m tether.mock``) and controls it over HTTP.
"""

from __future__ import annotations

from tether.mock._bodies import PATTERN, pattern_bytes
from tether.mock._faults import Chaos, Fault, Incoming
from tether.mock._log import RecordedRequest
from tether.mock._server import FaultServer, ServerStats
from tether.mock._spawn import SpawnedServer, spawn_server
from tether.mock._spec import routes_for, serve_spec

__all__ = [
    "PATTERN",
    "Chaos",
    "Fault",
    "FaultServer",
    "Incoming",
    "RecordedRequest",
    "ServerStats",
    "SpawnedServer",
    "pattern_bytes",
    "routes_for",
    "serve_spec",
    "spawn_server",
]
