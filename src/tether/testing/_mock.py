"""``MockAPI``: ``tether.mock`` serving a spec in a thread, with a handle to script it per test.

::

    mock = MockAPI.start("dataapi")                  # a bundled spec, or a spec file
    mock.url                                         # http://127.0.0.1:PORT/v1 (the spec's base path)
    mock.fail("get_data", [500, 500, 200])           # two 500s, then the normal answer (repeating)
    mock.rate_limit("get_data", "5/minute")          # the server enforces a limit (429 over it)
    mock.respond("get_data", json={...})             # checked against the spec's response schema
    mock.down()                                      # every endpoint resets the connection
    mock.requests("get_data")                        # what the server received
    mock.stop()

The server runs on its own event loop in a daemon thread, so the handle works from sync and async
tests alike and a test's own clock or loop never slows it. A bundled spec (``dataapi``) is served
by its provider's mock (live answers that depend on the request: identifiers, pages); any other
spec by ``tether.mock.routes_for`` (example bodies made from the response schemas).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from tether.errors import SpecError, ValidationError
from tether.integration import Integration
from tether.integration import open as open_integration
from tether.mock import Fault, FaultServer, RecordedRequest
from tether.mock._spec import example_for, mock_path, routes_for
from tether.spec import Spec, load
from tether.spec._endpoint import Endpoint
from tether.spec._testing import error_schema
from tether.validation import first_violation

__all__ = ["BUNDLED_SPECS", "MockAPI", "bundled_spec"]

T = TypeVar("T")

#: Specs that ship with tether, by name: the package holding ``spec.yaml`` and its mock.
BUNDLED_SPECS: Final[Mapping[str, str]] = {"dataapi": "tether.dataapi"}
#: The environment a bundled spec is served as (its base path is the mock's).
_BUNDLED_ENV: Final = "development"
_CALL_TIMEOUT: Final = 10.0
_DOWN_KINDS: Final = ("reset", "503", "timeout")


def bundled_spec(name: str) -> Path | None:
    """The path of a bundled spec by name (``dataapi``), else ``None``."""
    package = BUNDLED_SPECS.get(name)
    if package is None:
        return None
    return Path(str(resources.files(package).joinpath("spec.yaml")))


class _LoopThread:
    """An event loop running in a daemon thread; ``call`` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tether-mock", daemon=True)
        self._thread.start()

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await make()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(_CALL_TIMEOUT)

    def run(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self.call(run)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(_CALL_TIMEOUT)
        self.loop.close()


class MockAPI:
    """A started mock of one spec's API (build it with ``MockAPI.start``)."""

    def __init__(
        self, spec: Spec, server: FaultServer, thread: _LoopThread, normal: dict[str, Fault]
    ) -> None:
        self.spec = spec
        self._server = server
        self._thread = thread
        self._normal = normal
        self._routes: dict[str, tuple[tuple[Fault, ...], dict[str, Any]]] = {
            name: ((fault,), {}) for name, fault in normal.items()
        }
        self._down: str | None = None
        self.url = server.url + urlsplit(spec.base_url).path.rstrip("/")
        """The API's base URL on the mock (the spec's base path kept): pass it as ``base_url``."""
        self.origin = server.url
        """``http://127.0.0.1:PORT``."""

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def start(cls, spec: str | os.PathLike[str] | Spec, *, env: str | None = None) -> MockAPI:
        """Serve ``spec`` (a ``Spec``, a spec file, or a bundled spec's name) on a free loopback port."""
        bundled = isinstance(spec, str) and bundled_spec(spec) is not None and not Path(spec).is_file()
        if isinstance(spec, Spec):
            loaded = spec
        elif bundled:
            path = bundled_spec(str(spec))
            assert path is not None
            loaded = load(path, env=env or _BUNDLED_ENV)
        else:
            loaded = load(spec, env=env)
        thread = _LoopThread()
        try:
            server, normal = thread.call(lambda: _serve(loaded, bundled=bundled))
        except BaseException:
            thread.close()
            raise
        return cls(loaded, server, thread, normal)

    def stop(self) -> None:
        """Stop serving (connections are refused from now on) and end the thread. Idempotent."""
        if self._thread.loop.is_closed():
            return
        try:
            self._thread.call(self._server.stop)
        finally:
            self._thread.close()

    @property
    def running(self) -> bool:
        return not self._thread.loop.is_closed()

    def __enter__(self) -> MockAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"MockAPI({self.spec.service.name!r}, {state})"

    def open(self, **overrides: Any) -> Integration:
        """``tether.open`` of this spec against the mock. Secrets the spec reads from unset
        environment variables get placeholder values (the mock checks no credential)."""
        overrides.setdefault("base_url", self.url)
        environ = dict(os.environ)
        for name in _secret_variables(self.spec):
            environ.setdefault(name, f"test-{name.lower()}")
        overrides.setdefault("environ", environ)
        return open_integration(self.spec, **overrides)

    # --- scripting ----------------------------------------------------------------------------

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.spec.endpoints.get(name)
        if endpoint is None:
            known = ", ".join(self.spec.endpoints) or "none"
            raise SpecError(f"unknown endpoint {name!r}; endpoints: {known}", service=self.spec.service.name)
        return endpoint

    def _install(self, name: str) -> None:
        endpoint = self._endpoint(name)
        faults, options = self._routes[name]
        if self._down is not None:
            faults, options = (_down_fault(self._down),), {}
        path = mock_path(self.spec, endpoint)
        self._thread.run(lambda: self._server.route(endpoint.method, path, *faults, **options))

    def _fault(self, name: str, item: int | str | Fault, retry_after: int) -> Fault:
        if isinstance(item, Fault):
            return item
        endpoint = self._endpoint(name)
        if isinstance(item, str) and not item.isdigit():
            kinds = {"reset": Fault.reset, "timeout": Fault.hang}
            if item not in kinds:
                raise ValueError(
                    f"unknown fault {item!r}: a status, 'reset', 'timeout' or a tether.mock.Fault"
                )
            return kinds[item]()
        status = int(item)
        success = endpoint.response.success.status if endpoint.response is not None else (200,)
        if status in success or (status == 200 and not success):
            return self._normal[name]
        if status == 429:
            return Fault.rate_limited(retry_after=retry_after)
        if 200 <= status < 400:
            return Fault.ok(status=status)
        schema = error_schema(endpoint, status)
        body = example_for(schema) if schema is not None else {"error": "injected fault", "status": status}
        return Fault.status(status, json=body)

    def fail(self, endpoint: str, script: Sequence[int | str | Fault], *, retry_after: int = 1) -> None:
        """Answer ``endpoint`` with ``script`` in order, the last entry repeating: a status (the
        endpoint's success status gives its normal answer, 429 adds ``Retry-After: retry_after``,
        an error status gets the spec's error example), ``"reset"``, ``"timeout"`` or a ``Fault``."""
        if isinstance(script, str | int) or not script:
            raise ValueError("fail() takes a non-empty list, e.g. [500, 500, 200]")
        faults = tuple(self._fault(endpoint, item, retry_after) for item in script)
        self._routes[endpoint] = (faults, self._routes[endpoint][1])
        self._install(endpoint)

    def rate_limit(
        self, endpoint: str | None = None, limit: str = "5/minute", *, burst: int | None = None
    ) -> None:
        """Make the server enforce ``limit`` (``"5/minute"``, ``"10/second"``) on ``endpoint`` (every
        endpoint when ``None``): 429 with ``Retry-After`` and ``X-RateLimit-*`` over it."""
        for name in [endpoint] if endpoint is not None else list(self.spec.endpoints):
            faults, _ = self._routes[name]
            self._routes[name] = (faults, {"rate_limit": limit, "burst": burst})
            self._install(name)

    def respond(
        self,
        endpoint: str,
        json: Any = None,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``endpoint`` with this response from now on. The body is checked against the
        spec's schema for that status first (the success schema, or the documented error's), so a
        test cannot declare an answer the real API would never send: a ``ValidationError`` names
        the JSON path and the schema rule broken."""
        spec_endpoint = self._endpoint(endpoint)
        success = spec_endpoint.response.success if spec_endpoint.response is not None else None
        code = status if status is not None else (success.status[0] if success is not None else 200)
        if success is not None and code in success.status:
            schema = success.schema_
        else:
            schema = error_schema(spec_endpoint, code)
        if schema is not None:
            violation = first_violation(schema, json)
            if violation is not None:
                raise ValidationError(
                    f"tether_mock.respond({endpoint!r}, status={code}): the body breaks the spec's "
                    f"response schema at {violation.describe()}",
                    service=self.spec.service.name,
                    endpoint=endpoint,
                    details=[{"path": violation.path, "rule": violation.rule, "message": violation.message}],
                )
        fault = (
            Fault.ok(json=json, status=code, headers=headers)
            if code < 400
            else Fault.status(code, json=json, headers=headers)
        )
        self._routes[endpoint] = ((fault,), self._routes[endpoint][1])
        self._install(endpoint)

    def down(self, kind: str = "reset") -> None:
        """Make every endpoint fail: ``reset`` (the connection is reset: ``ConnectionError``),
        ``503`` or ``timeout`` (no answer). ``up()`` restores the scripts."""
        if kind not in _DOWN_KINDS:
            raise ValueError(f"down() takes one of {', '.join(_DOWN_KINDS)}, got {kind!r}")
        self._down = kind
        for name in self.spec.endpoints:
            self._install(name)

    def up(self) -> None:
        """Undo ``down()``: every endpoint answers with its script again."""
        self._down = None
        for name in self.spec.endpoints:
            self._install(name)

    def reset(self) -> None:
        """Back to the normal answers, no limits, an empty log."""
        self._down = None
        self._routes = {name: ((fault,), {}) for name, fault in self._normal.items()}
        for name in self.spec.endpoints:
            self._install(name)
        self._thread.run(self._server.clear_log)

    # --- the request log ----------------------------------------------------------------------

    @property
    def log(self) -> list[RecordedRequest]:
        """Every request the mock received, in arrival order."""
        return self._thread.run(lambda: list(self._server.log)) if self.running else list(self._server.log)

    def requests(self, endpoint: str | None = None) -> list[RecordedRequest]:
        """The requests ``endpoint`` received (every request when ``None``)."""
        if endpoint is None:
            return self.log
        spec_endpoint = self._endpoint(endpoint)
        path = mock_path(self.spec, spec_endpoint)
        if not self.running:
            return self._server.requests(spec_endpoint.method, path)
        return self._thread.run(lambda: self._server.requests(spec_endpoint.method, path))

    def clear_log(self) -> None:
        self._thread.run(self._server.clear_log)


def _down_fault(kind: str) -> Fault:
    if kind == "503":
        return Fault.status(503, json={"error": "service unavailable", "status": 503})
    if kind == "timeout":
        return Fault.hang()
    return Fault.reset()


def _secret_variables(spec: Spec) -> Iterable[str]:
    section = spec.authentication
    if section is None:
        return ()
    config = section.config
    names: list[str] = []
    for key in ("secret", "client_secret", "password", "refresh_token"):
        ref = getattr(config, key, None)
        names.extend(getattr(ref, "variables", ()))
    return names


async def _serve(spec: Spec, *, bundled: bool) -> tuple[FaultServer, dict[str, Fault]]:
    normal: dict[str, Fault] = {}
    if bundled:
        from tether.dataapi import DataAPIMock

        server: FaultServer = DataAPIMock()
        for name in spec.endpoints:
            normal[name] = server.live(name)  # type: ignore[attr-defined]
    else:
        server = FaultServer()
        for route in routes_for(spec, enforce_limits=False):
            route.install(server)
            normal[route.endpoint] = route.responses[0]
    await server.start()
    return server, normal
