"""One engine, two doors: a spec builds exactly the objects a code-first user writes."""

from __future__ import annotations

import ssl

import pytest
from integration_helpers import spec_text

import tether
from tether._build import client_options, engine_from, retry_from
from tether.auth import ApiKey
from tether.auth._secrets import EnvSource
from tether.errors import BlockedDestinationError, SpecError
from tether.mock import Fault, FaultServer
from tether.pipeline._headers import RateLimitHeaderNames
from tether.spec import explain_text, load
from tether.spec._types import format_duration
from tether.state import MemoryStore
from tether.transport import EngineOptions

FULL = """\
service:
  name: prices
  base_url: https://api.example.com/v1
  headers: {Accept: application/json}
authentication:
  type: api_key
  config: {key_location: header, key_name: X-Key, secret: "${PRICES_KEY}"}
timeouts: {connect: 2000, read: 10000, total: 30000}
retry:
  max_attempts: 4
  initial_delay: 500
  max_delay: 8000
  backoff: linear
  jitter: false
  retry_on: [429, 503]
  retry_conditions: [network_error, timeout]
  max_retry_after: 20s
  budget: null
circuit_breaker:
  failure_threshold: 3
  success_threshold: 1
  timeout: 10
  half_open_requests: 2
  window: 30s
  mode: failure_rate
  failure_rate_threshold: 0.25
  minimum_calls: 8
rate_limits:
  requests_per_second: 5
  requests_per_minute: 100
  burst_size: 5
  headers: {remaining: X-Quota-Left, reset: X-Quota-Reset, reset_format: epoch_s}
throttling: {on_limit: reject, max_queue: 5, retry_after: 2}
bulkhead: {max_concurrent: 4, max_queue: 2, queue_timeout: 3s}
http: {version: "1.1", max_connections: 20, follow_redirects: true, max_redirects: 3, max_response_size: 1MB}
security: {block_private_networks: true, tls_min_version: "1.3"}
state: {url: "memory://"}
endpoints:
  get_price: {path: "/prices/{symbol}", parameters: [{name: symbol, in: path}]}
"""


def _by_hand() -> tether.Client:
    names = RateLimitHeaderNames(
        limit="X-RateLimit-Limit", remaining="X-Quota-Left", reset="X-Quota-Reset", reset_kind="epoch"
    )
    return tether.Client(
        "https://api.example.com/v1",
        headers={"Accept": "application/json"},
        timeout=tether.Timeouts(connect=2, read=10, total=30),
        auth=tether.ApiKey(tether.secret.env("PRICES_KEY"), header="X-Key"),
        retry=tether.Retry(
            attempts=4,
            initial=0.5,
            max_delay=8,
            backoff="linear",
            jitter=False,
            retry_on={429, 503},
            retry_on_errors={"network_error", "timeout"},
            max_retry_after=20,
            budget=None,
            limit_header=names.limit,
            remaining_header=names.remaining,
            reset_header=names.reset,
            reset_header_kind=names.reset_kind,
        ),
        breaker=tether.Breaker(
            failures=3,
            close_after=1,
            open_for=10,
            half_open_calls=2,
            window=30,
            mode="rate",
            failure_rate=0.25,
            min_calls=8,
        ),
        rate=tether.Rate(
            "5/second", "100/minute", burst=5, strategy="reject", max_queue=5, pause_on_429=2, headers=names
        ),
        bulkhead=tether.Bulkhead(max_concurrent=4, max_queue=2, queue_timeout=3),
        engine=EngineOptions(
            http_version="1.1",
            max_connections=20,
            follow_redirects=True,
            max_redirects=3,
            max_response_size=1_000_000,
            block_private=True,
            min_tls_version=ssl.TLSVersion.TLSv1_3,
        ),
        service="prices",
        state="memory://",
    )


async def test_yaml_and_code_build_equal_options_and_pipelines() -> None:
    """The spec door and the code door with the same numbers give equal options and pipelines."""
    api = tether.open(FULL, environ={"PRICES_KEY": "k-123456"})
    hand = _by_hand()
    try:
        options = api.options
        for kind in ("retry", "breaker", "rate", "bulkhead"):
            built = api.client.pipeline.policy(kind)
            manual = hand.pipeline.policy(kind)
            assert type(built) is type(manual)
        assert options["retry"] == hand.pipeline.policy("retry").options
        assert options["breaker"] == tether.Breaker(
            failures=3, close_after=1, open_for=10, half_open_calls=2, window=30, mode="rate",
            failure_rate=0.25, min_calls=8,
        )  # fmt: skip
        assert options["rate"] == hand.pipeline.policy("rate")._options
        assert options["bulkhead"] == tether.Bulkhead(max_concurrent=4, max_queue=2, queue_timeout=3)
        assert api.client.timeouts == hand.timeouts
        assert api.client.engine == hand.engine
        assert api.client.describe() == hand.describe()
        assert api.client.service == hand.service == "prices"
        assert isinstance(api.client.store, MemoryStore)
        built_auth = options["auth"]
        assert isinstance(built_auth, ApiKey)
        assert (built_auth.header, built_auth.template) == ("X-Key", "{secret}")
        request = api.client.build_request("GET", "/x")
        assert request.headers["accept"] == "application/json"
        assert request.url == hand.build_request("GET", "/x").url
    finally:
        await api.aclose()
        await hand.aclose()


async def test_a_spec_without_policy_sections_gets_the_code_defaults() -> None:
    """No timeouts/retry/breaker sections: the same objects as tether.Client(base_url) builds."""
    spec = load("service: {name: bare, base_url: 'https://api.example.com'}\n", environ={})
    options = client_options(spec)
    assert options["retry"] == tether.Retry()
    assert options["breaker"] == tether.Breaker()
    assert options["timeout"] == tether.Timeouts()
    assert options["rate"] is None
    assert options["bulkhead"] is None
    assert options["auth"] is None
    assert options["engine"] == EngineOptions()
    async with tether.open(spec) as api, tether.Client("https://api.example.com") as plain:
        assert api.client.describe() == plain.describe() == ["deadline", "retry", "breaker"]


def test_enabled_false_turns_retry_and_breaker_off() -> None:
    """retry/circuit_breaker with enabled: false build no policy (None), like the code door."""
    spec = load(
        "service: {name: s, base_url: 'https://a.example'}\n"
        "retry: {enabled: false}\ncircuit_breaker: {enabled: false}\ntimeouts: {total: null}\n",
        environ={},
    )
    options = client_options(spec)
    assert options["retry"] is None
    assert options["breaker"] is None
    client = tether.Client(**options)
    assert client.describe() == []


def test_the_selected_tier_is_laid_over_the_top_level_windows() -> None:
    """rate_limits tier premium: its 75/minute + burst 10 replace the top-level minute window."""
    spec = load(
        "service: {name: s, base_url: 'https://a.example'}\n"
        "rate_limits:\n  requests_per_second: 20\n  requests_per_minute: 1000\n  tier: premium\n"
        "  tiers: {free: {requests_per_minute: 5}, premium: {requests_per_minute: 75, burst_size: 10}}\n",
        environ={},
    )
    assert client_options(spec)["rate"] == tether.Rate("20/second", "75/minute", burst=10, tier="premium")


def test_the_explained_defaults_are_the_option_classes_constants() -> None:
    """--explain prints what the runtime builds: defaults are the policy classes' DEFAULT_*."""
    spec = load(
        "service: {name: s, base_url: 'https://a.example'}\n"
        "circuit_breaker: {failure_threshold: 3}\nbulkhead: {max_concurrent: 2}\n",
        environ={},
    )
    text = explain_text(spec)
    assert "failure_threshold: 3\n" in text
    half_open = format_duration(tether.Breaker.DEFAULT_HALF_OPEN_TIMEOUT)
    assert f'half_open_timeout: "{half_open}"  # default' in text
    assert f"max_queue: {tether.Bulkhead.DEFAULT_MAX_QUEUE}  # default" in text
    assert f"max_attempts: {tether.Retry.DEFAULT_ATTEMPTS}  # default" in text
    follow = "true" if EngineOptions().follow_redirects else "false"
    assert f"follow_redirects: {follow}  # default" in text


def test_security_tls_min_version_sets_the_engine_floor() -> None:
    """security.tls_min_version "1.2" becomes EngineOptions(min_tls_version=TLSv1_2)."""
    spec = load(
        "service: {name: s, base_url: 'https://a.example'}\nsecurity: {tls_min_version: '1.2'}\n", environ={}
    )
    assert engine_from(spec).min_tls_version is ssl.TLSVersion.TLSv1_2


async def test_block_private_networks_refuses_loopback_before_sending() -> None:
    """security.block_private_networks: a loopback destination is refused; the server sees nothing."""
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.ok(json={}))
        text = spec_text(
            "service: {name: s, base_url: '@URL@'}\nsecurity: {block_private_networks: true}\n"
            "retry: {enabled: false}\nendpoints: {x: {path: /x}}\n",
            server.url,
        )
        async with tether.open(text) as api:
            with pytest.raises(BlockedDestinationError):
                await api.call("x")
        assert server.log == []


async def test_service_name_and_headers_reach_errors_and_the_wire() -> None:
    """service.name names errors and events; service.headers are sent with every request."""
    async with FaultServer() as server:
        server.route("GET", "/x", Fault.status(404))
        text = spec_text(
            "service: {name: quotes, base_url: '@URL@', headers: {X-Team: pricing}}\n"
            "endpoints: {x: {path: /x}}\n",
            server.url,
        )
        async with tether.open(text) as api:
            with pytest.raises(tether.NotFoundError) as caught:
                await api.call("x")
        assert caught.value.service == "quotes"
        assert caught.value.endpoint == "x"
        assert server.log[0].header("x-team") == "pricing"


def test_env_secrets_stay_env_sources_and_jwt_is_refused() -> None:
    """A bare ${VAR} secret is read from the environment at start (rotation works); jwt is refused."""
    spec = load(FULL, environ={})
    auth = client_options(spec)["auth"]
    assert isinstance(auth, ApiKey)
    assert isinstance(auth.secret, EnvSource)
    assert auth.secret.name == "PRICES_KEY"
    jwt = load(
        "service: {name: s, base_url: 'https://a.example'}\n"
        "authentication: {type: jwt, config: {secret: '${SIGNING}'}}\n",
        environ={},
    )
    with pytest.raises(SpecError, match="jwt"):
        client_options(jwt)


def test_retry_without_error_mapping_has_no_predicate() -> None:
    """Only an error_mapping replaces retry's status/condition rules with a predicate."""
    plain = retry_from(load("service: {name: s, base_url: 'https://a.example'}\n", environ={}))
    assert plain is not None
    assert plain.when is None
    mapped = retry_from(
        load(
            "service: {name: s, base_url: 'https://a.example'}\n"
            "error_mapping:\n"
            "  - {status: 200, body: {path: ok, equals: false}, internal_code: API_001, action: retry}\n",
            environ={},
        )
    )
    assert mapped is not None
    assert mapped.when is not None
