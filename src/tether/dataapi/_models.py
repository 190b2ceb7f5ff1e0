"""The REQ-001 data transfer objects (seed 000, sections 3.2, 4.1, 4.2 and 5.2) as pydantic models.

Field names and types are the seed's. Every model is frozen. The validators are the seed's:
identifiers match ``^[A-Z0-9-]{1,20}$``, request ids ``^req_[a-z0-9]{6,}$``, a ``DataResponse``
timestamp is never in the future, and a historical range runs forward and spans at most two
years (730 days).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "IDENTIFIER_PATTERN",
    "MAX_RANGE_DAYS",
    "REQUEST_ID_PATTERN",
    "APICredentials",
    "BatchRequest",
    "ConnectionResult",
    "DataRequest",
    "DataResponse",
    "DataResponseModel",
    "DisconnectionResult",
    "ErrorDetail",
    "ErrorResponse",
    "HistoricalDataRequestModel",
    "HistoricalDataResponse",
    "HistoricalRecord",
    "HistoricalRequest",
    "Interval",
    "RateLimitStatus",
    "RateLimitTier",
    "RetryConfig",
]

#: REQ-001 4.1: alphanumeric (upper case) with hyphens, 1-20 characters.
IDENTIFIER_PATTERN: Final = r"^[A-Z0-9-]{1,20}$"
#: REQ-001 4.1: the provider's request ids.
REQUEST_ID_PATTERN: Final = r"^req_[a-z0-9]{6,}$"
#: REQ-001 4.2: a historical range spans at most this many days (~2 years).
MAX_RANGE_DAYS: Final = 730

_IDENTIFIER_RE: Final = re.compile(IDENTIFIER_PATTERN)

Interval = Literal["daily", "weekly", "monthly"]


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER_RE.match(value):
        raise ValueError(f"Identifier must be 1-20 alphanumeric characters with hyphens, got: {value!r}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateLimitTier(StrEnum):
    """API rate limit tiers."""

    FREE = "free"  # 5 req/min
    PREMIUM = "premium"  # 75 req/min + 10 burst
    ENTERPRISE = "enterprise"  # 1000 req/min


class APICredentials(_Model):
    """Credentials for API authentication (the key never appears in a repr)."""

    api_key: str = Field(..., repr=False)
    secret_key: str | None = Field(None, repr=False)
    tier: RateLimitTier = RateLimitTier.FREE


class ConnectionResult(_Model):
    """Result of an API connection attempt."""

    success: bool
    session_id: str | None
    rate_limit_tier: RateLimitTier
    timestamp: datetime
    error_message: str | None = None


class DataRequest(_Model):
    """One identifier to fetch (``get_data``), validated before anything is sent."""

    identifier: str = Field(..., min_length=1, max_length=20, pattern=IDENTIFIER_PATTERN)

    @field_validator("identifier")
    @classmethod
    def validate_identifier_format(cls, v: str) -> str:
        """Ensure identifier matches expected format."""
        return _check_identifier(v)


class BatchRequest(_Model):
    """Several identifiers (``get_data_batch``; the ``/data/batch`` body), at least one."""

    identifiers: list[str] = Field(..., min_length=1)

    @field_validator("identifiers")
    @classmethod
    def validate_identifiers(cls, v: list[str]) -> list[str]:
        """Ensure every identifier matches expected format."""
        for item in v:
            _check_identifier(item)
        return v


class DataResponse(_Model):
    """Real-time data response (REQ-001 ``DataResponseModel``, with its validators)."""

    identifier: str = Field(
        ...,
        min_length=1,
        max_length=20,
        pattern=IDENTIFIER_PATTERN,
        description="Unique identifier",
        examples=["ITEM-001", "USER-123"],
    )
    value: float = Field(..., description="Numeric value")
    metadata: dict[str, Any] | None = Field(None)
    timestamp: datetime
    request_id: str = Field(..., pattern=REQUEST_ID_PATTERN)

    @field_validator("identifier")
    @classmethod
    def validate_identifier_format(cls, v: str) -> str:
        """Ensure identifier matches expected format."""
        return _check_identifier(v)

    @model_validator(mode="after")
    def validate_timestamp_not_future(self) -> DataResponse:
        """Ensure timestamp is not in future (a naive timestamp is read as UTC)."""
        stamp = self.timestamp if self.timestamp.tzinfo is not None else self.timestamp.replace(tzinfo=UTC)
        if stamp > datetime.now(UTC):
            raise ValueError(f"Timestamp cannot be in future: {self.timestamp}")
        return self


#: The seed's name for the validated ``DataResponse``.
DataResponseModel = DataResponse


class HistoricalRecord(_Model):
    """Historical data for a single time period."""

    date: date
    value: float
    metadata: dict[str, Any] | None = None


class HistoricalDataResponse(_Model):
    """Historical data response: every record of the range, across all pages."""

    identifier: str
    interval: str
    records: list[HistoricalRecord]
    request_id: str


class HistoricalDataRequestModel(_Model):
    """Historical data request validation (REQ-001 4.2)."""

    identifier: str = Field(..., pattern=IDENTIFIER_PATTERN)
    start_date: date
    end_date: date
    interval: Interval = "daily"

    @model_validator(mode="after")
    def validate_date_range(self) -> HistoricalDataRequestModel:
        """Ensure start_date <= end_date."""
        if self.start_date > self.end_date:
            raise ValueError(f"start_date must be <= end_date: {self.start_date} > {self.end_date}")
        return self

    @model_validator(mode="after")
    def validate_max_range(self) -> HistoricalDataRequestModel:
        """Ensure date range does not exceed 2 years."""
        delta = (self.end_date - self.start_date).days
        if delta > MAX_RANGE_DAYS:
            raise ValueError(f"Date range exceeds maximum 2 years: {delta} days")
        return self


#: A short name for the historical request model.
HistoricalRequest = HistoricalDataRequestModel


class DisconnectionResult(_Model):
    """Result of disconnection."""

    success: bool
    resources_released: bool
    timestamp: datetime


class RateLimitStatus(_Model):
    """Current rate limit status."""

    tier: RateLimitTier
    requests_remaining: int
    reset_time: datetime
    requests_made: int
    window_size_seconds: int = 60


class RetryConfig(_Model):
    """Retry behaviour configuration."""

    max_attempts: int = Field(5, ge=1)
    initial_delay_seconds: float = Field(1.0, ge=0)
    max_delay_seconds: float = Field(60.0, ge=0)
    backoff_multiplier: float = Field(2.0, ge=1)
    add_jitter: bool = True


class ErrorDetail(_Model):
    """Detailed error information."""

    field: str | None = None
    message: str
    code: str


class ErrorResponse(_Model):
    """Standardised error response structure (``TetherError.to_error_response()`` gives it)."""

    error_code: str
    error_message: str
    error_type: Literal[
        "ConnectionError",
        "AuthenticationError",
        "RateLimitExceeded",
        "ValidationError",
        "APIError",
        "TimeoutError",
        "CircuitOpenError",
        "NotFoundError",
    ]
    timestamp: datetime
    request_id: str
    retry_after: int | None = None
    details: list[ErrorDetail] | None = None
