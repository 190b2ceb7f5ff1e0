"""Build the two tether clients the benchmark measures, whichever ``Client`` signature is installed.

``tether.Client`` grew ``retry=`` / ``breaker=`` / ``rate=`` / ``bulkhead=`` keywords (retry and
breaker on by default, ``None`` disables; a total timeout adds the deadline policy). Older trees
only take ``policies=[...]``. The adapter looks at the signature and uses the keyword form when it
exists, the ``policies=`` form otherwise, and reports which one it used and the pipeline that came
out (``Client.describe()``), so the report says exactly what was measured.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import tether
from tether.pipeline.breaker import Breaker
from tether.pipeline.bulkhead import Bulkhead
from tether.pipeline.deadline import Deadline
from tether.pipeline.rate import Rate
from tether.pipeline.retry import Retry
from tether.transport import EngineOptions

__all__ = ["RATE_LIMIT", "BuiltClient", "full_policies", "no_policies"]

#: Far above anything one client process reaches, so the limiter spends tokens but never waits.
RATE_LIMIT = "1000000/second"
RATE_BURST = 100_000


@dataclass(frozen=True)
class BuiltClient:
    client: tether.Client
    form: str  # "keywords" or "policies="
    pipeline: tuple[str, ...]


def _parameters() -> set[str]:
    return set(inspect.signature(tether.Client).parameters)


def _engine_kwargs(pool: int) -> dict[str, Any]:
    if "engine" in _parameters():
        return {"engine": EngineOptions(max_connections=pool, max_connections_per_host=0)}
    return {}


def no_policies(url: str, *, pool: int) -> BuiltClient:
    """``tether.Client`` with an empty pipeline (only the per-phase network timeouts remain)."""
    # No total timeout: with the keyword form a total deadline adds the ``deadline`` policy.
    timeout = tether.Timeouts(total=None)
    kwargs: dict[str, Any] = {"timeout": timeout, **_engine_kwargs(pool)}
    if "retry" in _parameters():
        client = tether.Client(url, retry=None, breaker=None, **kwargs)
        form = "keywords"
    else:
        client = tether.Client(url, policies=[], **kwargs)
        form = "policies="
    return BuiltClient(client, form, tuple(client.describe()))


def full_policies(url: str, *, pool: int, concurrency: int) -> BuiltClient:
    """``tether.Client`` with deadline, retry, breaker, rate limiter and bulkhead, none throttling."""
    rate = Rate(RATE_LIMIT, burst=RATE_BURST)
    bulkhead = Bulkhead(max_concurrent=max(1000, 4 * concurrency), max_queue=1000)
    kwargs: dict[str, Any] = _engine_kwargs(pool)
    params = _parameters()
    if "retry" in params:
        client = tether.Client(url, retry=Retry(), breaker=Breaker(), rate=rate, bulkhead=bulkhead, **kwargs)
        form = "keywords"
        if "deadline" not in client.describe() and "policies" in params:
            # A keyword form that does not derive the deadline from the timeouts: add it by hand.
            client = tether.Client(
                url,
                retry=Retry(),
                breaker=Breaker(),
                rate=rate,
                bulkhead=bulkhead,
                policies=[Deadline()],
                **kwargs,
            )
            form = "keywords + policies=[Deadline()]"
    else:
        client = tether.Client(url, policies=[Deadline(), Retry(), Breaker(), rate, bulkhead], **kwargs)
        form = "policies="
    return BuiltClient(client, form, tuple(client.describe()))
