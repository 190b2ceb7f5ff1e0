"""tether: call external HTTP APIs reliably.

The public surface is this namespace (kept small and curated) and ``tether.errors``,
``tether.events``, ``tether.secret``, ``tether.testing``, ``tether.mock``.
"""

from __future__ import annotations

from tether import errors
from tether._config import DEFAULT, Timeouts
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

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "APIError",
    "AuthenticationError",
    "BudgetExceeded",
    "BulkheadFull",
    "CircuitOpenError",
    "Client",
    "ConnectionError",
    "NotFoundError",
    "RateLimitExceeded",
    "Rejected",
    "RightsViolationError",
    "SpecError",
    "StateStoreError",
    "TetherError",
    "TimeoutError",
    "Timeouts",
    "ValidationError",
    "__version__",
    "errors",
]
