"""Child process of the DLQ durability test: make N failing POSTs that park in a SQLite DLQ.

Usage: ``python dlq_child.py BASE_URL DB_PATH N``. Prints ``failed <dlq_id> <idempotency_key>``
for each call only *after* the client raised its error, i.e. after it was told the call failed.
"""

from __future__ import annotations

import asyncio
import sys

import tether
from tether.dlq import SQLiteDLQ
from tether.pipeline.fallback import Enqueue, Fallback


async def main(base_url: str, db_path: str, n: int) -> None:
    dlq = SQLiteDLQ(db_path)
    client = tether.Client(base_url, retry=None, breaker=None, policies=[Fallback(Enqueue(dlq))])
    async with client:
        for i in range(n):
            try:
                await client.post("orders", json={"n": i})
            except tether.APIError as exc:
                dlq_id = getattr(exc, "dlq_id", None)
                key = exc.response.request.headers.get("idempotency-key") if exc.response else None
                sys.stdout.write(f"failed {dlq_id} {key}\n")
                sys.stdout.flush()
    await dlq.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
