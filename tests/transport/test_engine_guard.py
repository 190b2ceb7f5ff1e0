"""The destination guard: non-public addresses refused after DNS, with an injectable allow list."""

from __future__ import annotations

import pytest
from engine_helpers import plain_client
from engine_tls_app import TlsServer

from tether import errors
from tether.mock import Fault, FaultServer
from tether.transport import EngineOptions
from tether.transport._guard import DestinationGuard

GUARDED = EngineOptions(block_private=True)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:c0a8:101::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    """Private, loopback, link-local, shared, multicast, unspecified and embedded-private addresses fail."""
    assert not DestinationGuard().permits(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_permitted(address: str) -> None:
    """Ordinary global unicast addresses pass."""
    assert DestinationGuard().permits(address)


def test_the_allow_list_lets_chosen_networks_through() -> None:
    """guard_allow networks pass even though they are not public; neighbours stay refused."""
    guard = DestinationGuard(["127.0.0.1/32", "10.9.0.0/16"])
    assert guard.permits("127.0.0.1")
    assert guard.permits("10.9.8.7")
    assert not guard.permits("127.0.0.2")
    assert not guard.permits("10.8.0.1")


def test_bad_allow_entries_are_rejected_with_the_value() -> None:
    """EngineOptions validates guard_allow and names the bad entry."""
    with pytest.raises(ValueError, match="not-a-network"):
        EngineOptions(guard_allow=("not-a-network",))


async def test_an_ip_literal_to_loopback_is_refused(fault_server: FaultServer) -> None:
    """http://127.0.0.1:… is refused before any connection: BlockedDestinationError naming the host."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    async with plain_client(fault_server.url, engine=GUARDED) as client:
        with pytest.raises(errors.BlockedDestinationError, match=r"127\.0\.0\.1") as caught:
            await client.get("/x")
    assert isinstance(caught.value, errors.Rejected)
    assert fault_server.log == []


async def test_a_name_resolving_to_loopback_is_refused_after_dns(fault_server: FaultServer) -> None:
    """localhost is checked by what it resolves to, so the name does not slip past the guard."""
    fault_server.route("GET", "/x", Fault.ok(json={}))
    url = f"http://localhost:{fault_server.port}"
    async with plain_client(url, engine=GUARDED) as client:
        with pytest.raises(errors.BlockedDestinationError, match="localhost"):
            await client.get("/x")
    assert fault_server.log == []


async def test_an_allowed_network_is_reached(fault_server: FaultServer) -> None:
    """With guard_allow=("127.0.0.1/32",) the same calls go through, by IP and by name."""
    fault_server.route("GET", "/x", Fault.ok(json={"reached": True}))
    options = EngineOptions(block_private=True, guard_allow=("127.0.0.1/32",))
    async with plain_client(fault_server.url, engine=options) as client:
        assert (await client.get("/x")).json() == {"reached": True}
    async with plain_client(f"http://localhost:{fault_server.port}", engine=options) as client:
        assert (await client.get("/x")).json() == {"reached": True}


async def test_a_redirect_to_a_refused_address_fails_at_that_hop(
    fault_server: FaultServer, other_server: FaultServer
) -> None:
    """Every hop is checked: an allowed origin redirecting to a loopback address outside the list fails."""
    fault_server.route("GET", "/go", Fault.redirect(f"http://[::1]:{other_server.port}/inside"))
    other_server.route("GET", "/inside", Fault.ok(json={}))
    options = EngineOptions(block_private=True, guard_allow=("127.0.0.1/32",), follow_redirects=True)
    async with plain_client(fault_server.url, engine=options) as client:
        with pytest.raises(errors.BlockedDestinationError, match="::1"):
            await client.get("/go")
    assert [r.path for r in fault_server.log] == ["/go"]
    assert other_server.log == []


async def test_the_http2_engine_is_guarded_too(tls_server: TlsServer) -> None:
    """http_version="2" with block_private refuses the loopback TLS server, and the allow list opens it."""
    refused = EngineOptions(http_version="2", verify=tls_server.ca_path, block_private=True)
    async with plain_client(tls_server.url, engine=refused) as client:
        with pytest.raises(errors.BlockedDestinationError, match=r"127\.0\.0\.1"):
            await client.get("/hello")
    allowed = EngineOptions(
        http_version="2", verify=tls_server.ca_path, block_private=True, guard_allow=("127.0.0.1/32",)
    )
    async with plain_client(tls_server.url, engine=allowed) as client:
        response = await client.get("/hello")
    assert response.http_version == "HTTP/2"
