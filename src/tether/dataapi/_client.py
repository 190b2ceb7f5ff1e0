"""``DataAPIClient``: the REQ-001 ``ExternalAPIClient`` protocol on ``tether.open(<bundled spec>)``."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from importlib import resources
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar, runtime_checkable

import pydantic

from tether._build import state_from
from tether.auth import ApiKey
from tether.dataapi._config import ClientConfig, load_config
from tether.dataapi._models import (
    APICredentials,
    BatchRequest,
    ConnectionResult,
    DataRequest,
    DataResponse,
    DisconnectionResult,
    ErrorDetail,
    HistoricalDataRequestModel,
    HistoricalDataResponse,
    HistoricalRecord,
    RateLimitStatus,
    RateLimitTier,
    RetryConfig,
)
from tether.errors import (
    AuthenticationError,
    ConnectionError,
    RequestValidationError,
    TetherError,
    TimeoutError,
    ValidationError,
)
from tether.integration import Integration
from tether.integration import open as open_integration
from tether.pipeline.rate import RatePolicy
from tether.pipeline.retry import Retry
from tether.secret import value as secret_value
from tether.spec._loader import load
from tether.spec._model import Spec
from tether.state import StateStore, open_store
from tether.state.memory import MemoryStore

__all__ = ["SERVICE", "DataAPIClient", "ExternalAPIClient", "bundled_spec_path"]

SERVICE: Final = "dataapi"
#: REQ-001 3.3: the API key travels in this header.
API_KEY_HEADER: Final = "X-API-Key"
_M = TypeVar("_M", bound=pydantic.BaseModel)


@runtime_checkable
class ExternalAPIClient(Protocol):
    """The REQ-001 section 3.1 protocol, with its exact signatures."""

    async def connect(self, credentials: APICredentials, timeout: float = 5.0) -> ConnectionResult: ...

    async def get_data(self, identifier: str, retry_config: RetryConfig | None = None) -> DataResponse: ...

    def get_data_batch(
        self, identifiers: list[str], max_concurrent: int = 10
    ) -> AsyncIterator[DataResponse]: ...

    async def get_historical(
        self, identifier: str, start_date: date, end_date: date, interval: str = "daily"
    ) -> HistoricalDataResponse: ...

    async def disconnect(self) -> DisconnectionResult: ...

    def get_rate_limit_status(self) -> RateLimitStatus: ...


def bundled_spec_path() -> resources.abc.Traversable:
    """The integration spec shipped inside the package (``tether/dataapi/spec.yaml``)."""
    return resources.files("tether.dataapi").joinpath("spec.yaml")


def _details(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or None
        out.append(ErrorDetail(field=where, message=err["msg"], code="VALID_001").model_dump())
    return out


def _message(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}" for err in exc.errors()
    )


def _retry(config: RetryConfig) -> Retry:
    return Retry(
        attempts=config.max_attempts,
        initial=config.initial_delay_seconds,
        max_delay=config.max_delay_seconds,
        multiplier=config.backoff_multiplier,
        jitter=config.add_jitter,
    )


class DataAPIClient:
    """The REQ-001 external data API client (``ExternalAPIClient``), built on the bundled spec.

    ::

        client = DataAPIClient(env="production")       # or base_url=server.base_url (the mock)
        await client.connect(APICredentials(api_key="sk_...", tier=RateLimitTier.PREMIUM))
        item = await client.get_data("ITEM-001")
        async for item in client.get_data_batch(["ITEM-001", "ITEM-002"]): ...
        history = await client.get_historical("ITEM-001", date(2024, 1, 1), date(2024, 12, 31))
        client.get_rate_limit_status()
        await client.disconnect()

    ``connect`` opens ``tether.open(<bundled spec>)`` with the credentials' API key and tier: the
    tier selects the rate preset (free 5/min, premium 75/min + 10 burst, enterprise 1000/min).
    ``base_url`` / ``env`` choose where it talks (default: the spec's default, i.e.
    ``EXTERNAL_API_URL`` or ``https://api.example.com/v1``); ``environ`` replaces ``os.environ``
    for the spec's ``${VAR}`` values; ``overrides`` are ``tether.Client`` keywords (``retry``,
    ``clock``, ``listeners`` …) that win over the spec. Identifiers, dates and intervals are
    validated before anything is sent (``RequestValidationError``, a ``ValidationError`` with
    ``VALID_001``); every other failure is a ``tether.errors`` error with the seed's code.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        env: str | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> None:
        self._base_url = base_url
        self._env = env
        self._environ = environ
        self._overrides = dict(overrides)
        self._integration: Integration | None = None
        self._siblings: dict[RetryConfig, Integration] = {}
        self._store: StateStore | None = None
        self._auth: ApiKey | None = None
        self._spec: Spec | None = None
        self._tier: RateLimitTier | None = None
        self._session_id: str | None = None
        self._config: ClientConfig | None = None
        #: The failures of the last ``get_data_batch``: identifier → error.
        self.batch_failures: dict[str, BaseException] = {}

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> DataAPIClient:
        """A client configured by a data API configuration file (``external_api:``; see
        ``tether.dataapi._config``), with ``EXTERNAL_API_*`` / ``SECRET_*`` variables of
        ``environ`` (default ``os.environ``) laid over it. ``connect()`` then needs no
        credentials: the key comes from the configured source and the tier from the file.
        ``SpecError`` (with ``file:line:column``) when the file or a variable is invalid."""
        config = load_config(path, environ=environ)
        client = cls(environ=environ, **overrides)
        client._config = config
        return client

    @property
    def config(self) -> ClientConfig | None:
        """The configuration file this client was made from (``from_config``), else ``None``."""
        return self._config

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    @property
    def connected(self) -> bool:
        return self._integration is not None

    @property
    def integration(self) -> Integration:
        """The underlying ``tether.Integration`` (``ConnectionError`` before ``connect``)."""
        if self._integration is None:
            raise ConnectionError("not connected: call connect(credentials) first", service=SERVICE)
        return self._integration

    def _open(self, **extra: Any) -> Integration:
        assert self._spec is not None and self._store is not None
        options: dict[str, Any] = {"state": self._store, **self._overrides, **extra}
        if self._auth is not None:  # else the spec's own source (a configured secret manager)
            options.setdefault("auth", self._auth)
        if self._base_url is not None:
            options.setdefault("base_url", self._base_url)
        return open_integration(self._spec, **options)

    async def connect(
        self, credentials: APICredentials | None = None, timeout: float = 5.0
    ) -> ConnectionResult:
        """Open the integration with these credentials (nothing is sent yet): the API key signs
        every request (``X-API-Key``), the tier selects the rate limit, ``timeout`` bounds the
        connect phase of each attempt and the opening itself. A client made by ``from_config``
        may connect without credentials: the key comes from the configured source (read now, so
        a missing secret fails here) and the tier from the file."""
        if self._integration is not None:
            await self.disconnect()
        if credentials is None and self._config is None:
            raise AuthenticationError(
                "connect() needs APICredentials (or a client made by DataAPIClient.from_config)",
                service=SERVICE,
            )
        if credentials is not None and not credentials.api_key.strip():
            raise AuthenticationError("the API key is empty", service=SERVICE)
        if timeout <= 0:
            raise RequestValidationError(
                f"timeout must be > 0 seconds, got {timeout!r}", parameter="timeout", service=SERVICE
            )
        tier = credentials.tier if credentials is not None else RateLimitTier(self._config_tier())
        environ = dict(os.environ if self._environ is None else self._environ)
        environ["EXTERNAL_API_RATE_TIER"] = tier.value
        if self._config is not None:
            self._spec = self._config.spec(environ=environ)
        else:
            with resources.as_file(bundled_spec_path()) as path:
                self._spec = load(path, env=self._env, environ=environ)
        state = state_from(self._spec)
        self._store = open_store(state) if state and not state.startswith("memory") else MemoryStore()
        self._auth = (
            ApiKey(secret=secret_value(credentials.api_key), header=API_KEY_HEADER)
            if credentials is not None
            else None
        )
        integration = self._open()
        if "timeout" not in self._overrides and integration.client.timeouts.connect != timeout:
            timeouts = dataclasses.replace(integration.client.timeouts, connect=timeout)
            await integration.aclose()
            integration = self._open(timeout=timeouts)
        try:
            async with asyncio.timeout(timeout):
                await integration.__aenter__()
        except builtins.TimeoutError as exc:
            await integration.aclose()
            raise TimeoutError(f"connect took longer than {timeout:g}s", service=SERVICE) from exc
        self._integration = integration
        self._tier = tier
        self._session_id = f"sess_{uuid.uuid4().hex[:16]}"
        return ConnectionResult(
            success=True,
            session_id=self._session_id,
            rate_limit_tier=tier,
            timestamp=datetime.now(UTC),
        )

    def _config_tier(self) -> str:
        assert self._config is not None
        return self._config.tier

    async def disconnect(self) -> DisconnectionResult:
        """Close every connection pool and the state store; safe to call twice."""
        integrations = [i for i in (self._integration, *self._siblings.values()) if i is not None]
        self._integration = None
        self._siblings = {}
        success = True
        for integration in integrations:
            try:
                await integration.aclose()
            except Exception:
                success = False
        store, self._store = self._store, None
        if store is not None:
            await store.aclose()
        self._session_id = None
        return DisconnectionResult(success=success, resources_released=success, timestamp=datetime.now(UTC))

    # --- validation ----------------------------------------------------------------------------

    def _valid(self, model: type[_M], endpoint: str, **values: Any) -> _M:
        """``model(**values)`` or ``RequestValidationError`` (nothing is sent)."""
        try:
            return model(**values)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]["loc"]
            raise RequestValidationError(
                f"invalid {endpoint} request: {_message(exc)}",
                parameter=str(first[0]) if first else None,
                service=SERVICE,
                endpoint=endpoint,
                details=_details(exc),
            ) from None

    def _parse(self, model: type[_M], data: Any, endpoint: str, request_id: str | None) -> _M:
        """A response body as ``model`` or ``ValidationError`` (VALID_001)."""
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"invalid {endpoint} response: {_message(exc)}",
                service=SERVICE,
                endpoint=endpoint,
                request_id=request_id,
                details=_details(exc),
            ) from None

    async def _for(self, retry_config: RetryConfig | None) -> Integration:
        """The integration for a call: the default one, or a sibling with ``retry_config`` that
        shares its state store (rate limiter, breaker) and opens lazily."""
        integration = self.integration
        if retry_config is None:
            return integration
        sibling = self._siblings.get(retry_config)
        if sibling is None:
            sibling = self._open(retry=_retry(retry_config))
            await sibling.__aenter__()
            self._siblings[retry_config] = sibling
        return sibling

    # --- the protocol --------------------------------------------------------------------------

    async def get_data(self, identifier: str, retry_config: RetryConfig | None = None) -> DataResponse:
        """Real-time data for one identifier (``GET /data/{identifier}``)."""
        request = self._valid(DataRequest, "get_data", identifier=identifier)
        integration = await self._for(retry_config)
        result = await integration.call("get_data", identifier=request.identifier)
        return self._parse(DataResponse, result.data, "get_data", result.meta.request_id)

    async def get_data_batch(
        self, identifiers: list[str], max_concurrent: int = 10
    ) -> AsyncIterator[DataResponse]:
        """Data for several identifiers, at most ``max_concurrent`` requests at a time, yielded as
        each completes (``call_many``). Every identifier is validated first (one bad one:
        ``RequestValidationError``, nothing sent). A failed identifier does not stop the batch:
        the others are still yielded, then the first failure is raised with ``details`` listing
        every failed identifier and its code (also in ``batch_failures``)."""
        request = self._valid(BatchRequest, "get_data_batch", identifiers=identifiers)
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise RequestValidationError(
                f"max_concurrent must be a whole number >= 1, got {max_concurrent!r}",
                parameter="max_concurrent",
                service=SERVICE,
                endpoint="get_data_batch",
            )
        integration = self.integration
        self.batch_failures = {}
        failures: dict[str, BaseException] = {}
        inputs = [{"identifier": identifier} for identifier in request.identifiers]
        started = integration.client.clock.monotonic()
        async with integration.call_many("get_data", inputs, concurrency=max_concurrent) as outcomes:
            async for outcome in outcomes:
                identifier = str(outcome.input["identifier"])
                if outcome.error is not None:
                    failures[identifier] = outcome.error
                    continue
                assert outcome.result is not None
                try:
                    item = self._parse(
                        DataResponse, outcome.result.data, "get_data", outcome.result.meta.request_id
                    )
                except ValidationError as exc:
                    failures[identifier] = exc
                    continue
                yield item
        self.batch_failures = failures
        if integration.sla is not None:  # the whole batch is one operation of the service levels
            code = getattr(next(iter(failures.values())), "error_code", "ERROR") if failures else None
            elapsed = integration.client.clock.monotonic() - started
            integration.sla.record("get_data_batch", elapsed, error_code=code)
        if failures:
            first = next(iter(failures.values()))
            details = [
                ErrorDetail(
                    field=name,
                    message=getattr(err, "message", str(err)),
                    code=getattr(err, "error_code", "API_001"),
                ).model_dump()
                for name, err in failures.items()
            ]
            if isinstance(first, TetherError):
                first.details = details
            raise first

    async def get_historical(
        self, identifier: str, start_date: date, end_date: date, interval: str = "daily"
    ) -> HistoricalDataResponse:
        """Historical records for ``start_date``..``end_date`` (inclusive, at most two years),
        every page (the spec paginates ``get_historical``), each page through the pipeline."""
        request = self._valid(
            HistoricalDataRequestModel,
            "get_historical",
            identifier=identifier,
            start_date=start_date,
            end_date=end_date,
            interval=interval,
        )
        integration = self.integration
        sla = integration.sla
        with sla.operation("get_historical") if sla is not None else contextlib.nullcontext():
            records = [  # every page: one get_historical operation of the service levels
                self._parse(HistoricalRecord, record, "get_historical", None)
                async for record in integration.paginate(
                    "get_historical",
                    identifier=request.identifier,
                    start=request.start_date.isoformat(),
                    end=request.end_date.isoformat(),
                    interval=request.interval,
                )
            ]
        return HistoricalDataResponse(
            identifier=request.identifier,
            interval=request.interval,
            records=records,
            request_id=f"req_{uuid.uuid4().hex[:16]}",
        )

    def get_rate_limit_status(self) -> RateLimitStatus:
        """The rate limiter as this client last saw it (no I/O)."""
        policy = self.integration.client.pipeline.policy("rate")
        if not isinstance(policy, RatePolicy):
            raise ConnectionError("this client has no rate limiter", service=SERVICE)
        status = policy.status()
        tier = RateLimitTier(status.tier) if status.tier is not None else self._tier or RateLimitTier.FREE
        return RateLimitStatus(
            tier=tier,
            requests_remaining=status.requests_remaining,
            reset_time=status.reset_time,
            requests_made=status.requests_made,
            window_size_seconds=status.window_size_seconds,
        )

    def status(self) -> dict[str, Any]:
        """The integration's snapshot (``tether.Integration.status``): breaker, limiter, …, and
        under ``"sla"`` this process's service levels per operation beside their targets."""
        return self.integration.status()

    async def service_levels(self) -> dict[str, Any]:
        """Every instance's service levels over the window (read from the state store): per
        operation p50 / p95 / p99, error rate, availability, retry success and cache hit rates,
        and breaker recovery, each ``{"value", "target", "mark": "pass" | "short" | …}``."""
        sla = self.integration.sla
        if sla is None:
            raise ConnectionError("this client's spec has no sla section", service=SERVICE)
        return await sla.fetch_report()

    def __repr__(self) -> str:
        state = f"connected, tier={self._tier.value}" if self._tier and self.connected else "disconnected"
        return f"DataAPIClient({state})"
