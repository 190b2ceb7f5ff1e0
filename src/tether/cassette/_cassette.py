"""``Cassette``: a file of recorded exchanges, how they are matched, and when new ones are recorded.

Record modes (the names VCR users know, shortened):

=========  ==========================================================================================
``once``   replay when the file exists (a request with no recorded answer is an error); record
           everything when it does not
``new``    replay what is recorded, record (and append) what is not
``none``   replay only; a missing file, or a request with no recorded answer, is an error
``all``    never replay: send everything and record it, replacing the file
=========  ==========================================================================================

A live request is scrubbed exactly as a recorded one was, then compared on ``match_on``: by
default its method, its URL (credentials masked; the query compared as a set of pairs; a URL under
the client's base URL compared relative to it, so a cassette recorded against a mock or a sandbox
replays against any base URL) and its body (JSON by value). Each recorded answer is played once,
in order, so a request that was retried while recording gets its failures and then its success
again; ``allow_playback_repeats=True`` lets an answer be played again.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args
from urllib.parse import parse_qsl, urlsplit

from tether._redact import redact_text
from tether.cassette._format import CassetteData, CassetteRequest, Interaction, dump, load
from tether.cassette._scrub import Filters, Scrubber
from tether.errors import CassetteError

__all__ = [
    "DEFAULT_MATCH_ON",
    "MATCHERS",
    "RECORD_MODES",
    "BeforeRecord",
    "Cassette",
    "Matcher",
    "RecordMode",
]

RecordMode = Literal["once", "new", "none", "all"]
RECORD_MODES: Final[tuple[str, ...]] = get_args(RecordMode)

Matcher = Callable[[CassetteRequest, CassetteRequest], bool]
"""A custom matcher: ``(live, recorded) -> bool``, both scrubbed (URLs as the cassette keeps them)."""

BeforeRecord = Callable[[Interaction], Interaction | None]
"""Runs on every interaction before it is kept (after scrubbing), and on every live request
(as an ``Interaction`` without a response) before it is matched: return it changed, or ``None``
to drop it (a dropped live request is sent, or refused, as if it had no recording)."""

#: What a live request is compared on by default.
DEFAULT_MATCH_ON: Final = ("method", "url", "body")


def _origin(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    if not parts.scheme:
        return "", "", ""
    return parts.scheme, parts.hostname or "", str(parts.port or "")


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path if parts.scheme else url.split("?", 1)[0]


def _query(url: str) -> list[tuple[str, str]]:
    return sorted(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _same_url(a: CassetteRequest, b: CassetteRequest) -> bool:
    return (
        _origin(a.url) == _origin(b.url) and _path(a.url) == _path(b.url) and _query(a.url) == _query(b.url)
    )


#: The matchers ``match_on`` may name.
MATCHERS: Final[dict[str, Matcher]] = {
    "method": lambda a, b: a.method == b.method,
    "url": _same_url,
    "scheme": lambda a, b: _origin(a.url)[0] == _origin(b.url)[0],
    "host": lambda a, b: _origin(a.url)[1] == _origin(b.url)[1],
    "port": lambda a, b: _origin(a.url)[2] == _origin(b.url)[2],
    "path": lambda a, b: _path(a.url) == _path(b.url),
    "query": lambda a, b: _query(a.url) == _query(b.url),
    "body": lambda a, b: a.body.canonical() == b.body.canonical(),
}


def _differences(live: CassetteRequest, recorded: CassetteRequest, names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name == "method" and live.method != recorded.method:
            out.append(f"method {live.method} (recorded {recorded.method})")
        elif name in ("url", "scheme", "host", "port") and _origin(live.url) != _origin(recorded.url):
            out.append(
                f"origin {'://'.join(_origin(live.url)[:2]) or 'base URL'} (recorded "
                f"{'://'.join(_origin(recorded.url)[:2]) or 'base URL'})"
            )
        elif name in ("url", "path") and _path(live.url) != _path(recorded.url):
            out.append(f"path {_path(live.url)!r} (recorded {_path(recorded.url)!r})")
        elif name in ("url", "query") and _query(live.url) != _query(recorded.url):
            out.append(f"query {_query(live.url)} (recorded {_query(recorded.url)})")
        elif name == "body" and live.body.canonical() != recorded.body.canonical():
            out.append("body")
    return list(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class _Options:
    match_on: tuple[str | Matcher, ...]
    allow_playback_repeats: bool
    filters: Filters
    before_record: BeforeRecord | None


class Cassette:
    """Recorded exchanges in a YAML file, for ``Client(cassette=...)`` / ``tether.open(cassette=...)``.

    ``record`` is the mode (``once``, ``new``, ``none``, ``all``; see the module doc).
    ``match_on`` names what a live request must share with a recording (``method``, ``url``,
    ``scheme``, ``host``, ``port``, ``path``, ``query``, ``body``) or holds ``Matcher`` callables.
    ``filter_headers`` / ``filter_params`` / ``filter_fields`` add header, query/form parameter and
    JSON field names to scrub; ``before_record`` (a ``BeforeRecord``) edits or drops interactions.

    The file is read on first use and written (atomically, only when something new was recorded)
    when the client closes, or by ``save()``. One cassette may serve several clients.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        record: RecordMode = "once",
        match_on: Iterable[str | Matcher] = DEFAULT_MATCH_ON,
        allow_playback_repeats: bool = False,
        filter_headers: Iterable[str] = (),
        filter_params: Iterable[str] = (),
        filter_fields: Iterable[str] = (),
        before_record: BeforeRecord | None = None,
    ) -> None:
        if record not in RECORD_MODES:
            raise ValueError(f"record must be one of {', '.join(RECORD_MODES)}, got {record!r}")
        matchers = tuple(match_on)
        if not matchers:
            raise ValueError("match_on needs at least one matcher")
        for m in matchers:
            if isinstance(m, str) and m not in MATCHERS:
                raise ValueError(f"unknown matcher {m!r}; matchers: {', '.join(MATCHERS)} or a callable")
            if not isinstance(m, str) and not callable(m):
                raise ValueError(f"a matcher is a name or a callable, got {m!r}")
        self.path = Path(path)
        self.record: RecordMode = record
        self._options = _Options(
            matchers,
            bool(allow_playback_repeats),
            Filters.of(filter_headers, filter_params, filter_fields),
            before_record,
        )
        #: Scrubs what this cassette keeps; remembers the values it masked by name.
        self.scrubber = Scrubber(self._options.filters)
        self._data: CassetteData | None = None
        self._existed = False
        self._played: set[int] = set()
        self._dirty = False

    # --- configuration ------------------------------------------------------------------------

    @property
    def filters(self) -> Filters:
        return self._options.filters

    @property
    def match_on(self) -> tuple[str | Matcher, ...]:
        return self._options.match_on

    @property
    def before_record(self) -> BeforeRecord | None:
        return self._options.before_record

    def with_record(self, record: RecordMode) -> Cassette:
        """A new cassette on the same file with the same options and another record mode."""
        other = Cassette(self.path, record=record)
        other._options = self._options
        other.scrubber = Scrubber(self._options.filters)
        return other

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, record={self.record!r})"

    # --- state --------------------------------------------------------------------------------

    def _loaded(self) -> CassetteData:
        data = self._data
        if data is None:
            self._existed = self.path.is_file()
            if self.record == "all" or not self._existed:
                if self.record == "none":
                    raise CassetteError(
                        f"cassette {self.path} does not exist and record='none' replays only: "
                        "record it first (record='once', or --tether-record=once in pytest)"
                    )
                data = CassetteData()
            else:
                data = load(self.path)
            self._data = data
        return data

    @property
    def interactions(self) -> tuple[Interaction, ...]:
        """Every interaction: the recorded ones (unless ``record='all'``), then the new ones."""
        return tuple(self._loaded().interactions)

    @property
    def base_url(self) -> str | None:
        """The base URL the recorded relative URLs are relative to."""
        return self._loaded().base_url

    @property
    def recording(self) -> bool:
        """Whether a request with no recorded answer is sent and recorded (else it is an error)."""
        self._loaded()
        return self.record in ("new", "all") or (self.record == "once" and not self._existed)

    @property
    def play_count(self) -> int:
        """How many recorded answers have been played."""
        return len(self._played)

    @property
    def all_played(self) -> bool:
        """Whether every interaction that was in the file has been played."""
        data = self._loaded()
        recorded = len(data.interactions) if self._existed and self.record != "all" else 0
        return all(i in self._played for i in range(recorded)) if recorded else True

    def unplayed(self) -> list[Interaction]:
        """Recorded interactions not played yet."""
        return [i for n, i in enumerate(self._loaded().interactions) if n not in self._played]

    # --- matching -----------------------------------------------------------------------------

    def _matches(self, live: CassetteRequest, recorded: CassetteRequest) -> bool:
        for matcher in self._options.match_on:
            check = MATCHERS[matcher] if isinstance(matcher, str) else matcher
            if not check(live, recorded):
                return False
        return True

    def play(self, live: CassetteRequest) -> tuple[int, Interaction] | None:
        """The next recorded answer for ``live`` (marked played), or ``None``."""
        data = self._loaded()
        if self.record == "all":
            return None
        repeat: tuple[int, Interaction] | None = None
        for index, interaction in enumerate(data.interactions):
            if not self._matches(live, interaction.request):
                continue
            if index not in self._played:
                self._played.add(index)
                return index, interaction
            repeat = (index, interaction)
        if repeat is not None and self._options.allow_playback_repeats:
            return repeat
        return None

    def add(self, interaction: Interaction) -> None:
        """Keep a newly recorded interaction (it is written by the next ``save()``)."""
        data = self._loaded()
        data.interactions.append(interaction)
        self._played.add(len(data.interactions) - 1)  # a new recording is not replayed to itself
        self._dirty = True

    def set_origin(self, *, service: str | None, base_url: str | None) -> None:
        """Record what relative URLs are relative to (kept from the file when it has one)."""
        data = self._loaded()
        if data.base_url is None and base_url is not None:
            data.base_url = base_url
            self._dirty = self._dirty or bool(data.interactions)
        if data.service is None and service is not None:
            data.service = service

    def no_match(self, live: CassetteRequest) -> CassetteError:
        """The error for a request with no recorded answer, naming the closest recorded one."""
        data = self._loaded()
        shown = redact_text(live.describe())
        where = f"cassette {self.path} (record={self.record!r})"
        if not data.interactions:
            return CassetteError(f"no recorded answer for {shown} in {where}: the cassette is empty")
        names = [m for m in self._options.match_on if isinstance(m, str)]
        same = [n for n, i in enumerate(data.interactions) if self._matches(live, i.request)]
        if same:
            return CassetteError(
                f"every recorded answer for {shown} in {where} was already played ({len(same)}): the "
                "request was made more often than while recording (allow_playback_repeats=True plays "
                "them again)"
            )

        def score(item: tuple[int, Interaction]) -> tuple[int, float]:
            recorded = item[1].request
            agreed = sum(1 for n in names if MATCHERS[n](live, recorded))
            return agreed, difflib.SequenceMatcher(None, live.describe(), recorded.describe()).ratio()

        index, closest = max(enumerate(data.interactions), key=score)
        differs = _differences(live, closest.request, names or list(DEFAULT_MATCH_ON))
        line = f"{self.path}:{closest.line}" if closest.line is not None else str(self.path)
        detail = f"; it differs in {', '.join(differs)}" if differs else ""
        return CassetteError(
            f"no recorded answer for {shown} in {where}; closest recorded: interactions[{index}] "
            f"{redact_text(closest.request.describe())} at {line}{detail}"
        )

    # --- writing ------------------------------------------------------------------------------

    def save(self) -> bool:
        """Write the file if something new was recorded (atomically: a temp file, then a rename).
        Returns whether it wrote."""
        data = self._data
        if data is None or not self._dirty:
            return False
        text = self.scrubber.text(dump(data))  # a last pass: no secret survives anywhere
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False
        return True

    def reload(self) -> Cassette:
        """A fresh cassette on the same file, mode and options (nothing played)."""
        return self.with_record(self.record)


def as_cassette(cassette: Cassette | str | os.PathLike[str], record: RecordMode | None = None) -> Cassette:
    """A ``Cassette`` from ``Client(cassette=..., record=...)``'s arguments."""
    if isinstance(cassette, Cassette):
        if record is not None and record != cassette.record:
            raise ValueError(
                f"record={record!r} conflicts with {cassette!r}: set the mode on the Cassette "
                "(or use cassette.with_record(...))"
            )
        return cassette
    if not isinstance(cassette, str | os.PathLike):
        raise TypeError(
            f"cassette must be a path or a tether.cassette.Cassette, got {type(cassette).__name__}"
        )
    return Cassette(cassette, record=record or "once")
