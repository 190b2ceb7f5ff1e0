"""Several worker processes, one Redis: a shared rate limit, a shared circuit, one token refresh.

Real subprocesses (``redis_workers.py``), each with its own ``tether.Client``, against a mock
server in yet another process (``tether.mock.spawn_server``); the server's request log is the
judge. The rate test runs 4 s by default and the full 15 s with ``TETHER_LONG=1``.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from worker_group import Workers
from worker_group import workers as worker_group

from tether.mock import Fault, spawn_server
from tether.state._protocol import BreakerConfig
from tether.state.redis import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.realtime]

WORKERS = Path(__file__).with_name("redis_workers.py")
LONG = os.environ.get("TETHER_LONG") == "1"


@contextmanager
def workers(mode: str, configs: Sequence[dict[str, Any]]) -> Iterator[Workers]:
    """Start one ``redis_workers.py MODE`` worker per config."""
    with worker_group([str(WORKERS), mode], configs) as group:
        yield group


def max_in_any_window(times: Sequence[float], width: float) -> int:
    """The most arrivals in any half-open span ``[t, t + width)`` (spans start at arrivals)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + width) - i for i, t in enumerate(ordered)), default=0)


@pytest.mark.parametrize("duration", [15.0 if LONG else 4.0])
def test_eight_processes_share_one_limit_of_20_per_second(redis_url: str, duration: float) -> None:
    """Eight processes on Rate('20/second', burst=5, shared='demo') send <= 25 in any 1 s, >= 95 % of it."""
    burst = 5
    namespace = f"mp-{uuid.uuid4().hex[:8]}:"
    routes = [{"method": "GET", "path": p, "responses": [Fault.ok(json={})]} for p in ("/work", "/warm")]
    with spawn_server(routes) as server:
        config = {"redis_url": redis_url, "namespace": namespace, "server_url": server.url, "burst": burst}
        with workers("rate", [{**config, "concurrency": 2} for _ in range(8)]) as group:
            # The warm-up calls spent slots; 1.5 s later the limiter has its whole burst back.
            start = group.go(duration, lead=1.5)
            results = group.results(timeout=duration + 60)
        times = [r.time for r in server.log() if r.path == "/work"]
    in_run = [t for t in times if start <= t < start + duration]
    allowed = 20 * duration + burst
    busiest = max_in_any_window(times, 1.0)
    share = len(in_run) / allowed
    print(f"\nrate: {len(in_run)} of {allowed:g} in {duration:g} s ({share:.1%}); busiest 1 s: {busiest}")
    assert sum(r["errors"] for r in results) == 0
    assert all(r["sent"] > 0 for r in results), "every worker got slots"
    assert busiest <= 20 + burst
    assert len(in_run) >= 0.95 * allowed


async def test_a_circuit_opened_in_one_process_fails_fast_in_the_others(redis_url: str) -> None:
    """One process's failures open the circuit: others fail fast within 100 ms; one probe in total."""
    namespace = f"mp-{uuid.uuid4().hex[:8]}:"
    open_for = 1.5
    routes = [
        {"method": "GET", "path": "/fail", "responses": [Fault.status(503)]},
        {"method": "GET", "path": "/watch", "responses": [Fault.status(404)]},  # ignored by the breaker
    ]
    store = RedisStore(redis_url, namespace=namespace, timeout=2.0)
    config = BreakerConfig(failures=3, window=10, open_for=open_for, half_open_calls=1, close_after=1)
    with spawn_server(routes) as server:
        base = {
            "redis_url": redis_url,
            "namespace": namespace,
            "server_url": server.url,
            "open_for": open_for,
        }
        configs = [{**base, "role": "opener", "name": "opener", "pace": 0.02, "opener_delay": 0.5}]
        configs += [{**base, "role": "watcher", "name": f"w{i}", "pace": 0.02} for i in range(3)]
        with workers("breaker", configs) as group:
            group.go(duration=4.0)
            # Once the circuit is open, make every route healthy, so the one probe succeeds.
            deadline = time.monotonic() + 20
            while (await store.breaker_status("breaker:demo", config, now=time.time())).state != "open":
                assert time.monotonic() < deadline, "the circuit never opened"
                await asyncio.sleep(0.02)
            server.route("GET", "/fail", Fault.ok(json={}))
            server.route("GET", "/watch", Fault.ok(json={}))
            results = await asyncio.to_thread(group.results, 60)
        log = server.log()
    await store.aclose()

    transitions = sorted((t for r in results for t in r["transitions"]), key=lambda t: t["at"])
    assert [(t["to"], t["reason"]) for t in transitions] == [
        ("open", "failures"),
        ("half_open", "open_for_elapsed"),
        ("closed", "probes_succeeded"),
    ]
    opened_at, half_open_at, closed_at = (t["at"] for t in transitions)
    lags = []
    for watcher in results[1:]:
        after = [p for p in watcher["permits"] if p["now"] >= opened_at]
        first_refused = next(p["now"] for p in after if not p["granted"])
        lags.append(first_refused - opened_at)
        assert not [p for p in after if p["granted"] and p["now"] < half_open_at], "admitted while open"
    print(f"\nbreaker: fail-fast lag per watcher (ms): {[round(x * 1000, 1) for x in lags]}")
    assert max(lags) <= 0.1
    probes = [p for r in results for p in r["permits"] if p["probe"]]
    assert len(probes) == 1
    in_half_open = [r for r in log if half_open_at <= r.time <= closed_at]
    assert len(in_half_open) == 1, "the server saw exactly one request while the circuit was half-open"


def test_fifty_tasks_in_five_processes_cause_one_token_request(redis_url: str) -> None:
    """Fifty calls needing a new OAuth2 token at once, across five processes, make one token request."""
    namespace = f"mp-{uuid.uuid4().hex[:8]}:"
    token = {"access_token": "tok-shared", "token_type": "Bearer", "expires_in": 3600}
    routes = [
        {"method": "POST", "path": "/token", "responses": [Fault.delay(0.3, Fault.ok(json=token))]},
        {"method": "GET", "path": "/api", "responses": [Fault.ok(json={"ok": True})]},
    ]
    with spawn_server(routes) as server:
        config = {"redis_url": redis_url, "namespace": namespace, "server_url": server.url, "tasks": 10}
        with workers("oauth", [config] * 5) as group:
            group.go(duration=0.0)
            results = group.results(timeout=60)
        log = server.log()
    assert [s for r in results for s in r["statuses"]] == [200] * 50
    assert len([r for r in log if r.path == "/token"]) == 1
    api = [r for r in log if r.path == "/api"]
    assert len(api) == 50
    assert {r.header("authorization") for r in api} == {"Bearer tok-shared"}
