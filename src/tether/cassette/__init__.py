"""``tether.cassette``: record a client's HTTP exchanges to a file and replay them offline.

::

    client = tether.Client("https://api.example.com/v1", cassette="tests/cassettes/fred.yaml")
    api = tether.open("specs/fred.yaml", cassette="fred.yaml", record="none")   # spec: fixtures_location

    from tether.cassette import Cassette
    cassette = Cassette("tests/cassettes/fred.yaml", record="new", match_on=("method", "path"),
                        filter_headers=["X-Session"], filter_fields=["ssn"])

Recording happens at the transport, under every policy, so a replay runs retries, the breaker,
the limiter, the cache, error mapping and validation exactly as the live run did, and opens no
socket. Credentials and every registered secret are scrubbed before anything is kept. Files are
YAML, one field per line (see ``tether.cassette._format``); ``tether verify`` checks them against
the spec.
"""

from __future__ import annotations

from tether.cassette._cassette import (
    DEFAULT_MATCH_ON,
    MATCHERS,
    RECORD_MODES,
    BeforeRecord,
    Cassette,
    Matcher,
    RecordMode,
    as_cassette,
)
from tether.cassette._format import (
    Body,
    CassetteData,
    CassetteRequest,
    CassetteResponse,
    Failure,
    Interaction,
    load,
    loads,
)
from tether.cassette._transport import CASSETTE_KEY, CassetteTransport
from tether.cassette._verify import Drift, VerifyReport, cassette_files, verify

__all__ = [
    "CASSETTE_KEY",
    "DEFAULT_MATCH_ON",
    "MATCHERS",
    "RECORD_MODES",
    "BeforeRecord",
    "Body",
    "Cassette",
    "CassetteData",
    "CassetteRequest",
    "CassetteResponse",
    "CassetteTransport",
    "Drift",
    "Failure",
    "Interaction",
    "Matcher",
    "RecordMode",
    "VerifyReport",
    "as_cassette",
    "cassette_files",
    "load",
    "loads",
    "verify",
]
