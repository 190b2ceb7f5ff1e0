"""The contenders. Each one does ``GET /fast`` and parses the JSON body, keep-alive on.

Every client gets a connection pool at least as large as the highest concurrency measured, so the
pool size is never the difference; timeouts are each library's defaults (tether's are connect 5 s,
read 30 s, write 30 s).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLIENTS", "ClientSpec", "Opened"]

Fetch = Callable[[], Awaitable[Any]]


@dataclass
class Opened:
    """A client ready to measure: ``fetch()`` sends one request and reads the whole body."""

    fetch: Fetch
    info: dict[str, Any] = field(default_factory=dict)


Opener = Callable[[str, int, int], AbstractAsyncContextManager[Opened]]


@dataclass(frozen=True)
class ClientSpec:
    key: str
    name: str
    description: str
    open: Opener  # (url, pool size, concurrency) -> async context manager of Opened


@asynccontextmanager
async def _tether_plain(url: str, pool: int, concurrency: int) -> AsyncIterator[Opened]:
    from bench.tether_adapter import no_policies

    built = no_policies(url, pool=pool)
    client = built.client

    async def fetch() -> Any:
        return (await client.get("/fast")).json()

    async with client:
        yield Opened(fetch, {"form": built.form, "pipeline": list(built.pipeline)})


@asynccontextmanager
async def _tether_full(url: str, pool: int, concurrency: int) -> AsyncIterator[Opened]:
    from bench.tether_adapter import full_policies

    built = full_policies(url, pool=pool, concurrency=concurrency)
    client = built.client

    async def fetch() -> Any:
        return (await client.get("/fast")).json()

    async with client:
        yield Opened(fetch, {"form": built.form, "pipeline": list(built.pipeline)})


@asynccontextmanager
async def _httpx2_default(url: str, pool: int, concurrency: int) -> AsyncIterator[Opened]:
    import httpx2

    limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
    target = url + "/fast"
    async with httpx2.AsyncClient(limits=limits) as client:

        async def fetch() -> Any:
            return (await client.get(target)).json()

        yield Opened(fetch)


@asynccontextmanager
async def _httpx2_aiohttp(url: str, pool: int, concurrency: int) -> AsyncIterator[Opened]:
    import httpx2

    from tether.transport import EngineOptions, create_transport

    transport = create_transport(EngineOptions(max_connections=pool, max_connections_per_host=0))
    target = url + "/fast"
    async with httpx2.AsyncClient(transport=transport) as client:

        async def fetch() -> Any:
            return (await client.get(target)).json()

        yield Opened(fetch)


@asynccontextmanager
async def _aiohttp(url: str, pool: int, concurrency: int) -> AsyncIterator[Opened]:
    import aiohttp

    target = url + "/fast"
    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch() -> Any:
            async with session.get(target) as response:
                return await response.json()

        yield Opened(fetch)


@asynccontextmanager
async def _hand_assembled(url: str, pool: int, concurrency: int) -> AsyncIterator[Opened]:
    """What a user writes today: httpx + tenacity + aiolimiter + purgatory."""
    import httpx
    from aiolimiter import AsyncLimiter
    from purgatory import AsyncCircuitBreakerFactory
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

    def retryable(exc: BaseException) -> bool:
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code in (429, 500, 502, 503, 504)
        return isinstance(exc, httpx.TransportError)

    limiter = AsyncLimiter(1_000_000, 1)  # never throttles at these rates
    breakers = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    target = url + "/fast"
    async with httpx.AsyncClient(limits=limits) as client:

        @retry(
            stop=stop_after_attempt(5),
            wait=wait_exponential_jitter(initial=1, max=60),
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        async def fetch() -> Any:
            async with await breakers.get_breaker("fast"), limiter:
                response = await client.get(target)
                response.raise_for_status()
            return response.json()

        yield Opened(fetch)


CLIENTS: tuple[ClientSpec, ...] = (
    ClientSpec("a", "tether (no policies)", "tether.Client(url, retry=None, breaker=None)", _tether_plain),
    ClientSpec("b", "httpx2 (default pool)", "httpx2.AsyncClient() with its own transport", _httpx2_default),
    ClientSpec(
        "c",
        "httpx2 + aiohttp engine",
        "httpx2.AsyncClient(transport=tether's aiohttp engine)",
        _httpx2_aiohttp,
    ),
    ClientSpec("d", "aiohttp", "aiohttp.ClientSession", _aiohttp),
    ClientSpec(
        "e",
        "httpx+tenacity+aiolimiter+purgatory",
        "httpx.AsyncClient + tenacity retry (5 attempts, exponential jitter) + aiolimiter "
        "AsyncLimiter + purgatory circuit breaker",
        _hand_assembled,
    ),
    ClientSpec(
        "f",
        "tether (every policy)",
        "tether.Client with deadline, retry, breaker, rate limiter and bulkhead (none throttling)",
        _tether_full,
    ),
)
