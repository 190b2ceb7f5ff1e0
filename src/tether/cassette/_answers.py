"""Recorded answers for ``tether mock``: a spec's mock that replies with what the cassettes hold.

With ``testing.unit_tests.mock_responses: true`` (or ``tether mock --cassettes DIR``), each route
whose endpoint has recordings answers a request with the recorded response of the same method,
path and query (several recordings of one request are played in turn, the last repeating); a
request with the same path but another query gets the first recording of that path; anything
else gets the route's example body. Each recorded answer carries ``X-Tether-Recording:
file:line``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from tether.cassette._format import CassetteResponse
from tether.cassette._verify import Router, read_recording
from tether.mock._faults import Fault, Incoming
from tether.mock._spec import MockRoute
from tether.spec._model import Spec

__all__ = ["RECORDING_HEADER", "answering_routes"]

RECORDING_HEADER: Final = "X-Tether-Recording"
_DROPPED: Final = frozenset({"content-length", "transfer-encoding", "content-encoding", "connection", "date"})


def _fault(response: CassetteResponse, where: str) -> Fault:
    headers = [(k, v) for k, v in response.headers if k.lower() not in _DROPPED]
    headers.append((RECORDING_HEADER, where))
    body = response.body.to_bytes()
    if response.status >= 400:
        return Fault.status(response.status, body=body, headers=headers)
    return Fault.ok(body=body, status=response.status, headers=headers)


def _key(path: str, query: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return path.rstrip("/"), tuple(sorted(parse_qsl(query, keep_blank_values=True)))


@dataclass
class _Answers:
    """One endpoint's recorded answers by request, and the example to fall back to."""

    fallback: Fault
    by_request: dict[tuple[str, tuple[tuple[str, str], ...]], list[Fault]] = field(default_factory=dict)
    by_path: dict[str, Fault] = field(default_factory=dict)
    served: dict[tuple[str, tuple[tuple[str, str], ...]], int] = field(default_factory=dict)

    def __call__(self, incoming: Incoming) -> Fault:
        key = _key(incoming.path, incoming.query)
        faults = self.by_request.get(key)
        if faults:
            turn = self.served.get(key, 0)
            self.served[key] = turn + 1
            return faults[min(turn, len(faults) - 1)]
        return self.by_path.get(key[0], self.fallback)


def answering_routes(
    spec: Spec, routes: Iterable[MockRoute], files: Iterable[Path]
) -> tuple[list[MockRoute], int]:
    """``routes`` with recorded answers where the cassettes in ``files`` have some, and how many
    recorded answers there are."""
    router = Router(spec)
    routes = list(routes)
    answers = {r.endpoint: _Answers(r.responses[0]) for r in routes}
    count = 0
    for path in files:
        recording = read_recording(path)
        base_path = urlsplit(recording.base_url).path if recording.base_url else router.prefix
        for interaction in recording.interactions:
            request, response = interaction.request, interaction.response
            if response is None:
                continue
            found = router.find(request.method, request.url, recording.base_url)
            if found is None or found[0] not in answers:
                continue
            parts = urlsplit(request.url)
            full = parts.path if parts.scheme else base_path.rstrip("/") + "/" + parts.path.lstrip("/")
            fault = _fault(response, f"{path.name}:{interaction.line}")
            target = answers[found[0]]
            key = _key(full, parts.query)
            target.by_request.setdefault(key, []).append(fault)
            target.by_path.setdefault(key[0], fault)
            count += 1
    out = [
        dataclasses.replace(r, responses=(Fault.respond(answers[r.endpoint]),))
        if answers[r.endpoint].by_request
        else r
        for r in routes
    ]
    return out, count
