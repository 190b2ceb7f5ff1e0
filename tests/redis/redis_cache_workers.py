"""A worker process for the shared Redis cache test: ``python redis_cache_workers.py CONFIG_JSON``.

It builds its own ``tether.Client`` with ``Cache(backend=<the shared Redis>)`` and an API key,
prints ``ready``, waits for ``go START DURATION`` on stdin (epoch seconds, one instant for every worker),
then makes ``calls`` concurrent ``GET /item`` calls and prints one JSON line: how many succeeded,
failed, and how each was answered (the cache's ``meta["cache"]`` state, and whether it was
coalesced in-process or filled by another process).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import tether
from tether._context import context_of


async def main(cfg: dict[str, Any]) -> dict[str, Any]:
    cache = tether.Cache(ttl=60, backend=cfg["cache_url"])
    async with tether.Client(
        cfg["server_url"], auth=tether.ApiKey(cfg["api_key"]), cache=cache, retry=None, breaker=None
    ) as client:
        print("ready", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        await asyncio.sleep(max(0.0, float(line.split()[1]) - time.time()))

        async def one() -> str:
            response = await client.get("/item")
            meta = context_of(response.request).meta
            return f"{meta.get('cache')}{'+coalesced' if meta.get('coalesced') else ''}"

        outcomes = await asyncio.gather(*(one() for _ in range(cfg["calls"])), return_exceptions=True)
        status = client.pipeline.policy("cache").status()
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return {
        "ok": len(outcomes) - len(errors),
        "errors": errors[:3],
        "answers": dict(Counter(o for o in outcomes if isinstance(o, str))),
        "shared_fills": status.shared_fills,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
