"""The tether pytest plugin (registered through the ``pytest11`` entry point: installed, it is on).

Fixtures for users' own tests:

- ``tether_mock``: ``tether.mock`` serving a spec (``@pytest.mark.tether_mock("dataapi")`` for a
  bundled spec, or a spec file; else the ``tether_spec`` ini option) on loopback for the test; a
  ``MockAPI`` handle: ``.url``, ``.fail(...)``, ``.rate_limit(...)``, ``.down()``, ``.respond(...)``
  (checked against the spec), ``.requests(...)``, ``.open(...)``, ``.stop()``.
- ``tether_cassette``: a ``tether.cassette.Cassette`` for the test, named after it
  (``<folder>/<module>/<test>.yaml``); the folder is the ``tether_cassettes`` ini option, else the
  spec's ``testing.unit_tests.fixtures_location``, else ``cassettes/`` beside the test file. The
  record mode is ``--tether-record`` (``once``, ``new``, ``none``, ``all``), else the marker's
  ``record=``, else the ``tether_record`` ini option, else ``none`` (replay only: CI never
  reaches the network by surprise).
- ``tether_fast``: turns waits off for the test (``tether.testing.fast()``; also the
  ``@pytest.mark.tether_fast`` marker) and gives its ``FastMode`` (``.sleeps``, ``.skipped``).
- ``tether_clock``: a fresh ``VirtualClock`` (pass it as ``Client(clock=...)``).
- ``tether_events``: an ``EventRecorder`` (pass it as ``Client(listeners=[...])``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.cassette import RECORD_MODES, Cassette
from tether.events import EventRecorder
from tether.spec import load
from tether.spec._testing import fixtures_folder
from tether.testing._clock import VirtualClock
from tether.testing._fast import FastMode, fast
from tether.testing._mock import MockAPI, bundled_spec

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tether")
    group.addoption(
        "--tether-record",
        action="store",
        default=None,
        choices=RECORD_MODES,
        help="record mode of tether_cassette cassettes: once, new, none (replay only) or all",
    )
    parser.addini("tether_record", "default record mode of tether_cassette (default: none)", default="none")
    parser.addini("tether_cassettes", "folder of tether_cassette cassettes, relative to the rootdir")
    parser.addini(
        "tether_spec", "the spec tether_mock serves when a test names none (a file or bundled name)"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tether_mock(spec, env=None): the spec (file, or bundled name such as 'dataapi') tether_mock serves",
    )
    config.addinivalue_line(
        "markers",
        "tether_cassette(path=None, record=None, **options): where tether_cassette's file is, its mode "
        "and tether.cassette.Cassette options",
    )
    config.addinivalue_line("markers", "tether_fast: skip every wait on tether's clock (tether.testing.fast)")


# --- the spec a test uses ------------------------------------------------------------------------------


def _spec_argument(request: pytest.FixtureRequest) -> tuple[str | None, str | None]:
    marker = request.node.get_closest_marker("tether_mock")
    if marker is not None:
        spec = marker.args[0] if marker.args else marker.kwargs.get("spec")
        return (str(spec) if spec is not None else None), marker.kwargs.get("env")
    configured = request.config.getini("tether_spec")
    return (str(configured) if configured else None), None


def _resolve_spec(request: pytest.FixtureRequest, spec: str) -> str:
    """A spec file beside the test, under the rootdir, or a bundled spec's name."""
    path = Path(spec)
    if path.is_absolute():
        return spec
    for base in (Path(str(request.node.path)).parent, Path(str(request.config.rootpath))):
        candidate = base / path
        if candidate.is_file():
            return str(candidate)
    if bundled_spec(spec) is not None:
        return spec
    raise pytest.UsageError(
        f"tether_mock: no spec file {spec!r} beside the test or under the rootdir, and no bundled spec "
        "of that name"
    )


@pytest.fixture
def tether_mock(request: pytest.FixtureRequest) -> Iterator[MockAPI]:
    """``tether.mock`` serving the test's spec on loopback; stopped after the test."""
    spec, env = _spec_argument(request)
    if spec is None:
        raise pytest.UsageError(
            "tether_mock needs a spec: @pytest.mark.tether_mock('dataapi') (a bundled spec) or "
            "@pytest.mark.tether_mock('specs/x.yaml'), or the tether_spec ini option"
        )
    mock = MockAPI.start(_resolve_spec(request, spec), env=env)
    try:
        yield mock
    finally:
        mock.stop()


# --- cassettes -----------------------------------------------------------------------------------------


def _cassette_folder(request: pytest.FixtureRequest) -> Path:
    configured = request.config.getini("tether_cassettes")
    if configured:
        return Path(str(request.config.rootpath)) / str(configured)
    spec, env = _spec_argument(request)
    if spec is not None:
        resolved = _resolve_spec(request, spec)
        loaded = load(bundled_spec(resolved) or resolved, env=env)
        folder = fixtures_folder(loaded)
        if folder is not None:
            return folder
    return Path(str(request.node.path)).parent / "cassettes"


def _record_mode(request: pytest.FixtureRequest, marker: pytest.Mark | None) -> Any:
    given = request.config.getoption("--tether-record")
    if given is not None:
        return given
    if marker is not None and marker.kwargs.get("record") is not None:
        return marker.kwargs["record"]
    mode = str(request.config.getini("tether_record") or "none")
    if mode not in RECORD_MODES:
        raise pytest.UsageError(f"tether_record must be one of {', '.join(RECORD_MODES)}, got {mode!r}")
    return mode


@pytest.fixture
def tether_cassette(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """A cassette for this test, named after it; saved after the test if something was recorded."""
    marker = request.node.get_closest_marker("tether_cassette")
    options = dict(marker.kwargs) if marker is not None else {}
    options.pop("record", None)
    path_option = options.pop("path", None) or (
        marker.args[0] if marker is not None and marker.args else None
    )
    if path_option is not None:
        path = Path(str(path_option))
        if not path.is_absolute():
            path = Path(str(request.node.path)).parent / path
    else:
        module = Path(str(request.node.path)).stem
        name = _UNSAFE.sub("-", request.node.name).strip("-")
        path = _cassette_folder(request) / module / f"{name}.yaml"
    cassette = Cassette(path, record=_record_mode(request, marker), **options)
    try:
        yield cassette
    finally:
        cassette.save()


# --- time --------------------------------------------------------------------------------------------


@pytest.fixture
def tether_fast() -> Iterator[FastMode]:
    """Every wait on tether's clock ends at once during the test (restored afterwards)."""
    with fast() as mode:
        yield mode


@pytest.fixture(autouse=True)
def _tether_fast_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("tether_fast") is None:
        yield
        return
    with fast():
        yield


@pytest.fixture
def tether_clock() -> VirtualClock:
    """A virtual clock starting at 0."""
    return VirtualClock()


@pytest.fixture
def tether_events() -> EventRecorder:
    """A listener that records every event tether emits."""
    return EventRecorder()
