"""``tether.dataapi``: the REQ-001 external data API client as a ready facade.

::

    from tether.dataapi import APICredentials, DataAPIClient, RateLimitTier, serve_mock

    server = await serve_mock()                       # the bundled mock provider, offline
    client = DataAPIClient(base_url=server.base_url)  # or env="production"
    await client.connect(APICredentials(api_key="sk_test_123", tier=RateLimitTier.PREMIUM))
    item = await client.get_data("ITEM-001")          # -> DataResponse
    await client.disconnect()
    await server.stop()

``DataAPIClient`` implements the seed's ``ExternalAPIClient`` protocol (``connect``, ``get_data``,
``get_data_batch``, ``get_historical``, ``disconnect``, ``get_rate_limit_status``) on
``tether.open(<bundled spec>)``; the DTOs are pydantic models with the seed's validators.
"""

from __future__ import annotations

from tether.dataapi._client import SERVICE, DataAPIClient, ExternalAPIClient, bundled_spec_path
from tether.dataapi._mock import DataAPIMock, serve_mock
from tether.dataapi._models import (
    IDENTIFIER_PATTERN,
    MAX_RANGE_DAYS,
    REQUEST_ID_PATTERN,
    APICredentials,
    BatchRequest,
    ConnectionResult,
    DataRequest,
    DataResponse,
    DataResponseModel,
    DisconnectionResult,
    ErrorDetail,
    ErrorResponse,
    HistoricalDataRequestModel,
    HistoricalDataResponse,
    HistoricalRecord,
    HistoricalRequest,
    RateLimitStatus,
    RateLimitTier,
    RetryConfig,
)

__all__ = [
    "IDENTIFIER_PATTERN",
    "MAX_RANGE_DAYS",
    "REQUEST_ID_PATTERN",
    "SERVICE",
    "APICredentials",
    "BatchRequest",
    "ConnectionResult",
    "DataAPIClient",
    "DataAPIMock",
    "DataRequest",
    "DataResponse",
    "DataResponseModel",
    "DisconnectionResult",
    "ErrorDetail",
    "ErrorResponse",
    "ExternalAPIClient",
    "HistoricalDataRequestModel",
    "HistoricalDataResponse",
    "HistoricalRecord",
    "HistoricalRequest",
    "RateLimitStatus",
    "RateLimitTier",
    "RetryConfig",
    "bundled_spec_path",
    "serve_mock",
]
