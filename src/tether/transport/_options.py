"""Engine options: the connection pool, body limits, TLS, redirects and the destination guard."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from typing import ClassVar, Literal

from tether._units import parse_duration, parse_size

__all__ = ["EngineOptions"]

HttpVersion = Literal["1.1", "2"]


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How tether talks HTTP. Every field has a safe default."""

    DEFAULT_MAX_CONNECTIONS: ClassVar[int] = 100
    DEFAULT_KEEPALIVE: ClassVar[float] = 60.0
    DEFAULT_MAX_RESPONSE_SIZE: ClassVar[int] = 10 * 1000 * 1000
    DEFAULT_MAX_REDIRECTS: ClassVar[int] = 10
    DEFAULT_MAX_DECOMPRESSION_RATIO: ClassVar[int] = 100

    http_version: HttpVersion = "1.1"
    #: Connection pool size (all hosts) and per-host bound (0 = no per-host bound).
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_host: int = 0
    #: Idle keep-alive time of a pooled connection, seconds.
    keepalive: float = DEFAULT_KEEPALIVE
    #: Largest response body tether reads, in bytes after decoding (None = no limit); enforced while
    #: reading, so an oversized body is never held in memory whole. Streamed responses are exempt.
    max_response_size: int | None = DEFAULT_MAX_RESPONSE_SIZE
    #: A compressed body may not expand more than this many times (decompression-bomb guard).
    max_decompression_ratio: int = DEFAULT_MAX_DECOMPRESSION_RATIO
    #: Verify TLS certificates (True), don't (False), or use this CA bundle path / SSLContext.
    verify: bool | str | ssl.SSLContext = True
    #: Lowest TLS version accepted, e.g. ssl.TLSVersion.TLSv1_2 (None = Python's default).
    min_tls_version: ssl.TLSVersion | None = None
    follow_redirects: bool = False
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    #: Refuse private, loopback, link-local and other non-public destinations (after DNS resolution).
    block_private: bool = False
    #: Networks the guard lets through although they are not public (e.g. ``("10.1.2.0/24",)``).
    guard_allow: tuple[str, ...] = ()
    #: Honour HTTP(S)_PROXY / NO_PROXY and netrc from the environment.
    trust_env: bool = False

    def __post_init__(self) -> None:
        if self.http_version not in ("1.1", "2"):
            raise ValueError(f"http_version must be '1.1' or '2', got {self.http_version!r}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.max_connections_per_host < 0:
            raise ValueError(
                f"max_connections_per_host must be 0 or more, got {self.max_connections_per_host}"
            )
        if not 0 <= self.max_redirects <= 100:
            raise ValueError(f"max_redirects must be between 0 and 100, got {self.max_redirects}")
        if self.max_decompression_ratio < 1:
            raise ValueError(
                f"max_decompression_ratio must be at least 1, got {self.max_decompression_ratio}"
            )
        allow = (self.guard_allow,) if isinstance(self.guard_allow, str) else tuple(self.guard_allow)
        for network in allow:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"guard_allow entries must be IP networks like '10.0.0.0/8', got {network!r}"
                ) from None
        object.__setattr__(self, "guard_allow", allow)
        object.__setattr__(self, "keepalive", parse_duration(self.keepalive, name="keepalive"))
        if self.max_response_size is not None:
            object.__setattr__(
                self, "max_response_size", parse_size(self.max_response_size, name="max_response_size")
            )
