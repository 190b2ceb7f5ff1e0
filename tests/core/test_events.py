"""Events: frozen records, redacted fields, listeners, the structlog listener."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from structlog.testing import capture_logs

from tether import events as ev
from tether._redact import registry
from tether.events import Event, EventBus, EventRecorder
from tether.telemetry import StructlogListener, mask_processor


def test_event_is_frozen_and_fields_read_only() -> None:
    """An event cannot be changed after it is made."""
    event = Event.make(ev.RETRY_SCHEDULED, service="svc", attempt=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.fields["attempt"] = 3  # type: ignore[index]


def test_event_fields_are_redacted_when_made() -> None:
    """Credential-named fields, URLs with keys and registered secret values are masked in events."""
    with registry.isolated():
        registry.add("c4n4ry-v4lue")
        event = Event.make(
            ev.REQUEST_SENT,
            url="https://h/x?api_key=c4n4ry-v4lue",
            authorization="Bearer c4n4ry-v4lue",
            note="saw c4n4ry-v4lue",
            headers={"X-API-Key": "c4n4ry-v4lue", "Accept": "*/*"},
        )
        assert "c4n4ry-v4lue" not in repr(event)
        assert event.fields["headers"]["Accept"] == "*/*"


def test_bus_delivers_to_every_listener_in_order() -> None:
    """Every listener receives every event with the bus's service name."""
    first, second = EventRecorder(), EventRecorder()
    bus = EventBus([first, second], service="svc")
    bus.emit(ev.BREAKER_OPENED, endpoint="get_data", failures=5)
    assert first.names() == second.names() == [ev.BREAKER_OPENED]
    assert first.events[0].service == "svc"
    assert first.events[0].endpoint == "get_data"


def test_failing_listener_does_not_break_others(caplog: pytest.LogCaptureFixture) -> None:
    """A listener that raises is logged and the next listener still runs."""

    def broken(_: Event) -> None:
        raise RuntimeError("boom")

    recorder = EventRecorder()
    bus = EventBus([broken, recorder])
    with caplog.at_level(logging.ERROR, logger="tether.events"):
        bus.emit(ev.CACHE_HIT)
    assert recorder.names() == [ev.CACHE_HIT]
    assert "listener" in caplog.text


def test_bus_without_listeners_is_inactive() -> None:
    """A bus with no listeners reports itself inactive so hot paths can skip building events."""
    bus = EventBus()
    assert not bus.active
    recorder = EventRecorder()
    bus.add(recorder)
    assert bus.active
    bus.remove(recorder)
    assert not bus.active


def test_structlog_listener_logs_event_name_and_fields() -> None:
    """The structlog listener logs the event name as the message with its fields."""
    listener = StructlogListener()
    with capture_logs() as logs:
        listener(Event.make(ev.RETRY_SCHEDULED, service="svc", endpoint="e", attempt=2, delay=1.7))
    assert logs == [
        {
            "event": "retry.scheduled",
            "attempt": 2,
            "delay": 1.7,
            "service": "svc",
            "endpoint": "e",
            "log_level": "info",
        }
    ]


def test_structlog_listener_drops_events_below_min_level() -> None:
    """Events below min_level are not logged."""
    listener = StructlogListener(min_level=logging.INFO)
    with capture_logs() as logs:
        listener(Event.make(ev.REQUEST_SENT, level=logging.DEBUG))
    assert logs == []


def test_mask_processor_masks_user_log_lines() -> None:
    """The processor masks secrets in log lines that did not come from tether."""
    with registry.isolated():
        registry.add("pr0cess0r-secret")
        out = mask_processor(None, "info", {"event": "calling with pr0cess0r-secret", "token": "x"})
        assert out == {"event": "calling with ***", "token": "***"}
