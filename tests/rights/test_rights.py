"""Rights: an endpoint needing a right the profile lacks is refused before anything is sent."""

from __future__ import annotations

import pytest

import tether
from tether.mock import Fault, FaultServer
from tether.pipeline.budget import Budget, Pricing
from tether.pipeline.fallback import Default, Fallback
from tether.pipeline.rights import Rights


def rights_client(server: FaultServer, *policies: object) -> tether.Client:
    return tether.Client(server.url, retry=None, breaker=None, policies=list(policies))  # type: ignore[arg-type]


async def test_a_missing_right_raises_and_nothing_is_sent(fault_server: FaultServer) -> None:
    """export_csv needs 'export'; a developer profile without it gets RightsViolationError, no request."""
    fault_server.route("GET", "/export", Fault.ok(json={}))
    options = Rights(
        profile={"read", "display"},
        required_by_endpoint={"export_csv": "export"},
        name="newsapi_developer",
    )
    async with rights_client(fault_server, options) as client:
        with pytest.raises(tether.RightsViolationError) as raised:
            await client.get("export", endpoint="export_csv")
    assert fault_server.log == []
    error = raised.value
    assert error.endpoint == "export_csv"
    assert error.error_code == "RIGHTS_001"
    assert "'export'" in str(error) and "export_csv" in str(error) and "newsapi_developer" in str(error)
    assert error.missing == ["export"]  # type: ignore[attr-defined]


async def test_granted_and_unlisted_endpoints_go_through(fault_server: FaultServer) -> None:
    """An endpoint whose rights are granted, and one with no requirement, are sent."""
    fault_server.route("GET", "/a", Fault.ok(json={"a": 1}))
    options = Rights(
        profile=["read", "fundamentals"], required_by_endpoint={"profile": ["read", "fundamentals"]}
    )
    async with rights_client(fault_server, options) as client:
        assert (await client.get("a", endpoint="profile")).json() == {"a": 1}
        assert (await client.get("a", endpoint="anything_else")).json() == {"a": 1}
        assert (await client.get("a")).json() == {"a": 1}
    assert len(fault_server.log) == 3


async def test_every_missing_right_is_named(fault_server: FaultServer) -> None:
    """Two missing rights are both listed; a profile mapping with False does not grant."""
    options = Rights(
        profile={"read": True, "export": False},
        required_by_endpoint={"bulk": ["export", "redistribute", "read"]},
    )
    async with rights_client(fault_server, options) as client:
        with pytest.raises(tether.RightsViolationError) as raised:
            await client.get("x", endpoint="bulk")
    assert raised.value.missing == ["export", "redistribute"]  # type: ignore[attr-defined]
    assert fault_server.log == []


async def test_rights_refusal_is_not_served_by_fallback_or_charged(fault_server: FaultServer) -> None:
    """The refusal comes first: no default answer, no budget spent."""
    options = Rights(profile=set(), required_by_endpoint={"export_csv": "export"})
    budget = Budget(monthly_limit=10.0, pricing=Pricing.per_request(1.0))
    async with rights_client(fault_server, options, budget, Fallback(Default(json={}))) as client:
        with pytest.raises(tether.RightsViolationError):
            await client.get("x", endpoint="export_csv")
        status = await client.pipeline.policy("budget").fetch_status()
    assert status["cost"]["used"] == 0.0
    assert client.describe()[:3] == ["rights", "budget", "fallback"]
    assert fault_server.log == []


def test_options_reject_bad_values() -> None:
    """Rights refuses empty or non-string right names, naming where."""
    with pytest.raises(ValueError, match=r"Rights\.profile"):
        Rights(profile=[""])
    with pytest.raises(ValueError, match="required_by_endpoint\\['x'\\]"):
        Rights(required_by_endpoint={"x": [1]})  # type: ignore[list-item]
