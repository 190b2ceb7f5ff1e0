"""Helpers for testing code that uses tether (and for tether's own tests).

- ``fast()``: the testing switch: every wait on tether's default clock ends at once (the clock
  jumps), restored when the block ends; the ``tether_fast`` fixture wraps a test in it.
- ``MockAPI``: ``tether.mock`` serving a spec in a thread, scripted per test (the ``tether_mock``
  fixture).
- ``VirtualClock``: a ``Clock`` whose time only moves when every task is waiting on it, so
  policy logic (backoff, breaker windows, rate-limit buckets) runs in virtual time.
- ``EventRecorder``: a listener that keeps every event.

The pytest plugin (``tether.testing.plugin``, on whenever tether is installed) adds the fixtures
``tether_mock``, ``tether_cassette``, ``tether_fast``, ``tether_clock`` and ``tether_events``, the
markers ``tether_mock``, ``tether_cassette`` and ``tether_fast``, and ``--tether-record``.
"""

from __future__ import annotations

from tether.events import EventRecorder
from tether.testing._clock import VirtualClock
from tether.testing._fast import FastMode, fast
from tether.testing._mock import MockAPI, bundled_spec

__all__ = ["EventRecorder", "FastMode", "MockAPI", "VirtualClock", "bundled_spec", "fast"]
