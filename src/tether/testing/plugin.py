"""The tether pytest plugin (registered through the ``pytest11`` entry point).

Fixtures for users' own tests:

- ``tether_clock``: a fresh ``VirtualClock`` (pass it as ``Client(clock=...)``).
- ``tether_events``: an ``EventRecorder`` (pass it as ``Client(listeners=[...])``).
"""

from __future__ import annotations

import pytest

from tether.events import EventRecorder
from tether.testing._clock import VirtualClock


@pytest.fixture
def tether_clock() -> VirtualClock:
    """A virtual clock starting at 0."""
    return VirtualClock()


@pytest.fixture
def tether_events() -> EventRecorder:
    """A listener that records every event tether emits."""
    return EventRecorder()
