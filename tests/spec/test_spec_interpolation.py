"""${VAR} and ${VAR:-default} interpolation, and secrets kept as references."""

from __future__ import annotations

import secrets

import pytest

from tether.errors import AuthenticationError
from tether.spec import SecretRef, SpecLoadError, load

SPEC = """\
service:
  name: example
  base_url: ${API_URL:-https://default.example.com/v1}
  headers:
    User-Agent: tether/${APP_VERSION}
authentication:
  type: api_key
  config: {key_name: X-API-Key, secret: "${API_KEY}"}
retry:
  max_attempts: ${RETRIES:-3}
"""


def test_set_variables_are_substituted() -> None:
    """A set variable replaces its reference, inside a longer string too."""
    spec = load(SPEC, environ={"API_URL": "https://set.example.com", "APP_VERSION": "1.2", "RETRIES": "7"})
    assert spec.base_url == "https://set.example.com"
    assert spec.service.headers["User-Agent"] == "tether/1.2"
    assert spec.retry is not None and spec.retry.max_attempts == 7


def test_defaults_apply_when_unset() -> None:
    """${VAR:-default} uses the default when VAR is not set, typed as the field wants."""
    spec = load(SPEC, environ={"APP_VERSION": "1"})
    assert spec.base_url == "https://default.example.com/v1"
    assert spec.retry is not None and spec.retry.max_attempts == 3


def test_missing_variable_is_an_error_naming_it_and_its_line() -> None:
    """An unset variable without a default is a SpecError naming the variable at its line."""
    with pytest.raises(SpecLoadError) as caught:
        load(SPEC, environ={})
    (problem,) = caught.value.problems
    assert "APP_VERSION" in problem.message
    assert problem.location.line == 5
    assert "service.headers.User-Agent" in problem.message


def test_missing_secret_is_kept_as_a_reference() -> None:
    """authentication.config.secret stays a SecretRef: loading works without the secret."""
    spec = load(SPEC, environ={"APP_VERSION": "1"})
    assert spec.authentication is not None
    secret = spec.authentication.config.secret
    assert isinstance(secret, SecretRef)
    assert secret.variables == ("API_KEY",)
    assert secret.location is not None and secret.location.endswith(":8:41")


def test_secret_resolves_late_and_a_missing_one_is_an_auth_error() -> None:
    """SecretRef.resolve reads the environment then; a missing variable is AuthenticationError."""
    spec = load(SPEC, environ={"APP_VERSION": "1"})
    assert spec.authentication is not None
    secret = spec.authentication.config.secret
    assert secret is not None
    assert secret.resolve({"API_KEY": "k-123456"}) == "k-123456"
    with pytest.raises(AuthenticationError, match="API_KEY"):
        secret.resolve({})


def test_secret_repr_and_dump_never_show_literals() -> None:
    """A literal secret and a default are masked in repr and in the JSON dump."""
    token = f"tok{secrets.token_hex(8)}"  # made at run time: no literal credential in the repo
    fallback = f"fb{secrets.token_hex(8)}"
    literal = SecretRef(token)
    with_default = SecretRef(f"${{KEY:-{fallback}}}")
    assert token not in repr(literal)
    assert fallback not in repr(with_default)
    assert with_default.redacted() == "${KEY:-***}"
    spec = load(
        "service: {name: x, base_url: 'https://x.example'}\n"
        f"authentication: {{type: bearer, config: {{secret: {token}}}}}\n",
        environ={},
    )
    assert token not in spec.model_dump_json()
    assert token not in repr(spec)


def test_dollar_dollar_writes_a_literal_reference() -> None:
    """$${X} is the text ${X}, not a variable."""
    spec = load(
        "service: {name: x, base_url: 'https://x.example', headers: {X-T: '$${NOT_A_VAR}'}}\n", environ={}
    )
    assert spec.service.headers["X-T"] == "${NOT_A_VAR}"


def test_malformed_reference_is_an_error() -> None:
    """${1BAD} is not a reference and is reported as malformed."""
    with pytest.raises(SpecLoadError, match="malformed"):
        load("service: {name: x, base_url: 'https://x.example', headers: {X-T: '${1BAD}'}}\n", environ={})


def test_missing_variable_in_an_unselected_environment_is_fine() -> None:
    """Only the selected environment's URL must resolve."""
    text = (
        "service:\n  name: x\n  environments:\n    production: https://p.example\n"
        "    staging: ${STAGING_URL}\n"
    )
    assert load(text, environ={}).base_url == "https://p.example"
    with pytest.raises(SpecLoadError, match="STAGING_URL"):
        load(text, env="staging", environ={})
