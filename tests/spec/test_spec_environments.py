"""Environment selection: env=, then TETHER_ENV, then default_environment, then production."""

from __future__ import annotations

import pytest

from tether.errors import SpecError
from tether.spec import SpecLoadError, load

SPEC = """\
service:
  name: example
  environments:
    development: http://127.0.0.1:8800/v1
    staging: https://staging.example.com/v1
    production: https://api.example.com/v1
"""


def test_production_is_the_default() -> None:
    """With no env named anywhere, production is selected."""
    spec = load(SPEC, environ={})
    assert spec.environment == "production"
    assert spec.base_url == "https://api.example.com/v1"


def test_env_argument_selects() -> None:
    """load(env=...) picks that environment's base URL."""
    assert load(SPEC, env="staging", environ={}).base_url == "https://staging.example.com/v1"


def test_tether_env_selects_when_no_argument() -> None:
    """TETHER_ENV picks the environment when env= is not given."""
    spec = load(SPEC, environ={"TETHER_ENV": "development"})
    assert spec.base_url == "http://127.0.0.1:8800/v1"


def test_env_argument_wins_over_tether_env() -> None:
    """env= beats TETHER_ENV."""
    assert load(SPEC, env="staging", environ={"TETHER_ENV": "development"}).environment == "staging"


def test_tether_env_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without environ=, TETHER_ENV is read from os.environ."""
    monkeypatch.setenv("TETHER_ENV", "staging")
    assert load(SPEC).environment == "staging"


def test_default_environment_key_selects() -> None:
    """service.default_environment is used when neither env= nor TETHER_ENV names one."""
    spec = load(
        SPEC.replace("  environments:", "  default_environment: staging\n  environments:"), environ={}
    )
    assert spec.environment == "staging"


def test_unknown_environment_lists_the_known_ones() -> None:
    """An unknown environment is a SpecError listing development, staging, production."""
    with pytest.raises(SpecLoadError) as caught:
        load(SPEC, env="qa", environ={})
    (problem,) = caught.value.problems
    assert "unknown environment 'qa'" in problem.message
    assert "development, staging, production" in problem.message
    assert problem.location.line == 3


def test_unknown_default_environment_is_an_error_at_its_line() -> None:
    """default_environment naming no environment is reported where it is written."""
    text = SPEC.replace("  environments:", "  default_environment: prod\n  environments:")
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    (problem,) = caught.value.problems
    assert "default_environment 'prod'" in problem.message
    assert problem.location.line == 3


def test_spec_without_environments_uses_base_url_for_any_name() -> None:
    """A spec with only base_url serves every environment name from it."""
    text = "service: {name: x, base_url: 'https://x.example/v1'}\n"
    assert load(text, env="staging", environ={}).base_url == "https://x.example/v1"
    assert load(text, environ={}).environment is None


def test_base_url_for_names_unknown_environments() -> None:
    """Spec.base_url_for raises a SpecError listing the known environments."""
    spec = load(SPEC, environ={})
    assert spec.base_url_for("development") == "http://127.0.0.1:8800/v1"
    with pytest.raises(SpecError, match="known environments: development, staging, production"):
        spec.base_url_for("qa")


def test_no_environment_selectable_is_an_error() -> None:
    """Environments without production, a default or a base_url need a choice."""
    text = "service:\n  name: x\n  environments: {dev: 'http://127.0.0.1:1/v1', qa: 'https://qa.example'}\n"
    with pytest.raises(SpecLoadError, match="no environment selected"):
        load(text, environ={})
    assert load(text, env="qa", environ={}).base_url == "https://qa.example"
