"""Telemetry listeners: structured logs (structlog), Prometheus metrics, OpenTelemetry traces.

They are event listeners (``tether.events.Listener``): pass them to ``Client(listeners=[...])``.
Policies never log or count on their own.
"""

from __future__ import annotations

from tether.telemetry._logging import StructlogListener, mask_processor
from tether.telemetry._prometheus import PrometheusListener

__all__ = ["PrometheusListener", "StructlogListener", "mask_processor"]
