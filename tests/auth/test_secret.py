"""The Secret type: hidden everywhere, revealed on purpose, compared in constant time."""

from __future__ import annotations

import copy
import io
import logging
import pickle

import pytest
import structlog

from tether._redact import redact_text
from tether.errors import AuthenticationError
from tether.secret import Secret
from tether.telemetry import mask_processor

VALUE = "sk-live-4f9a2c7e1b"


def test_repr_and_str_are_masked() -> None:
    """repr() and str() of a Secret show stars, not the value."""
    secret = Secret(VALUE)
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "***"
    assert VALUE not in repr([secret, {"k": secret}])


def test_formatting_is_masked() -> None:
    """f-strings, format specs and %-formatting print stars."""
    secret = Secret(VALUE)
    assert f"key={secret}" == "key=***"
    assert f"{secret!r}" == "Secret('***')"
    assert f"{secret:>20}" == "***"
    assert "%s" % secret == "***"  # noqa: UP031 - the old operator must be masked too
    assert "{}".format(secret) == "***"  # noqa: UP032


def test_reveal_returns_the_value_and_registers_it() -> None:
    """reveal() gives the value, which from then on is masked in any text tether redacts."""
    secret = Secret(VALUE)
    assert secret.reveal() == VALUE
    assert redact_text(f"server said: bad key {VALUE}") == "server said: bad key ***"


def test_exception_messages_built_from_a_secret_are_masked() -> None:
    """An error whose message embeds the secret (by mistake) prints it masked."""
    secret = Secret(VALUE)
    exc = AuthenticationError(f"refused key {secret.reveal()}")
    assert VALUE not in str(exc)
    assert VALUE not in repr(exc)
    plain = ValueError(f"wrapped {secret}")
    assert VALUE not in str(plain)


def test_equality_compares_values() -> None:
    """Secrets with the same value are equal (and hash alike); a Secret never equals a str."""
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret(VALUE + "x")
    assert Secret(VALUE) != VALUE
    assert hash(Secret(VALUE)) == hash(Secret(VALUE))
    assert len({Secret(VALUE), Secret(VALUE)}) == 1


def test_equality_uses_a_constant_time_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    """Equality goes through hmac.compare_digest (no early exit on the first differing byte)."""
    import tether.auth._secrets as module

    calls: list[tuple[bytes, bytes]] = []
    real = module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(module.hmac, "compare_digest", spy)
    assert Secret("aaaa-1") != Secret("aaaa-2")
    assert len(calls) == 1


def test_pickling_is_refused() -> None:
    """A Secret cannot be pickled (its value would end up in the bytes)."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE))


def test_copies_are_the_same_object() -> None:
    """copy and deepcopy keep the one immutable Secret."""
    secret = Secret(VALUE)
    assert copy.copy(secret) is secret
    assert copy.deepcopy({"s": secret})["s"] is secret


def test_a_secret_holds_only_text() -> None:
    """Non-str values are refused; wrapping a Secret keeps its value."""
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]
    assert Secret(Secret(VALUE)).reveal() == VALUE


def test_structlog_lines_show_no_secret() -> None:
    """A structlog line with a Secret field, or a revealed value, is rendered masked."""
    out = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[mask_processor, structlog.processors.KeyValueRenderer(key_order=["event"])],
    )
    secret = Secret(VALUE)
    log.info("calling", api_key=secret, note=f"with {secret.reveal()}", obj=secret)
    line = out.getvalue()
    assert VALUE not in line
    assert "***" in line


def test_structlog_capture_holds_the_masked_object() -> None:
    """Captured structlog events hold the Secret itself, whose every rendering is masked."""
    secret = Secret(VALUE)
    with structlog.testing.capture_logs() as captured:
        structlog.get_logger("t").warning("auth", credential=secret)
    assert captured[0]["credential"] is secret
    assert VALUE not in repr(captured)


def test_stdlib_logging_shows_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    """logging with a Secret argument renders stars."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("tether.test").debug("key %s / %r", Secret(VALUE), Secret(VALUE))
    assert VALUE not in caplog.text
    assert "key *** / Secret('***')" in caplog.text
