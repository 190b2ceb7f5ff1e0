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
from tether.integration import Integration, open
from tether.pipeline.breaker import Breaker
from tether.pipeline.budget import Budget
from tether.pipeline.bulkhead import Bulkhead
from tether.pipeline.cache import Cache
from tether.pipeline.fallback import Fallback
from tether.pipeline.rate import Rate
from tether.pipeline.retry import Retry, RetryBudget
from tether.pipeline.rights import Rights
from tether.result import Outcome, Result

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "APIError",
    "ApiKey",
    "AuthenticationError",
    "Basic",
    "Bearer",
    "Breaker",
    "Budget",
    "BudgetExceeded",
    "Bulkhead",
    "BulkheadFull",
    "Cache",
    "CircuitOpenError",
    "Client",
    "ConnectionError",
    "Fallback",
    "Integration",
    "NotFoundError",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "Outcome",
    "Rate",
    "RateLimitExceeded",
    "Rejected",
    "Result",
    "Retry",
    "RetryBudget",
    "Rights",
    "RightsViolationError",
    "SpecError",
    "StateStoreError",
    "TetherError",
    "TimeoutError",
    "Timeouts",
    "ValidationError",
    "__version__",
    "errors",
    "open",
    "secret",
]
