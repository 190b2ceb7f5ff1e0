"""from_spec: a spec's authentication section becomes the same options the code-first door takes."""

from __future__ import annotations

from pathlib import Path

import pytest

import tether.secret as ts
from tether.auth import ApiKey, Basic, Bearer, OAuth2ClientCredentials, OAuth2RefreshToken, from_spec
from tether.errors import SpecError


def test_api_key_in_each_location() -> None:
    """key_location header/query/body with key_name and a value template."""
    header = from_spec("api_key", {"key_location": "header", "key_name": "X-Key", "secret": "k-1234"})
    assert isinstance(header, ApiKey)
    assert header.header == "X-Key"
    query = from_spec("api_key", {"key_location": "query", "key_name": "apikey", "secret": "k-1234"})
    assert isinstance(query, ApiKey)
    assert query.query == "apikey"
    body = from_spec("api_key", {"key_location": "body", "secret": "k-1234"})
    assert isinstance(body, ApiKey)
    assert body.body_field == "api_key"
    discogs = from_spec(
        "api_key", {"key_name": "Authorization", "value": "Discogs token={secret}", "secret": "k-1234"}
    )
    assert isinstance(discogs, ApiKey)
    assert discogs.template == "Discogs token={secret}"


def test_secret_source_mappings(tmp_path: Path) -> None:
    """A secret may name a source: env, file (relative to the spec's folder) or command."""
    by_env = from_spec("bearer", {"secret": {"env": "EXAMPLE_TOKEN"}})
    assert isinstance(by_env, Bearer)
    assert isinstance(by_env.secret, ts.EnvSource)
    by_file = from_spec("jwt", {"secret": {"file": "secrets.json", "key": "a.b"}}, base_dir=tmp_path)
    assert isinstance(by_file, Bearer)
    assert isinstance(by_file.secret, ts.FileSource)
    assert by_file.secret.path == tmp_path / "secrets.json"
    by_command = from_spec("api_key", {"secret": {"command": ["pass", "show", "api"]}})
    assert isinstance(by_command, ApiKey)
    assert isinstance(by_command.secret, ts.CommandSource)


def test_token_refresh_and_expires_in_set_the_reread_interval() -> None:
    """For key types, expires_in is how often sources are re-read; token_refresh: false never re-reads."""
    every_hour = from_spec("api_key", {"secret": {"env": "K"}, "expires_in": 3600})
    assert isinstance(every_hour, ApiKey)
    assert isinstance(every_hour.secret, ts.SecretSource)
    assert every_hour.secret.refresh_interval == 3600
    never = from_spec("api_key", {"secret": {"env": "K"}, "token_refresh": False})
    assert isinstance(never, ApiKey)
    assert isinstance(never.secret, ts.SecretSource)
    assert never.secret.refresh_interval == float("inf")


def test_basic() -> None:
    """basic takes username and password."""
    options = from_spec("basic", {"username": "alice", "password": {"env": "PW"}})
    assert isinstance(options, Basic)
    assert options.username == "alice"


def test_oauth2_client_credentials() -> None:
    """oauth2 (or the template's 'oauth'): token_url, client, scopes, token_refresh, expires_in."""
    options = from_spec(
        "oauth",
        {
            "token_url": "https://auth.example.com/token",
            "client_id": "cid",
            "client_secret": {"env": "CLIENT_SECRET"},
            "scopes": ["read", "write"],
            "audience": "https://api.example.com",
            "token_refresh": "2m",
            "expires_in": 1800,
        },
    )
    assert isinstance(options, OAuth2ClientCredentials)
    assert options.scopes == ("read", "write")
    assert options.leeway == 120
    assert options.default_expires_in == 1800


def test_oauth2_refresh_token_grant() -> None:
    """A refresh_token in the config selects the refresh-token grant."""
    options = from_spec(
        "oauth2",
        {"token_url": "https://auth.example.com/token", "client_id": "cid", "refresh_token": {"env": "RT"}},
    )
    assert isinstance(options, OAuth2RefreshToken)
    no_early = from_spec(
        "oauth2",
        {
            "token_url": "https://a.example.com/t",
            "client_id": "c",
            "client_secret": "s",
            "token_refresh": False,
        },
    )
    assert isinstance(no_early, OAuth2ClientCredentials)
    assert no_early.leeway == 0


def test_none_is_no_auth() -> None:
    """type: none builds nothing."""
    assert from_spec("none") is None


@pytest.mark.parametrize(
    ("auth_type", "config", "message"),
    [
        ("magic", {}, "authentication.type must be one of"),
        (
            "api_key",
            {"key_location": "cookie", "secret": "s-1234"},
            "key_location must be header, query or body",
        ),
        ("api_key", {}, "authentication.config.secret is required"),
        ("api_key", {"secret": "s-1234", "colour": "red"}, "does not use"),
        ("bearer", {"secret": {"env": "A", "file": "b"}}, "must name one source"),
        ("bearer", {"secret": {"command": "cat token"}}, "never a shell line"),
        ("oauth2", {"client_id": "c", "client_secret": "s"}, "token_url is required"),
        (
            "oauth2",
            {"token_url": "http://auth.example.com/t", "client_id": "c", "client_secret": "s"},
            "https",
        ),
    ],
)
def test_spec_errors_name_the_key(auth_type: str, config: dict[str, object], message: str) -> None:
    """Bad sections raise SpecError naming the key and the rule."""
    with pytest.raises(SpecError, match=message):
        from_spec(auth_type, config)


def test_spec_errors_never_show_a_secret() -> None:
    """A rejected section's message does not include the secret given in it."""
    with pytest.raises(SpecError) as info:
        from_spec("api_key", {"secret": "spec-secret-9876", "key_location": "header", "key_name": "bad name"})
    assert "spec-secret-9876" not in str(info.value)
