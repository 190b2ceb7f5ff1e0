"""Secret managers as secret sources: AWS Secrets Manager and Google Cloud Secret Manager.

Both are optional extras (``pip install 'tether[aws]'`` brings boto3, ``'tether[gcp]'`` the
official ``google-cloud-secret-manager`` client); without them, making the source raises a
``SpecError`` that names the extra. Both behave like every other source: read lazily, cached,
re-read every ``refresh_interval`` (24 h by default) and after the server refused the credential
(a 401), with the value masked everywhere (``Secret``).

The vendors' clients are synchronous; each read runs in a worker thread so the event loop keeps
serving other calls. A failed read raises ``AuthenticationError`` naming the secret and the
service's error code (``ResourceNotFoundException``, ``NotFound`` …), never a value. botocore
logs whole response bodies at DEBUG; tether masks the secret fields in those lines.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import threading
from types import ModuleType
from typing import Any, Final

from tether._clock import Clock
from tether._units import Duration
from tether.auth._secrets import DEFAULT_REFRESH_INTERVAL, SecretSource
from tether.errors import AuthenticationError, SpecError, backend_cause

__all__ = [
    "AwsSecretsManagerSource",
    "GcpSecretManagerSource",
    "aws_secrets_manager",
    "crc32c",
    "gcp_secret_manager",
]


def _require(module: str, extra: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SpecError(
            f"{what} needs the optional dependency {module.split('.')[0]}: pip install 'tether[{extra}]'"
        ) from None


class _SecretFieldFilter(logging.Filter):
    """Masks Secrets Manager's value fields in botocore's DEBUG lines: botocore logs whole response
    bodies (``GetSecretValue``'s included) before tether has the value in hand to register it."""

    _FIELD: Final = re.compile(r'("Secret(?:String|Binary)"\s*:\s*")((?:[^"\\]|\\.)*)(")')

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is the logging module's business, not ours
            return True
        masked = self._FIELD.sub(r"\1***\3", text)
        if masked != text:
            record.msg, record.args = masked, ()
        return True


_BOTOCORE_LOGGERS: Final = ("botocore.parsers", "botocore.endpoint")
_filter_installed = False


def _mask_botocore_logs() -> None:
    global _filter_installed
    if not _filter_installed:
        _filter_installed = True
        for name in _BOTOCORE_LOGGERS:
            logging.getLogger(name).addFilter(_SecretFieldFilter())


def _pick(text: str, key: str | None, describe: str) -> str:
    """The whole secret, or the value of ``key`` when it holds a JSON object."""
    if key is None:
        return text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise AuthenticationError(f"{describe} does not hold a JSON object, so it has no key {key!r}")
    if key not in data:
        raise AuthenticationError(f"key {key!r} not found in {describe}")
    value = data[key]
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise AuthenticationError(f"key {key!r} in {describe} is not a single value")
    return str(value)


class AwsSecretsManagerSource(SecretSource):
    """A secret in AWS Secrets Manager (``GetSecretValue``), its ``AWSCURRENT`` version by default.

    ``region`` and ``endpoint_url`` go to the boto3 client (both also come from the usual AWS
    configuration: ``AWS_REGION``, ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` …); ``profile`` picks a
    named profile; ``key`` selects one field of a JSON secret (``{"api_key": "..."}``).
    """

    def __init__(
        self,
        name: str,
        *,
        region: str | None = None,
        key: str | None = None,
        version_stage: str = "AWSCURRENT",
        endpoint_url: str | None = None,
        profile: str | None = None,
        refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        if not name:
            raise ValueError("an AWS Secrets Manager secret needs its name or ARN")
        self._boto3 = _require("boto3", "aws", "tether.secret.aws_secrets_manager")
        self._botocore = importlib.import_module("botocore.exceptions")
        _mask_botocore_logs()
        super().__init__(refresh_interval=refresh_interval, clock=clock)
        self.name = name
        self.region = region
        self.key = key
        self.version_stage = version_stage
        self.endpoint_url = endpoint_url
        self.profile = profile
        self._client: Any = None
        self._client_lock = threading.Lock()

    def describe(self) -> str:
        where = f" in {self.region}" if self.region else ""
        field = f" (key {self.key})" if self.key else ""
        return f"AWS Secrets Manager secret {self.name!r}{where}{field}"

    def _boto_client(self) -> Any:
        with self._client_lock:  # boto3 clients are thread-safe once made; making one is not
            if self._client is None:
                session = self._boto3.session.Session(profile_name=self.profile, region_name=self.region)
                self._client = session.client("secretsmanager", endpoint_url=self.endpoint_url)
            return self._client

    def _fetch(self) -> str:
        try:
            reply = self._boto_client().get_secret_value(SecretId=self.name, VersionStage=self.version_stage)
        except self._botocore.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise AuthenticationError(f"{self.describe()} could not be read: {code}") from backend_cause(exc)
        except self._botocore.BotoCoreError as exc:
            raise AuthenticationError(
                f"{self.describe()} could not be read ({type(exc).__name__})"
            ) from backend_cause(exc)
        text = reply.get("SecretString")
        if text is None:
            binary = reply.get("SecretBinary")
            try:
                text = bytes(binary).decode("utf-8") if binary is not None else None
            except (TypeError, UnicodeDecodeError):
                text = None
            if text is None:
                raise AuthenticationError(f"{self.describe()} holds no text value")
        return _pick(str(text), self.key, self.describe()).strip()

    async def _read(self) -> str:
        return await asyncio.to_thread(self._fetch)


# --- Google Cloud -------------------------------------------------------------------------------

_CRC32C_POLY: Final = 0x82F63B78


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE: Final = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Secret Manager sends with a payload (``dataCrc32c``)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class GcpSecretManagerSource(SecretSource):
    """A secret version in Google Cloud Secret Manager (``AccessSecretVersion``), ``latest`` by
    default, through the official client over its REST transport.

    ``endpoint`` replaces the API's address (a regional or private endpoint, or an emulator:
    ``http://127.0.0.1:8085``); a plain ``http://`` endpoint is called without credentials, since
    no token belongs on an unencrypted connection. ``credentials`` are google-auth credentials
    (default: Application Default Credentials). ``key`` selects one field of a JSON secret. The
    payload's CRC-32C checksum is verified when the service sends one.
    """

    def __init__(
        self,
        project: str,
        name: str,
        *,
        version: str = "latest",
        key: str | None = None,
        endpoint: str | None = None,
        credentials: Any = None,
        refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        if not project or not name:
            raise ValueError("a Google Cloud Secret Manager secret needs its project and name")
        self._secretmanager = _require(
            "google.cloud.secretmanager", "gcp", "tether.secret.gcp_secret_manager"
        )
        self._errors = importlib.import_module("google.api_core.exceptions")
        self._auth_errors = importlib.import_module("google.auth.exceptions")
        super().__init__(refresh_interval=refresh_interval, clock=clock)
        self.project = project
        self.name = name
        self.version = str(version)
        self.key = key
        self.endpoint = endpoint
        self._credentials = credentials
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def resource(self) -> str:
        """``projects/<project>/secrets/<name>/versions/<version>``."""
        return f"projects/{self.project}/secrets/{self.name}/versions/{self.version}"

    def describe(self) -> str:
        field = f" (key {self.key})" if self.key else ""
        return f"Google Cloud secret {self.resource}{field}"

    def _gcp_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                credentials = self._credentials
                if credentials is None and self.endpoint is not None and self.endpoint.startswith("http://"):
                    credentials = importlib.import_module("google.auth.credentials").AnonymousCredentials()
                options = {"api_endpoint": self.endpoint} if self.endpoint else None
                self._client = self._secretmanager.SecretManagerServiceClient(
                    credentials=credentials, transport="rest", client_options=options
                )
            return self._client

    def _fetch(self) -> str:
        try:
            reply = self._gcp_client().access_secret_version(name=self.resource)
        except self._errors.GoogleAPICallError as exc:
            raise AuthenticationError(
                f"{self.describe()} could not be read: {type(exc).__name__}"
            ) from backend_cause(exc)
        except (self._auth_errors.GoogleAuthError, self._errors.GoogleAPIError, OSError) as exc:
            raise AuthenticationError(
                f"{self.describe()} could not be read ({type(exc).__name__})"
            ) from backend_cause(exc)
        data: bytes = bytes(reply.payload.data)
        expected = reply.payload.data_crc32c
        if expected is not None and int(expected) != 0 and crc32c(data) != int(expected):
            raise AuthenticationError(f"{self.describe()}: the payload does not match its CRC-32C checksum")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationError(f"{self.describe()} holds bytes that are not UTF-8 text") from None
        return _pick(text, self.key, self.describe()).strip()

    async def _read(self) -> str:
        return await asyncio.to_thread(self._fetch)


def aws_secrets_manager(
    name: str,
    *,
    region: str | None = None,
    key: str | None = None,
    version_stage: str = "AWSCURRENT",
    endpoint_url: str | None = None,
    profile: str | None = None,
    refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
    clock: Clock | None = None,
) -> AwsSecretsManagerSource:
    """The secret ``name`` (or ARN) in AWS Secrets Manager; needs ``pip install 'tether[aws]'``."""
    return AwsSecretsManagerSource(
        name,
        region=region,
        key=key,
        version_stage=version_stage,
        endpoint_url=endpoint_url,
        profile=profile,
        refresh_interval=refresh_interval,
        clock=clock,
    )


def gcp_secret_manager(
    project: str,
    name: str,
    *,
    version: str = "latest",
    key: str | None = None,
    endpoint: str | None = None,
    credentials: Any = None,
    refresh_interval: Duration | None = DEFAULT_REFRESH_INTERVAL,
    clock: Clock | None = None,
) -> GcpSecretManagerSource:
    """The secret ``name`` of ``project`` in Google Cloud Secret Manager; needs
    ``pip install 'tether[gcp]'``."""
    return GcpSecretManagerSource(
        project,
        name,
        version=version,
        key=key,
        endpoint=endpoint,
        credentials=credentials,
        refresh_interval=refresh_interval,
        clock=clock,
    )
