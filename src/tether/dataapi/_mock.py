"""The bundled mock provider of the REQ-001 data API: a ``FaultServer`` with its endpoints.

::

    server = await tether.dataapi.serve_mock(tier="premium", enforce_rate_limit=True)
    client = DataAPIClient(base_url=server.base_url)
    ...
    await server.stop()

Routes (under ``/v1``, as the spec's ``development`` environment expects):

- ``GET /v1/data/{identifier}``: a ``DataResponse``; the value and metadata depend only on the
  identifier. Identifiers starting with ``MISSING`` are unknown: 404 with a ``NOTFOUND_001``
  ``ErrorResponse``. A malformed identifier gets 400 ``VALID_001``.
- ``POST /v1/data/batch``: ``{"identifiers": [...]}`` → the ``DataResponse`` of each known one.
- ``GET /v1/historical/{identifier}?start=&end=&interval=&page=&page_size=``: one page of the
  range's records (``page``, ``total_pages``); each record's value depends on identifier and date.
- ``GET /v1/identifiers?offset=&limit=&category=``: one page of the identifiers the mock
  serves (``catalog``, by default ``SER-001`` … ``SER-012``) with their category and region,
  and the ``total``.

``enforce_rate_limit=True`` makes each route enforce the tier's limit (429 with ``Retry-After``
and ``X-RateLimit-*``). ``script(identifier, *faults)`` scripts faults for one identifier before
its live answer (``Fault.status(503), Fault.status(503)`` → two 503s, then the data).
``chaos=tether.mock.Chaos(...)`` answers a seeded share of every route's requests with faults.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from calendar import monthrange
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qs

from tether.dataapi._models import IDENTIFIER_PATTERN, RateLimitTier
from tether.mock import Chaos, Fault, FaultServer
from tether.mock._faults import Incoming

__all__ = ["DataAPIMock", "serve_mock"]

#: Where the spec's ``development`` environment expects the API.
BASE_PATH: Final = "/v1"
#: The server-side bucket per tier: (rate, burst). ``None`` burst: the whole minute's worth.
MOCK_TIER_LIMITS: Final[dict[str, tuple[str, int | None]]] = {
    "free": ("5/minute", None),
    "premium": ("75/minute", 10),
    "enterprise": ("1000/minute", None),
}
#: Identifiers with this prefix are unknown to the mock provider (404 ``NOTFOUND_001``).
MISSING_PREFIX: Final = "MISSING"
_IDENTIFIER_RE: Final = re.compile(IDENTIFIER_PATTERN)
_LIVE_KINDS: Final = ("get_data", "get_data_batch", "get_historical", "list_identifiers")
#: The identifiers ``GET /identifiers`` lists unless the mock is given a ``catalog``.
DEFAULT_CATALOG: Final = tuple(f"SER-{n:03d}" for n in range(1, 13))
_CATEGORIES: Final = ("A", "B", "C", "D")
_REGIONS: Final = ("US", "EU", "APAC")
_MAX_PAGE_SIZE: Final = 1000


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")


def value_for(identifier: str, day: date | None = None) -> float:
    """The mock's value for an identifier (and a day, for historical records): deterministic."""
    seed = _digest(identifier) if day is None else _digest(identifier, day.isoformat())
    return round(10.0 + (seed % 99_000) / 100.0, 2)


def metadata_for(identifier: str) -> dict[str, Any]:
    """The mock's metadata for an identifier: deterministic."""
    seed = _digest("meta", identifier)
    return {"category": _CATEGORIES[seed % len(_CATEGORIES)], "region": _REGIONS[seed % len(_REGIONS)]}


def _error(status: int, code: str, message: str, request_id: str) -> Fault:
    return Fault.status(status, json={"error_code": code, "error_message": message, "request_id": request_id})


def _periods(start: date, end: date, interval: str) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        if interval == "daily":
            day += timedelta(days=1)
        elif interval == "weekly":
            day += timedelta(days=7)
        else:
            year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
            day = date(year, month, min(day.day, monthrange(year, month)[1]))


class DataAPIMock(FaultServer):
    """A ``FaultServer`` serving the REQ-001 data API with live, deterministic answers."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tier: RateLimitTier | str = RateLimitTier.PREMIUM,
        enforce_rate_limit: bool = False,
        record: bool = True,
        catalog: Sequence[str] = DEFAULT_CATALOG,
        chaos: Chaos | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"the mock provider serves on loopback only, got host {host!r}")
        bad = [i for i in catalog if not isinstance(i, str) or not _IDENTIFIER_RE.match(i)]
        if bad:
            raise ValueError(f"catalog identifiers must match {IDENTIFIER_PATTERN}, got {bad!r}")
        self.tier = RateLimitTier(str(getattr(tier, "value", tier)).lower())
        self.enforce_rate_limit = enforce_rate_limit
        self.catalog = tuple(catalog)
        self.chaos = chaos
        self._live = {kind: Fault.respond(self._responder(kind)) for kind in _LIVE_KINDS}
        self._served = 0
        super().__init__(host, port, record=record)
        self._install_api()

    @property
    def base_url(self) -> str:
        """The API's base URL on this server (``http://127.0.0.1:PORT/v1``)."""
        return self.url + BASE_PATH

    async def __aenter__(self) -> DataAPIMock:
        if self._server is None:  # serve_mock() hands back a started server
            await self.start()
        return self

    def live(self, endpoint: str) -> Fault:
        """The marker fault that answers ``endpoint`` (``get_data`` …) live, for route scripts."""
        return self._live[endpoint]

    def script(self, identifier: str, *faults: Fault, endpoint: str = "get_data") -> None:
        """Answer ``identifier`` on ``endpoint`` with ``faults`` first, then live (repeating)."""
        path = {"get_data": "/data/", "get_historical": "/historical/"}[endpoint] + identifier
        self.route("GET", BASE_PATH + path, *faults, self._live[endpoint], **self._options())

    def reset(self) -> None:
        """Back to the API's routes (and the defaults), with an empty log."""
        super().reset()
        self._install_api()

    # --- internals -----------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"chaos": self.chaos} if self.chaos is not None else {}
        if self.enforce_rate_limit:
            rate, burst = MOCK_TIER_LIMITS[self.tier.value]
            options.update(rate_limit=rate, burst=burst)
        return options

    def _install_api(self) -> None:
        if not hasattr(self, "_live"):
            return  # FaultServer.__init__ resets before the API is known
        options = self._options()
        self.route("GET", BASE_PATH + "/data/{identifier}", self._live["get_data"], **options)
        self.route("POST", BASE_PATH + "/data/batch", self._live["get_data_batch"], **options)
        self.route("GET", BASE_PATH + "/historical/{identifier}", self._live["get_historical"], **options)
        self.route("GET", BASE_PATH + "/identifiers", self._live["list_identifiers"], **options)

    def _responder(self, kind: str) -> Callable[[Incoming], Fault]:
        def respond(incoming: Incoming) -> Fault:
            return self._answer(kind, incoming.path, incoming.query, incoming.body)

        return respond

    def _request_id(self, *parts: str) -> str:
        self._served += 1
        return f"req_{_digest(str(self._served), *parts):016x}"

    def _data(self, identifier: str, request_id: str) -> dict[str, Any]:
        return {
            "identifier": identifier,
            "value": value_for(identifier),
            "metadata": metadata_for(identifier),
            "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "request_id": request_id,
        }

    def _answer(self, kind: str, path: str, query: str, body: bytes) -> Fault:
        request_id = self._request_id(kind, path, query)
        if kind == "get_data_batch":
            return self._batch(body, request_id)
        if kind == "list_identifiers":
            return self._identifiers(parse_qs(query), request_id)
        identifier = path.rsplit("/", 1)[-1]
        if not _IDENTIFIER_RE.match(identifier):
            return _error(400, "VALID_001", f"invalid identifier {identifier!r}", request_id)
        if identifier.startswith(MISSING_PREFIX):
            return _error(404, "NOTFOUND_001", f"no data for {identifier}", request_id)
        if kind == "get_data":
            return Fault.ok(json=self._data(identifier, request_id))
        return self._historical(identifier, parse_qs(query), request_id)

    def _batch(self, body: bytes, request_id: str) -> Fault:
        try:
            doc = json.loads(body)
            identifiers = doc["identifiers"]
            if not isinstance(identifiers, list) or not identifiers:
                raise ValueError("identifiers must be a non-empty list")
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, "VALID_001", f"bad batch body: {exc}", request_id)
        bad = [i for i in identifiers if not isinstance(i, str) or not _IDENTIFIER_RE.match(i)]
        if bad:
            return _error(400, "VALID_001", f"invalid identifiers {bad!r}", request_id)
        found = [i for i in identifiers if not i.startswith(MISSING_PREFIX)]
        return Fault.ok(json=[self._data(i, f"{request_id}{n}") for n, i in enumerate(found)])

    def _identifiers(self, query: dict[str, list[str]], request_id: str) -> Fault:
        try:
            offset = int((query.get("offset") or ["0"])[0])
            limit = int((query.get("limit") or ["10"])[0])
            if offset < 0 or not 1 <= limit <= _MAX_PAGE_SIZE:
                raise ValueError("offset >= 0 and 1 <= limit <= 1000")
        except ValueError as exc:
            return _error(400, "VALID_001", f"bad identifiers query: {exc}", request_id)
        categories = query.get("category")
        category = categories[0] if categories else None
        listed = [
            {"identifier": i, **metadata_for(i)}
            for i in self.catalog
            if category is None or metadata_for(i)["category"] == category
        ]
        return Fault.ok(
            json={
                "identifiers": listed[offset : offset + limit],
                "total": len(listed),
                "offset": offset,
                "request_id": request_id,
            }
        )

    def _historical(self, identifier: str, query: dict[str, list[str]], request_id: str) -> Fault:
        def one(name: str, default: str | None = None) -> str | None:
            values = query.get(name)
            return values[0] if values else default

        try:
            start = date.fromisoformat(one("start") or "")
            end = date.fromisoformat(one("end") or "")
            interval = one("interval", "daily") or "daily"
            if interval not in ("daily", "weekly", "monthly"):
                raise ValueError(f"interval must be daily, weekly or monthly, got {interval!r}")
            page = int(one("page", "1") or "1")
            size = int(one("page_size", "100") or "100")
            if page < 1 or not 1 <= size <= _MAX_PAGE_SIZE:
                raise ValueError("page >= 1 and 1 <= page_size <= 1000")
        except ValueError as exc:
            return _error(400, "VALID_001", f"bad historical query: {exc}", request_id)
        if start > end:
            return _error(400, "VALID_001", "start must not be after end", request_id)
        days = list(_periods(start, end, interval))
        total_pages = max(1, math.ceil(len(days) / size))
        chunk = days[(page - 1) * size : page * size]
        records = [
            {"date": d.isoformat(), "value": value_for(identifier, d), "metadata": None} for d in chunk
        ]
        return Fault.ok(
            json={
                "identifier": identifier,
                "interval": interval,
                "records": records,
                "request_id": request_id,
                "page": page,
                "total_pages": total_pages,
            }
        )


async def serve_mock(
    tier: RateLimitTier | str = RateLimitTier.PREMIUM,
    *,
    enforce_rate_limit: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    catalog: Sequence[str] = DEFAULT_CATALOG,
    chaos: Chaos | None = None,
) -> DataAPIMock:
    """A started mock provider of the REQ-001 data API on loopback (``port=0``: a free port).

    Point a client at ``server.base_url``; stop it with ``await server.stop()`` (or use the
    returned server in ``async with``, which stops it on exit).
    """
    server = DataAPIMock(
        host, port, tier=tier, enforce_rate_limit=enforce_rate_limit, catalog=catalog, chaos=chaos
    )
    await server.start()
    return server
