"""Worker processes for the multi-process Redis tests: ``python redis_workers.py MODE CONFIG_JSON``.

Each worker builds its own ``tether.Client`` on a shared Redis, prints ``ready``, waits for a
``go START DURATION`` line on stdin (epoch seconds, so every worker starts at the same instant),
runs, and prints one JSON line with what it saw. Modes:

- ``rate``: ``concurrency`` tasks call ``GET /work`` as fast as a shared ``Rate`` allows;
- ``breaker``: the ``opener`` calls ``GET /fail`` (503s open the shared circuit), ``watcher``s
  call ``GET /watch`` every ``pace`` seconds; a recording store logs every permit and transition
  with the ``now`` the store saw;
- ``oauth``: ``tasks`` tasks each make one ``GET /api`` that needs a new OAuth2 token.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tether
from tether.state._protocol import BreakerConfig, BreakerOutcome, BreakerPermit, BreakerUpdate
from tether.state.redis import RedisStore


async def _wait_for_go() -> tuple[float, float]:
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    _, start, duration = line.split()
    await asyncio.sleep(max(0.0, float(start) - time.time()))
    return float(start), float(duration)


async def rate_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    rate = tether.Rate("20/second", burst=cfg["burst"], shared="demo", strategy="wait")
    state = f"{cfg['redis_url']}?namespace={cfg['namespace']}&on_state_error=fail&timeout=2"
    sent, errors = 0, 0
    async with tether.Client(cfg["server_url"], rate=rate, state=state, retry=None, breaker=None) as client:
        # Open the connections (to the server and to Redis) before the clock starts: a cold first
        # connection delays the first burst by tens of ms and bunches it with the next slots.
        await asyncio.gather(*(client.get("/warm") for _ in range(cfg["concurrency"])))
        start, duration = await _wait_for_go()
        end = start + duration

        async def loop() -> None:
            nonlocal sent, errors
            while time.time() < end:
                try:
                    await client.get("/work")
                    sent += 1
                except tether.errors.TetherError:
                    errors += 1

        await asyncio.gather(*(loop() for _ in range(cfg["concurrency"])))
    return {"sent": sent, "errors": errors}


class RecordingStore(RedisStore):
    """A RedisStore that logs every breaker permit and transition with the store's ``now``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.permits: list[dict[str, Any]] = []
        self.transitions: list[dict[str, Any]] = []

    async def breaker_acquire(self, key: str, config: BreakerConfig, *, now: float) -> BreakerPermit:
        permit = await super().breaker_acquire(key, config, now=now)
        self.permits.append({"now": now, "granted": permit.granted, "probe": permit.probe})
        self._log(permit.transitions)
        return permit

    async def breaker_record(
        self, key: str, permit: BreakerPermit, outcome: BreakerOutcome, config: BreakerConfig, *, now: float
    ) -> BreakerUpdate:
        update = await super().breaker_record(key, permit, outcome, config, now=now)
        self._log(update.transitions)
        return update

    def _log(self, transitions: Any) -> None:
        for t in transitions:
            self.transitions.append({"to": t.to_state, "reason": t.reason, "at": t.at})


async def breaker_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    breaker = tether.Breaker(
        failures=3, window=10, open_for=cfg["open_for"], half_open_calls=1, close_after=1, shared="demo"
    )
    store = RecordingStore(cfg["redis_url"], namespace=cfg["namespace"], timeout=2.0)
    opener = cfg["role"] == "opener"
    path = "/fail" if opener else "/watch"
    calls: list[dict[str, Any]] = []
    async with tether.Client(cfg["server_url"], breaker=breaker, state=store, retry=None) as client:
        start, duration = await _wait_for_go()
        end = start + duration
        if opener:
            await asyncio.sleep(cfg["opener_delay"])
        while time.time() < end:
            begun = time.time()
            try:
                await client.get(path, headers={"x-worker": cfg["name"]})
                outcome = "ok"
            except tether.errors.CircuitOpenError:
                outcome = "rejected"
            except tether.errors.TetherError as exc:
                outcome = type(exc).__name__
            calls.append({"start": begun, "outcome": outcome})
            await asyncio.sleep(cfg["pace"])
    await store.aclose()
    return {"calls": calls, "permits": store.permits, "transitions": store.transitions}


async def oauth_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    auth = tether.OAuth2ClientCredentials(
        token_url=f"{cfg['server_url']}/token", client_id="client-1", client_secret="secret-1"
    )
    state = f"{cfg['redis_url']}?namespace={cfg['namespace']}&on_state_error=fail&timeout=2"
    async with tether.Client(cfg["server_url"], auth=auth, state=state, retry=None, breaker=None) as client:
        await _wait_for_go()
        responses = await asyncio.gather(*(client.get("/api") for _ in range(cfg["tasks"])))
    return {"statuses": [r.status_code for r in responses]}


MODES: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "rate": rate_worker,
    "breaker": breaker_worker,
    "oauth": oauth_worker,
}


def main() -> None:
    mode, raw = sys.argv[1], sys.argv[2]
    result = asyncio.run(MODES[mode](json.loads(raw)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
