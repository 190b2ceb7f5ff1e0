"""The data API client's configuration file: the bundled example loads as written, every key has
an effect or a located refusal, the variables override it, and ``tether check`` validates it."""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import tether.cli._check  # noqa: F401  (registers the command on the app)
from tether._build import client_options
from tether.cli import app
from tether.dataapi import DataAPIClient
from tether.dataapi._config import CONFIG_EFFECTS, ENV_OVERRIDES, ExternalAPIConfig, load_config
from tether.errors import AuthenticationError, SpecError

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("fixtures") / "external_api_client.yaml"
EXAMPLE = ROOT / "config" / "external_api_client.yaml"


def _keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix.rstrip(".")]
    out: list[str] = []
    for key, value in node.items():
        out += _keys(value, f"{prefix}{key}.") if key not in ("requests_per_minute",) else [f"{prefix}{key}"]
    return out


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.yaml"
    path.write_text(text)
    return path


def test_the_bundled_example_is_the_test_fixture() -> None:
    """config/external_api_client.yaml and the tests' copy are the same file."""
    assert filecmp.cmp(FIXTURE, EXAMPLE, shallow=False)


def test_every_key_of_the_file_has_a_documented_effect() -> None:
    """Each key written in the file is in CONFIG_EFFECTS, and each documented key is a model field."""
    written = _keys(yaml.safe_load(FIXTURE.read_text())["external_api"])
    assert written and all(key in CONFIG_EFFECTS for key in written), set(written) - set(CONFIG_EFFECTS)
    for dotted in CONFIG_EFFECTS:
        model: Any = ExternalAPIConfig
        for part in dotted.split("."):
            assert part in model.model_fields, dotted
            model = model.model_fields[part].annotation


def test_the_file_becomes_the_spec_it_describes() -> None:
    """Loaded verbatim, each section lands on the engine's options with the file's numbers."""
    config = load_config(FIXTURE, environ={})
    spec = config.spec(environ={})
    options = client_options(spec)
    assert spec.base_url == "https://api.example.com/v1"
    timeouts = options["timeout"]
    assert (timeouts.read, timeouts.attempt, timeouts.total) == (30.0, 30.0, 60.0)
    engine = options["engine"]
    assert (engine.http_version, engine.max_connections, engine.keepalive) == ("2", 100, 60.0)
    auth = spec.authentication.config  # type: ignore[union-attr]
    assert (auth.credentials_source, auth.secret_manager_kind(), auth.secret_name, auth.secret_project) == (
        "secret_manager",
        "gcp",
        "external_api_key_prod",
        "my-project-prod",
    )
    assert auth.refresh_interval == 24 * 3600
    source = options["auth"].sources[0]
    assert source.resource == "projects/my-project-prod/secrets/external_api_key_prod/versions/latest"
    assert source.refresh_interval == 24 * 3600
    limits = spec.rate_limits
    assert limits is not None and options["rate"] is not None
    effective = limits.effective()
    assert (limits.tier, effective.requests_per_minute, effective.burst_size) == ("premium", 75, 10)
    assert (spec.throttling.on_limit, spec.throttling.max_queue) == ("queue", 20)  # type: ignore[union-attr]
    retry = options["retry"]
    assert (retry.attempts, retry.initial, retry.max_delay, retry.multiplier) == (5, 1.0, 60.0, 2.0)
    assert (retry.jitter, retry.jitter_max) == (True, 0.5)
    assert set(retry.retry_on) == {429, 500, 502, 503, 504}
    assert set(retry.retry_on_errors) == {"connection_error", "timeout", "rate_limited"}
    breaker = options["breaker"]
    assert (
        breaker.failures,
        breaker.window,
        breaker.close_after,
        breaker.open_for,
        breaker.half_open_calls,
    ) == (
        5,
        60.0,
        2,
        30.0,
        1,
    )
    cache = options["cache"]
    assert cache.backend == "redis://localhost:6379/0"
    assert (cache.ttl, cache.max_bytes, cache.eviction) == (30.0, 512_000_000, "lru")
    assert dict(cache.ttl_by_endpoint) == {
        "/metadata/*": 86400.0,
        "get_data": 30.0,
        "get_historical": 3600.0,
        "list_identifiers": 86400.0,
    }
    assert dict(cache.ttl_by_param["interval"]) == {"daily": 3600.0, "weekly": 86400.0, "monthly": 3600.0}
    monitoring = spec.monitoring
    assert monitoring is not None and monitoring.metrics_enabled and monitoring.alert_on_open
    assert (monitoring.logging.level, monitoring.tracing.sample_rate) == ("info", 0.1)
    assert [(a.condition.metric, a.condition.threshold) for a in monitoring.alerts] == [
        ("error_rate", 0.05),
        ("response_time_p95", 0.5),
    ]


@pytest.mark.parametrize(
    ("variable", "value", "check"),
    [
        ("EXTERNAL_API_URL", "http://127.0.0.1:9/v1", lambda s, o: s.base_url == "http://127.0.0.1:9/v1"),
        (
            "EXTERNAL_API_TIMEOUT",
            "2.5",
            lambda s, o: o["timeout"].attempt == 2.5 and o["timeout"].read == 2.5,
        ),
        ("EXTERNAL_API_RATE_LIMIT", "40", lambda s, o: s.rate_limits.effective().requests_per_minute == 40),
        ("EXTERNAL_API_RATE_TIER", "enterprise", lambda s, o: s.rate_limits.tier == "enterprise"),
        ("EXTERNAL_API_RETRY_ENABLED", "false", lambda s, o: o["retry"] is None),
        (
            "EXTERNAL_API_CACHE_TTL",
            "5",
            lambda s, o: o["cache"].ttl == 5 and o["cache"].ttl_by_endpoint["get_data"] == 5,
        ),
        ("EXTERNAL_API_CIRCUIT_ENABLED", "false", lambda s, o: o["breaker"] is None),
        ("SECRET_PROJECT", "other-proj", lambda s, o: o["auth"].sources[0].project == "other-proj"),
        ("SECRET_NAME", "other-key", lambda s, o: o["auth"].sources[0].name == "other-key"),
        (
            "EXTERNAL_API_REDIS_URL",
            "redis://cache.internal:6380/2",
            lambda s, o: o["cache"].backend.endswith(":6380/2"),
        ),
        (
            "EXTERNAL_API_SECRET_ENDPOINT",
            "http://127.0.0.1:9",
            lambda s, o: o["auth"].sources[0].endpoint == "http://127.0.0.1:9",
        ),
    ],
)
def test_each_variable_replaces_the_key_it_names(variable: str, value: str, check: Any) -> None:
    """The variable's value is what the engine is built with (its behaviour: tests/redis)."""
    config = load_config(FIXTURE, environ={variable: value})
    spec = config.spec(environ={variable: value} if variable == "EXTERNAL_API_RATE_TIER" else {})
    assert check(spec, client_options(spec))
    assert variable in config.overridden
    assert variable in {o.variable for o in ENV_OVERRIDES}


@pytest.mark.parametrize(
    ("replace", "by", "message", "line"),
    [
        ('type: "api_key"', 'type: "oauth2"', "oauth2 is not supported", 13),
        ('eviction_policy: "lru"', 'eviction_policy: "mru"', "'lru', 'lfu' or 'ttl'", 66),
        ("    burst_allowance: 10", "    burst_alowance: 10", "burst_alowance", 26),
        ("max_attempts: 5", "max_attempts: 0", "max_attempts", 33),
        ("retryable_status_codes: [429, 500", "retryable_status_codes: [404, 429, 500", "never retried", 39),
    ],
)
def test_bad_keys_are_refused_with_their_line(
    tmp_path: Path, replace: str, by: str, message: str, line: int
) -> None:
    """A wrong or unsupported value, or an unknown key, is a SpecError at the key's file:line."""
    text = FIXTURE.read_text()
    assert replace in text
    path = _write(tmp_path, text.replace(replace, by, 1))
    with pytest.raises(SpecError, match=message) as caught:
        load_config(path, environ={})
    assert f"{path}:{line}:" in str(caught.value)


def test_the_memory_backend_evicts_lru_only(tmp_path: Path) -> None:
    """backend memory with eviction lru loads (in-process cache); with lfu it is a located error."""
    text = FIXTURE.read_text().replace('backend: "redis"', 'backend: "memory"')
    options = client_options(load_config(_write(tmp_path, text), environ={}).spec(environ={}))
    assert options["cache"].backend == "memory"
    path = _write(tmp_path, text.replace('eviction_policy: "lru"', 'eviction_policy: "lfu"'))
    with pytest.raises(SpecError, match="lfu needs backend redis") as caught:
        load_config(path, environ={})
    assert f"{path}:66:" in str(caught.value)


def test_a_bad_variable_names_itself_and_the_key_it_overrides() -> None:
    """EXTERNAL_API_RETRY_ENABLED=perhaps is refused naming the variable and retry.enabled."""
    with pytest.raises(SpecError, match=r"retry\.enabled.*EXTERNAL_API_RETRY_ENABLED"):
        load_config(FIXTURE, environ={"EXTERNAL_API_RETRY_ENABLED": "perhaps"})


async def test_connect_without_credentials_needs_a_configuration() -> None:
    """Only a client made by from_config may connect without APICredentials."""
    with pytest.raises(AuthenticationError, match="from_config"):
        await DataAPIClient(environ={}).connect()


def test_tether_check_validates_a_client_configuration(tmp_path: Path) -> None:
    """tether check prints the effective settings of a valid file and file:line problems of a bad one."""
    runner = CliRunner()
    good = runner.invoke(app, ["check", str(FIXTURE)], env={"EXTERNAL_API_RATE_TIER": "free"})
    assert good.exit_code == 0, good.output
    assert "data API client configuration" in good.output
    assert "tier free, 5/minute" in good.output
    assert "EXTERNAL_API_RATE_TIER overrides external_api.rate_limits.tier" in good.output
    bad = _write(tmp_path, FIXTURE.read_text().replace("timeout_seconds: 30.0", "timeout_seconds: -1"))
    result = runner.invoke(app, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:6:" in result.output and "timeout_seconds" in result.output
