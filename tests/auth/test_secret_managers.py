"""Secret managers as secret sources: AWS Secrets Manager (moto's server as a real subprocess) and
Google Cloud Secret Manager (the official client over REST against a loopback answer of its API).

The key comes from the manager, rotates there, and the call after the server's 401 uses the new
key; a canary secret from either manager appears in no log, error or repr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import structlog
from secret_managers import AWS_ENV, GcpSecrets, accepting, moto_server

import tether
import tether.secret as ts
from tether.errors import AuthenticationError, SpecError, TetherError
from tether.events import EventRecorder
from tether.mock import Fault, FaultServer
from tether.telemetry import StructlogListener
from tether.testing import VirtualClock

CANARY = "cnry-mgr-4b7d1e09c2-never-leak"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's Secrets Manager on loopback (``python -m moto.server``), for this module."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        with moto_server() as url:
            yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 Secrets Manager client on moto (to create and rotate secrets)."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_url)


def _name(request: pytest.FixtureRequest) -> str:
    return "tether-" + request.node.name.replace("[", "-").replace("]", "")[-60:]


async def test_the_key_comes_from_moto_rotates_and_the_call_after_a_401_uses_the_new_key(
    aws: Any, moto_url: str, fault_server: FaultServer, request: pytest.FixtureRequest
) -> None:
    """First call signed with moto's value; after rotation in moto the server refuses the old key
    (401), the source re-reads moto and the same call is replayed with the new key."""
    name = _name(request)
    keys = ["sk-first-0001"]
    aws.create_secret(Name=name, SecretString=keys[0])
    fault_server.route("GET", "/data", accepting(keys))
    source = ts.aws_secrets_manager(name, region="us-east-1", endpoint_url=moto_url)
    recorder = EventRecorder()
    async with tether.Client(
        fault_server.url, auth=tether.ApiKey(source), retry=None, listeners=[recorder]
    ) as client:
        assert (await client.get("/data")).json() == {"ok": True}
        keys.append("sk-second-0002")
        aws.put_secret_value(SecretId=name, SecretString=keys[1])  # rotation: AWSCURRENT moves
        assert (await client.get("/data")).json() == {"ok": True}
    sent = [r.header("x-api-key") for r in fault_server.requests("GET", "/data")]
    statuses = [r.status for r in fault_server.requests("GET", "/data")]
    assert sent == ["sk-first-0001", "sk-first-0001", "sk-second-0002"]
    assert statuses == [200, 401, 200]
    assert recorder.of("auth.secret_rotated")


async def test_a_json_secret_field_and_the_refresh_interval(
    aws: Any, moto_url: str, request: pytest.FixtureRequest
) -> None:
    """key= picks a field of a JSON secret; the value is re-read once refresh_interval has passed."""
    name = _name(request)
    aws.create_secret(Name=name, SecretString='{"api_key": "v1", "other": "x"}')
    clock = VirtualClock()
    source = ts.aws_secrets_manager(
        name, region="us-east-1", endpoint_url=moto_url, key="api_key", refresh_interval="1h", clock=clock
    )
    assert (await source.get()).reveal() == "v1"
    aws.put_secret_value(SecretId=name, SecretString='{"api_key": "v2"}')
    clock.advance(1800)
    assert (await source.get()).reveal() == "v1"  # cached within the interval
    clock.advance(1801)
    assert (await source.get()).reveal() == "v2"


async def test_gcp_reads_the_documented_rest_api_and_rotates_after_a_401(fault_server: FaultServer) -> None:
    """The official client calls GET /v1/projects/P/secrets/N/versions/latest:access; a new
    version added there is used by the replay after the API's 401."""
    secrets = GcpSecrets()
    secrets.add_version("my-project-prod", "external_api_key_prod", "gk-first-0001")
    secrets.install(fault_server, "my-project-prod", "external_api_key_prod")
    keys = ["gk-first-0001"]
    fault_server.route("GET", "/data", accepting(keys))
    source = ts.gcp_secret_manager("my-project-prod", "external_api_key_prod", endpoint=fault_server.url)
    async with tether.Client(fault_server.url, auth=tether.ApiKey(source), retry=None) as client:
        assert (await client.get("/data")).status_code == 200
        keys.append("gk-second-0002")
        secrets.add_version("my-project-prod", "external_api_key_prod", keys[1])
        assert (await client.get("/data")).status_code == 200
    assert (
        secrets.accessed
        == ["/v1/projects/my-project-prod/secrets/external_api_key_prod/versions/latest:access"] * 2
    )
    access = fault_server.requests("GET", secrets.accessed[0])
    assert all("gl-python" in (r.header("x-goog-api-client") or "") for r in access)
    assert [r.header("x-api-key") for r in fault_server.requests("GET", "/data")] == [
        "gk-first-0001",
        "gk-first-0001",
        "gk-second-0002",
    ]


async def test_gcp_refuses_a_payload_whose_checksum_does_not_match(fault_server: FaultServer) -> None:
    """A payload that does not match its dataCrc32c is an AuthenticationError, not a key."""
    secrets = GcpSecrets(corrupt=True)
    secrets.add_version("p", "n", "value-1")
    secrets.install(fault_server, "p", "n")
    with pytest.raises(AuthenticationError, match="CRC-32C"):
        await ts.gcp_secret_manager("p", "n", endpoint=fault_server.url).get()


async def test_missing_secrets_name_the_secret_and_the_service_error(
    aws: Any, moto_url: str, fault_server: FaultServer
) -> None:
    """A secret that does not exist: AuthenticationError naming it and the service's error code."""
    with pytest.raises(AuthenticationError, match=r"'absent-secret'.*ResourceNotFoundException"):
        await ts.aws_secrets_manager("absent-secret", region="us-east-1", endpoint_url=moto_url).get()
    GcpSecrets().install(fault_server, "p", "absent")
    with pytest.raises(AuthenticationError, match=r"projects/p/secrets/absent/versions/latest.*NotFound"):
        await ts.gcp_secret_manager("p", "absent", endpoint=fault_server.url).get()


@pytest.mark.parametrize(
    ("module", "extra", "make"),
    [
        ("boto3", "aws", lambda: ts.aws_secrets_manager("n", region="us-east-1")),
        ("google.cloud.secretmanager", "gcp", lambda: ts.gcp_secret_manager("p", "n")),
    ],
)
def test_a_missing_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, module: str, extra: str, make: Any
) -> None:
    """Without the vendor's client installed, making the source says which extra to install."""
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SpecError, match=rf"pip install 'tether\[{extra}\]'"):
        make()


def _spec(base_url: str, auth: str) -> str:
    return f"""
service: {{name: managed, base_url: "{base_url}"}}
authentication:
  type: api_key
  config:
    key_name: X-API-Key
    credentials_source: secret_manager
{auth}
retry: {{enabled: false}}
endpoints:
  data: {{path: /data, method: GET}}
"""


async def test_spec_keys_select_each_secret_manager(
    aws: Any, moto_url: str, fault_server: FaultServer, request: pytest.FixtureRequest
) -> None:
    """credentials_source: secret_manager with secret_name + secret_project (gcp) or
    secret_manager: aws + secret_region reads the key there; a rotated key is used after a 401."""
    name = _name(request)
    keys = ["spec-aws-1"]
    aws.create_secret(Name=name, SecretString=keys[0])
    secrets = GcpSecrets()
    secrets.add_version("proj", "gkey", "spec-gcp-1")
    secrets.install(fault_server, "proj", "gkey")
    fault_server.route("GET", "/data", accepting(keys))
    aws_auth = (
        f"    secret_manager: aws\n    secret_name: {name}\n    secret_region: us-east-1\n"
        f"    secret_endpoint: {moto_url}\n"
    )
    async with tether.open(_spec(fault_server.url, aws_auth)) as api:
        assert (await api.call("data")).data == {"ok": True}
        keys.append("spec-aws-2")
        aws.put_secret_value(SecretId=name, SecretString=keys[1])
        assert (await api.call("data")).data == {"ok": True}
    keys.append("spec-gcp-1")
    gcp_auth = f"    secret_name: gkey\n    secret_project: proj\n    secret_endpoint: {fault_server.url}\n"
    async with tether.open(_spec(fault_server.url, gcp_auth)) as api:
        assert (await api.call("data")).data == {"ok": True}
    sent = [r.header("x-api-key") for r in fault_server.requests("GET", "/data")]
    assert sent == ["spec-aws-1", "spec-aws-1", "spec-aws-2", "spec-gcp-1"]


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ("    secret_manager: gcp\n    secret_name: k\n", "secret_project"),
        (
            "    secret_manager: aws\n    secret_name: k\n    secret_project: p\n",
            "applies to secret_manager gcp",
        ),
        ("    secret_manager: aws\n", "secret_name"),
    ],
)
def test_spec_secret_manager_keys_are_checked_with_their_line(auth: str, message: str) -> None:
    """Missing or misplaced secret-manager keys are located spec errors naming the rule."""
    with pytest.raises(SpecError, match=message) as caught:
        tether.spec.load(_spec("https://api.example.com", auth))
    assert ":" in str(caught.value.location)


async def test_a_canary_from_either_manager_appears_nowhere(
    aws: Any,
    moto_url: str,
    fault_server: FaultServer,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """The canary read from moto and from the Google API, sent, refused (401, echoed in the body),
    failing upstream (500 quoting it): it is in no log line, event, error chain or repr."""
    name = _name(request)
    aws.create_secret(Name=name, SecretString=CANARY)  # before logging is captured: the test's own call
    caplog.set_level(logging.DEBUG)
    secrets = GcpSecrets()
    secrets.add_version("canary-proj", "canary", CANARY)
    secrets.install(fault_server, "canary-proj", "canary")
    fault_server.route("*", "/401", Fault.status(401, json={"detail": f"key {CANARY} is not valid"}))
    fault_server.route("*", "/500", Fault.status(500, body=f"boom {CANARY}".encode()))
    fault_server.route("*", "/echo", Fault.echo())
    sources = [
        ts.aws_secrets_manager(name, region="us-east-1", endpoint_url=moto_url),
        ts.gcp_secret_manager("canary-proj", "canary", endpoint=fault_server.url),
    ]
    recorder = EventRecorder()
    texts: list[str] = []
    errors: list[BaseException] = []
    with structlog.testing.capture_logs() as captured:
        for source in sources:
            listeners = [recorder, StructlogListener(min_level=logging.DEBUG)]
            async with tether.Client(
                fault_server.url, auth=tether.ApiKey(source), retry=None, listeners=listeners
            ) as client:
                for path in ("/echo", "/401", "/500"):
                    try:
                        await client.get(path)
                    except TetherError as exc:
                        errors.append(exc)
                texts += [repr(client), repr(client.pipeline.policy("auth")), repr(source), str(source)]
                texts.append(repr(await source.get()))
    assert sum(CANARY in r.header("x-api-key") for r in fault_server.requests("GET", "/echo")) == 2
    for exc in errors:
        while exc is not None:
            texts += [str(exc), repr(exc)]
            exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    texts += [repr(e) for e in recorder.events] + [repr(e) for e in captured]
    texts += [caplog.text] + [repr(r.__dict__) for r in caplog.records]
    assert len(errors) == 4
    assert [t for t in texts if CANARY in t] == []
