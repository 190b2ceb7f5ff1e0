"""tether check and tether schema: validation summary, located problems, warnings, --explain."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

import tether.cli._check
import tether.cli._schema  # noqa: F401  (registers the commands on the app)
from tether.cli import app

SPECS = Path(__file__).resolve().parents[2] / "specs"

THREE_MISTAKES = """\
service:
  name: example
  base_url: https://api.example.com/v1
retyr:
  max_attempts: 3
circuit_breaker:
  failure_threshold: -1
endpoints:
  get_item:
    path: /items/{id}
    method: FETCH
    parameters:
      - {name: id, in: path}
"""


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner with a wide terminal and no TETHER_ENV or API key in the environment."""
    monkeypatch.delenv("TETHER_ENV", raising=False)
    monkeypatch.delenv("EXTERNAL_API_KEY", raising=False)
    monkeypatch.delenv("EXTERNAL_API_RATE_TIER", raising=False)
    monkeypatch.delenv("EXTERNAL_API_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_check_summarises_a_valid_spec(runner: CliRunner) -> None:
    """A valid spec prints service, base URLs, endpoints with parameters and policies; exit 0."""
    result = runner.invoke(app, ["check", str(SPECS / "dataapi.yaml")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "dataapi 2.0.0" in out
    assert "* production: https://api.example.com/v1  (selected)" in out
    assert "development: http://127.0.0.1:8800/v1" in out
    assert "get_data: GET /data/{identifier}" in out
    assert "identifier (path, string, required, pattern ^[A-Z0-9-]{1,20}$)" in out
    assert "rate limits (tier premium): 75/minute + 10 burst; queue, max queue 20" in out
    assert "retry: 5 attempts" in out


def test_check_never_prints_a_secret(runner: CliRunner, tmp_path: Path) -> None:
    """Secrets show as ${VAR} or ***, even when set or written literally."""
    token = f"tok{secrets.token_hex(8)}"  # made at run time: no literal credential in the repo
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "service: {name: x, base_url: 'https://x.example'}\n"
        f"authentication: {{type: bearer, config: {{secret: {token}}}}}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["check", str(spec), "--explain"])
    assert result.exit_code == 0, result.output
    assert token not in result.output
    assert "authentication.config.secret is written in the spec itself" in result.output


def test_check_reports_three_mistakes_with_lines_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    """All three mistakes are printed as file:line:column: rule in one run; exit code 1."""
    spec = tmp_path / "bad.yaml"
    spec.write_text(THREE_MISTAKES, encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 1
    assert "3 problems" in result.output
    assert f"{spec}:4:1: unknown key 'retyr'; did you mean 'retry'?" in result.output
    assert f"{spec}:7:22: circuit_breaker.failure_threshold:" in result.output
    assert f"{spec}:11:13: endpoints.get_item.method:" in result.output


def test_check_many_files_reports_each(runner: CliRunner, tmp_path: Path) -> None:
    """With several files, each is checked and the run fails if any is invalid."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(THREE_MISTAKES, encoding="utf-8")
    result = runner.invoke(app, ["check", str(SPECS / "dataapi.yaml"), str(bad)])
    assert result.exit_code == 1
    assert "1 valid, 1 invalid" in result.output


def test_check_warns_about_keys_not_enforced(runner: CliRunner) -> None:
    """Keys tether does not act on yet are listed as 'not enforced' warnings."""
    result = runner.invoke(app, ["check", str(SPECS / "int-template-filled.yaml")])
    assert result.exit_code == 0, result.output
    assert "warning: not enforced: dlq.retention" in result.output
    assert "warning: not enforced: streaming" not in result.output
    assert "warning: not enforced: cache" not in result.output
    assert "warning: not enforced: retry" not in result.output
    assert "warning: not enforced: endpoints.get_historical.cache.stale_if_error" in result.output
    assert "informational (shown, not acted on): " in result.output


def test_check_env_option_and_unknown_env(runner: CliRunner) -> None:
    """--env selects the environment; an unknown one fails listing the known ones."""
    ok = runner.invoke(app, ["check", "--env", "development", str(SPECS / "dataapi.yaml")])
    assert "* development: http://127.0.0.1:8800/v1  (selected)" in ok.output
    bad = runner.invoke(app, ["check", "--env", "qa", str(SPECS / "dataapi.yaml")])
    assert bad.exit_code == 1
    assert "unknown environment 'qa' (from env=); known environments: development, production" in bad.output


def test_check_explain_prints_defaults(runner: CliRunner, tmp_path: Path) -> None:
    """--explain prints effective settings, with tether's defaults marked as defaults."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "service: {name: x, base_url: 'https://x.example'}\nretry: {max_attempts: 3}\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["check", "--explain", str(spec)])
    assert result.exit_code == 0, result.output
    assert "max_attempts: 3\n" in result.output
    assert 'initial_delay: "1s"  # default' in result.output
    assert 'connect: "5s"  # default' in result.output
    assert "failure_threshold: 5  # default" in result.output
    assert "rate_limits: off" in result.output


def test_schema_command_prints_a_schema_that_validates_specs(runner: CliRunner, tmp_path: Path) -> None:
    """tether schema prints JSON Schema; --output writes the same to a file."""
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "service" in schema["properties"]
    target = tmp_path / "tether-spec.schema.json"
    assert runner.invoke(app, ["schema", "--output", str(target)]).exit_code == 0
    assert json.loads(target.read_text(encoding="utf-8")) == schema
