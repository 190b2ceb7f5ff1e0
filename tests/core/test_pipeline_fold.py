"""The pipeline fold: fixed order whatever the list order, one policy per kind, describe()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import httpx2
import pytest

from tether.pipeline._base import ORDER, Handler, Pipeline, Policy, PolicyEnv


@dataclass(frozen=True)
class _Tracer:
    kind: ClassVar[str]
    trail: list[str]

    def build(self, env: PolicyEnv) -> Policy:
        trail, kind = self.trail, self.kind

        async def policy(request: httpx2.Request, next: Handler) -> httpx2.Response:
            trail.append(f">{kind}")
            response = await next(request)
            trail.append(f"<{kind}")
            return response

        return policy


def _tracer(kind_name: str) -> type[_Tracer]:
    return type(f"T_{kind_name}", (_Tracer,), {"kind": kind_name})


async def _terminal(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, request=request)


async def test_policies_run_in_documented_order_whatever_the_list_order() -> None:
    """Policies given in reverse order still run outermost-first as ORDER says."""
    trail: list[str] = []
    options = [_tracer(k)(trail) for k in reversed(ORDER)]
    pipeline = Pipeline.build(options, PolicyEnv(service="s"), _terminal)
    assert pipeline.describe() == list(ORDER)
    await pipeline(httpx2.Request("GET", "http://127.0.0.1/"))
    assert trail == [f">{k}" for k in ORDER] + [f"<{k}" for k in reversed(ORDER)]


def test_order_matches_design_section_3() -> None:
    """ORDER is DESIGN 3: fallback, cache, deadline, retry, breaker, rate, bulkhead, auth, attempt timeout."""
    core = [k for k in ORDER if k not in ("trace", "rights", "budget")]
    assert core == [
        "fallback",
        "cache",
        "deadline",
        "retry",
        "breaker",
        "rate",
        "bulkhead",
        "auth",
        "attempt_timeout",
    ]
    assert ORDER[0] == "trace"
    assert ORDER.index("rights") < ORDER.index("fallback")
    assert ORDER.index("budget") < ORDER.index("fallback")


def test_two_policies_of_one_kind_are_refused() -> None:
    """A pipeline takes one policy per kind."""
    trail: list[str] = []
    retry = _tracer("retry")
    with pytest.raises(ValueError, match="retry"):
        Pipeline.build([retry(trail), retry(trail)], PolicyEnv(service="s"), _terminal)


def test_unknown_kind_is_refused_with_the_known_list() -> None:
    """An unknown policy kind names the kinds that exist."""
    with pytest.raises(ValueError, match=r"unknown policy kind 'teleport'.*retry"):
        Pipeline.build([_tracer("teleport")([])], PolicyEnv(service="s"), _terminal)


async def test_empty_pipeline_calls_terminal() -> None:
    """With no policies the request goes straight to the terminal handler."""
    pipeline = Pipeline([], _terminal)
    response = await pipeline(httpx2.Request("GET", "http://127.0.0.1/"))
    assert response.status_code == 200
    assert pipeline.describe() == []
