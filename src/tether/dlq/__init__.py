"""``tether.dlq``: the dead-letter queue — failed work kept durably and replayed later.

::

    from tether.dlq import SQLiteDLQ, Replayer

    dlq = SQLiteDLQ("tether-dlq.db")
    client = tether.Client(url, policies=[tether.Fallback(Enqueue(dlq, methods={"POST"}))])
    ...
    await Replayer(client, dlq).run_once()   # replay due entries: 1 s, 2 s, 4 s ± 20 %

Backends implement ``DLQBackend`` (``tether.dlq._protocol``): ``MemoryDLQ`` (tests, one
process), ``SQLiteDLQ`` (durable, one machine), and ``RedisDLQ`` (shared by many workers;
sorted sets hold due times and leases).
"""

from __future__ import annotations

from tether.dlq._capture import entry_id_for, unit_of_work
from tether.dlq._protocol import DeadLetter, DLQBackend, DLQCounts, EntryStatus, StoredRequest, new_entry_id
from tether.dlq._replay import Replayer, ReplayReport, ReplaySchedule, mark_dlq, open_dlq
from tether.dlq.memory import MemoryDLQ
from tether.dlq.sqlite import SQLiteDLQ

__all__ = [
    "DLQBackend",
    "DLQCounts",
    "DeadLetter",
    "EntryStatus",
    "MemoryDLQ",
    "ReplayReport",
    "ReplaySchedule",
    "Replayer",
    "SQLiteDLQ",
    "StoredRequest",
    "entry_id_for",
    "mark_dlq",
    "new_entry_id",
    "open_dlq",
    "unit_of_work",
]
