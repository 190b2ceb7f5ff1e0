"""Redirects: bounded, method rules, https→http refusal, credentials stripped across origins."""

from __future__ import annotations

import httpx2
import pytest
from engine_helpers import plain_client
from engine_tls_app import TlsServer

from tether import errors
from tether import events as ev
from tether.events import EventBus, EventRecorder
from tether.mock import Fault, FaultServer
from tether.transport import AiohttpTransport, EngineOptions, RedirectHistory, send_following_redirects


async def test_redirects_are_not_followed_unless_asked(fault_server: FaultServer) -> None:
    """By default a 302 is returned as it is (raise_for_status=False shows it)."""
    fault_server.route("GET", "/old", Fault.redirect("/new"))
    async with plain_client(fault_server.url) as client:
        response = await client.get("/old")
    assert response.status_code == 302
    assert [r.path for r in fault_server.log] == ["/old"]


async def test_a_relative_location_is_followed_and_recorded(fault_server: FaultServer) -> None:
    """A relative Location resolves against the current URL; .request is the last hop; history is kept."""
    fault_server.route("GET", "/a/old", Fault.redirect("new?x=1", status=301))
    fault_server.route("GET", "/a/new", Fault.ok(json={"here": True}))
    recorder = EventRecorder()
    async with plain_client(fault_server.url, follow_redirects=True, listeners=[recorder]) as client:
        response = await client.get("/a/old")
    assert response.json() == {"here": True}
    assert response.request.url == httpx2.URL(fault_server.url + "/a/new?x=1")
    history = response.extensions["tether.redirects"]
    assert isinstance(history, RedirectHistory)
    assert history == [fault_server.url + "/a/old"]
    followed = recorder.of(ev.REDIRECT_FOLLOWED)
    assert len(followed) == 1
    assert followed[0].fields["status"] == 301


async def test_too_many_redirects_is_a_typed_error(fault_server: FaultServer) -> None:
    """A redirect loop stops after max_redirects hops with reason="too_many_redirects"."""
    fault_server.route("GET", "/loop", Fault.redirect("/loop"))
    options = EngineOptions(follow_redirects=True, max_redirects=3)
    async with plain_client(fault_server.url, engine=options) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.get("/loop")
    assert caught.value.reason == "too_many_redirects"
    assert len(fault_server.log) == 4  # the request and three redirects followed


async def test_303_turns_a_post_into_a_get_without_body(fault_server: FaultServer) -> None:
    """POST → 303 → GET on the target, with no body and no content headers."""
    fault_server.route("POST", "/submit", Fault.redirect("/result", status=303))
    fault_server.route("GET", "/result", Fault.ok(json={"done": True}))
    async with plain_client(fault_server.url, follow_redirects=True) as client:
        response = await client.post("/submit", json={"a": 1})
    assert response.json() == {"done": True}
    final = fault_server.log[-1]
    assert (final.method, final.path, final.body) == ("GET", "/result", b"")
    assert "content-type" not in final.headers
    assert "content-length" not in final.headers


async def test_302_turns_a_put_into_a_get(fault_server: FaultServer) -> None:
    """301/302 change methods other than GET/HEAD to GET."""
    fault_server.route("PUT", "/p", Fault.redirect("/q", status=302))
    fault_server.route("GET", "/q", Fault.ok(json={}))
    async with plain_client(fault_server.url, follow_redirects=True) as client:
        await client.put("/p", content=b"payload")
    assert [(r.method, r.path) for r in fault_server.log] == [("PUT", "/p"), ("GET", "/q")]


async def test_307_keeps_method_and_body(fault_server: FaultServer) -> None:
    """307 re-sends the same method and bytes body to the new location."""
    fault_server.route("POST", "/in", Fault.redirect("/moved", status=307))
    fault_server.route("POST", "/moved", Fault.ok(json={"ok": True}))
    async with plain_client(fault_server.url, follow_redirects=True) as client:
        await client.post("/in", content=b"same body")
    final = fault_server.log[-1]
    assert (final.method, final.path, final.body) == ("POST", "/moved", b"same body")


async def test_308_with_a_streamed_body_cannot_be_followed(fault_server: FaultServer) -> None:
    """A body that was a stream cannot be replayed: reason="unreplayable_body"."""

    async def parts():  # type: ignore[no-untyped-def]
        yield b"streamed"

    fault_server.route("POST", "/in", Fault.redirect("/moved", status=308))
    async with plain_client(fault_server.url, follow_redirects=True) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.post("/in", content=parts())
    assert caught.value.reason == "unreplayable_body"


async def test_credentials_are_stripped_when_the_origin_changes(
    fault_server: FaultServer, other_server: FaultServer
) -> None:
    """Authorization, Cookie and API-key headers never reach another origin; other headers do."""
    fault_server.route("GET", "/go", Fault.redirect(other_server.url + "/landing"))
    other_server.route("GET", "/landing", Fault.ok(json={"landed": True}))
    recorder = EventRecorder()
    headers = {
        "Authorization": "Bearer tok-123456",
        "Cookie": "session=abcdef",
        "X-API-Key": "key-123456",
        "X-Request-Tag": "keep-me",
    }
    async with plain_client(
        fault_server.url, headers=headers, follow_redirects=True, listeners=[recorder]
    ) as client:
        response = await client.get("/go")
    assert response.json() == {"landed": True}
    first, second = fault_server.log[0], other_server.log[0]
    assert first.headers["authorization"] == "Bearer tok-123456"
    for name in ("authorization", "cookie", "x-api-key"):
        assert name not in second.headers
    assert second.headers["x-request-tag"] == "keep-me"
    assert second.headers["host"] == other_server.url.removeprefix("http://")
    stripped = recorder.of(ev.CREDENTIALS_STRIPPED)
    assert len(stripped) == 1
    assert stripped[0].fields["headers"] == ["authorization", "cookie", "x-api-key"]
    assert "tok-123456" not in repr(recorder.events)


async def test_credentials_stay_on_a_same_origin_redirect(fault_server: FaultServer) -> None:
    """A redirect within the origin keeps the Authorization header and emits no strip event."""
    fault_server.route("GET", "/a", Fault.redirect("/b"))
    fault_server.route("GET", "/b", Fault.ok(json={}))
    recorder = EventRecorder()
    async with plain_client(
        fault_server.url,
        headers={"Authorization": "Bearer same"},
        follow_redirects=True,
        listeners=[recorder],
    ) as client:
        await client.get("/a")
    assert fault_server.log[-1].headers["authorization"] == "Bearer same"
    assert recorder.of(ev.CREDENTIALS_STRIPPED) == []


async def test_an_https_to_http_redirect_is_refused(tls_server: TlsServer, fault_server: FaultServer) -> None:
    """An https page redirecting to http is refused (reason="insecure_redirect"); nothing is sent to http."""
    fault_server.route("GET", "/plain", Fault.ok(json={}))
    target = fault_server.url + "/plain"
    options = EngineOptions(verify=tls_server.ca_path, follow_redirects=True)
    async with plain_client(tls_server.url, engine=options) as client:
        with pytest.raises(errors.ResponseError) as caught:
            await client.get("/redirect", params={"to": target})
    assert caught.value.reason == "insecure_redirect"
    assert fault_server.log == []


async def test_the_redirect_helper_works_on_a_bare_transport(fault_server: FaultServer) -> None:
    """send_following_redirects needs no Client: a bare request and an empty EventBus suffice."""
    fault_server.route("GET", "/x", Fault.redirect("/y", status=308))
    fault_server.route("GET", "/y", Fault.ok(body=b"end"))
    async with AiohttpTransport() as engine:
        response = await send_following_redirects(
            engine, httpx2.Request("GET", fault_server.url + "/x"), EngineOptions(), EventBus()
        )
        assert await response.aread() == b"end"
    assert response.request.url.path == "/y"


def test_redirect_history_prints_redacted() -> None:
    """The history keeps real URLs but shows credentials masked."""
    history = RedirectHistory(["https://api.example.com/x?api_key=abcdef123&q=1"])
    assert "abcdef123" not in repr(history)
    assert "abcdef123" in history[0]
