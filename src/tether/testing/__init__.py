"""Helpers for testing code that uses tether (and for tether's own tests).

- ``VirtualClock``: a ``Clock`` whose time only moves when every task is waiting on it, so
  policy logic (backoff, breaker windows, rate-limit buckets) runs in virtual time.
- ``EventRecorder``: a listener that keeps every event.
"""

from __future__ import annotations

from tether.events import EventRecorder
from tether.testing._clock import VirtualClock

__all__ = ["EventRecorder", "VirtualClock"]
