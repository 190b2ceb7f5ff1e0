"""The rule of DESIGN 10 for Redis tests: no Redis skips with a reason locally, fails under CI=true."""

from __future__ import annotations

import pytest
from redis_servers import BINARY_ENV, redis_binary, unavailable


def test_no_redis_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CI=true, a missing Redis skips the test and says why."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no redis-server"):
        unavailable("no redis-server binary")


def test_no_redis_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI=true, a missing Redis fails the test instead of hiding it as a skip."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        unavailable("no redis-server binary")


def test_a_named_binary_that_does_not_exist_means_no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_REDIS_SERVER names the binary to use; when that file is missing there is none."""
    monkeypatch.setenv(BINARY_ENV, "/nonexistent/redis-server")
    assert redis_binary() is None
