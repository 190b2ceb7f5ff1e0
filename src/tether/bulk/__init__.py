"""``tether.bulk``: the bulk job behind ``tether fetch``, as a library.

::

    import tether
    from tether.bulk import FetchJob, JobOptions, parse_destination, read_inputs

    async with tether.open("specs/dataapi.yaml", env="development") as api:
        job = FetchJob(api, "get_historical", parse_destination("out.jsonl"),
                       rows=read_inputs("hist.csv"), options=JobOptions(concurrency=4))
        report = await job.run()          # every page of every row; resumable; see report.ok

Every page of every input row goes through the integration's whole pipeline and is committed
with its checkpoint, so a killed job resumes at the last completed page and no record is
written twice or lost. See ``docs/guides/bulk-fetch.md``.
"""

from __future__ import annotations

from tether.bulk._inputs import MAX_INPUT_BYTES, InputRow, read_inputs
from tether.bulk._job import FetchJob, Incremental, JobOptions, JobProgress, JobReport, Parent, root_cause
from tether.bulk._store import Destination, JobStore, parse_destination

__all__ = [
    "MAX_INPUT_BYTES",
    "Destination",
    "FetchJob",
    "Incremental",
    "InputRow",
    "JobOptions",
    "JobProgress",
    "JobReport",
    "JobStore",
    "Parent",
    "parse_destination",
    "read_inputs",
    "root_cause",
]
