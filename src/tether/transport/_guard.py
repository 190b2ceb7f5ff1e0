"""The destination guard: refuse non-public addresses, checked after DNS, connecting to what was checked.

Opt-in (``EngineOptions.block_private``). A host name is resolved by the guard itself; addresses
that are private (RFC 1918, ULA), loopback, link-local, multicast, unspecified, shared (CGNAT),
documentation or otherwise reserved are dropped, and only the vetted addresses are handed to the
connection code (aiohttp: a resolver; HTTP/2: a network backend). There is no second lookup, so a
DNS answer that changes between check and connect (rebinding) cannot slip through. IP-literal URLs
are checked directly. ``EngineOptions.guard_allow`` lists networks to let through anyway.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Final

import aiohttp
import httpcore2
from aiohttp.abc import AbstractResolver, ResolveResult

from tether.errors import BlockedDestinationError

__all__ = ["DestinationGuard", "GuardedNetworkBackend", "GuardedResolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


@lru_cache(maxsize=64)
def _networks(allow: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in allow)


class DestinationGuard:
    """The predicate: is this address one tether may connect to?"""

    __slots__ = ("_allow",)

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self._allow = _networks(tuple(allow))

    def permits(self, address: str | IPAddress) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        candidates = _unwrap(ip)
        for candidate in candidates:
            if any(candidate in net for net in self._allow if net.version == candidate.version):
                return True
        return not any(_is_blocked(candidate) for candidate in candidates)

    def check_literal(self, host: str) -> None:
        """Refuse ``host`` when it is an IP literal the guard does not permit (names pass)."""
        try:
            ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return
        if not self.permits(ip):
            raise BlockedDestinationError(f"destination {host} is not a public address; refused by the guard")

    def vet(self, host: str, addresses: Iterable[str]) -> list[str]:
        """The permitted addresses among ``addresses`` resolved for ``host``, or refuse."""
        seen = list(addresses)
        allowed = [a for a in seen if self.permits(a)]
        if not allowed:
            shown = ", ".join(sorted(set(seen))) or "nothing"
            raise BlockedDestinationError(
                f"destination {host} resolves only to non-public addresses ({shown}); refused by the guard"
            )
        return allowed


def _unwrap(ip: IPAddress) -> list[IPAddress]:
    """What to judge: an IPv4-mapped address is its IPv4 address; 6to4 and NAT64 addresses are
    judged together with the IPv4 address they embed."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    out: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.sixtofour is not None:
            out.append(ip.sixtofour)
        if ip in _NAT64:
            out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def _is_blocked(ip: IPAddress) -> bool:
    if (
        not ip.is_global
        or ip.is_multicast
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
    ):
        return True
    return isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that returns only addresses the guard permits."""

    def __init__(self, guard: DestinationGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = set(self._guard.vet(host, (r["host"] for r in results)))
        return [r for r in results if r["host"] in allowed]

    async def close(self) -> None:
        await self._inner.close()


class GuardedNetworkBackend(httpcore2.AsyncNetworkBackend):
    """An httpcore2 network backend that resolves, vets, then connects to a vetted address."""

    def __init__(self, guard: DestinationGuard, inner: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner: httpcore2.AsyncNetworkBackend = inner if inner is not None else httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(f"timed out resolving {host}") from exc
        except OSError as exc:
            raise httpcore2.ConnectError(f"could not resolve {host}: {exc.strerror or exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        last: Exception | None = None
        for address in self._guard.vet(host, addresses):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise BlockedDestinationError("unix sockets are not allowed while the destination guard is on")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
