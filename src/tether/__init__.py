"""tether: call external HTTP APIs reliably.

The public surface is this namespace (kept small and curated) and the modules ``tether.errors``,
``tether.events``, ``tether.secret``, ``tether.auth``, ``tether.telemetry``, ``tether.testing``
and ``tether.mock``. Everything else is internal.
"""

from __future__ import annotations

from tether import errors, secret
from tether._config import DEFAULT, Timeouts
from tether.auth import ApiKey, Basic, Bearer, OAuth2ClientCredentials, OAuth2RefreshToken
from tether.client import Client
from tether.errors import (
    APIError,
    AuthenticationError,
    BudgetExceeded,
    BulkheadFull,
    CircuitOpenError,
    ConnectionError,
    NotFoundError,
    RateLimitExceeded,
    Rejected,
    RightsViolationError,
    SpecError,
    StateStoreError,
    TetherError,
    TimeoutError,
    ValidationError,
)
from tether.pipeline.breaker import Breaker
from tether.pipeline.bulkhead import Bulkhead
from tether.pipeline.rate import Rate
from tether.pipeline.retry import Retry, RetryBudget

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "APIError",
    "ApiKey",
    "AuthenticationError",
    "Basic",
    "Bearer",
    "Breaker",
    "BudgetExceeded",
    "Bulkhead",
    "BulkheadFull",
    "CircuitOpenError",
    "Client",
    "ConnectionError",
    "NotFoundError",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "Rate",
    "RateLimitExceeded",
    "Rejected",
    "Retry",
    "RetryBudget",
    "RightsViolationError",
    "SpecError",
    "StateStoreError",
    "TetherError",
    "TimeoutError",
    "Timeouts",
    "ValidationError",
    "__version__",
    "errors",
    "secret",
]
