"""Telemetry listeners: structured logs (structlog), Prometheus metrics, OpenTelemetry traces.

Logs and metrics are event listeners (``tether.events.Listener``): pass them to
``Client(listeners=[...])``. Traces need the call's structure, so ``Tracing()`` is a policy:
``Client(policies=[Tracing()])``. Policies never log or count on their own.
"""

from __future__ import annotations

from tether.telemetry._alerts import AlertEvaluator, AlertRule
from tether.telemetry._audit import AuditLog
from tether.telemetry._logging import StructlogListener, mask_processor
from tether.telemetry._prometheus import PrometheusListener
from tether.telemetry._tracing import Tracing

__all__ = [
    "AlertEvaluator",
    "AlertRule",
    "AuditLog",
    "PrometheusListener",
    "StructlogListener",
    "Tracing",
    "mask_processor",
]
