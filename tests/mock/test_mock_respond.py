"""Fault.respond: a dynamic route whose answer is computed from each request."""

from __future__ import annotations

import pytest

import tether
from tether.mock import Fault, FaultServer, Incoming


def _by_path(incoming: Incoming) -> Fault:
    name = incoming.path.rsplit("/", 1)[-1]
    if name == "missing":
        return Fault.status(404, json={"error": "no such item"})
    return Fault.ok(json={"name": name, "query": incoming.query, "method": incoming.method})


async def test_each_request_gets_the_answer_its_path_asks_for(fault_server: FaultServer) -> None:
    """The function sees method, path and query; the log records the status actually sent."""
    fault_server.route("GET", "/items/{name}", Fault.respond(_by_path))
    async with tether.Client(fault_server.url, retry=None, breaker=None) as client:
        body = (await client.get("/items/apple", params={"n": 1})).json()
        with pytest.raises(tether.NotFoundError):
            await client.get("/items/missing")
    assert body == {"name": "apple", "query": "n=1", "method": "GET"}
    assert [(e.path, e.status) for e in fault_server.log] == [("/items/apple", 200), ("/items/missing", 404)]


async def test_scripted_faults_come_before_the_dynamic_answer(fault_server: FaultServer) -> None:
    """A 503 scripted first, then the function answers (and keeps answering)."""
    fault_server.route("GET", "/items/{name}", Fault.status(503), Fault.respond(_by_path))
    async with tether.Client(
        fault_server.url, retry=tether.Retry(attempts=2, initial=0.01), breaker=None
    ) as client:
        assert (await client.get("/items/pear")).json()["name"] == "pear"
        assert (await client.get("/items/plum")).json()["name"] == "plum"
    assert [e.status for e in fault_server.log] == [503, 200, 200]


def test_respond_needs_a_function_and_has_no_json_form() -> None:
    """A respond fault refuses a non-callable and cannot be sent to a server in another process."""
    with pytest.raises(ValueError, match="callable"):
        Fault.respond("not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no JSON form"):
        Fault.respond(_by_path).to_dict()


def test_a_function_must_return_a_concrete_fault() -> None:
    """Returning something else is refused with what was returned."""
    fault = Fault.respond(lambda incoming: "oops")  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="concrete Fault"):
        fault.answer(Incoming("GET", "/", "", (), b""))
