"""Masking of credentials by name and by value."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tether._redact import MASK, redact_headers, redact_url, redact_value, registry


def test_credential_headers_are_masked() -> None:
    """Authorization, X-API-Key and Cookie are masked; ordinary headers are kept."""
    out = redact_headers({"Authorization": "Bearer abc", "X-API-Key": "k", "Cookie": "s=1", "Accept": "json"})
    assert out == {"Authorization": MASK, "X-API-Key": MASK, "Cookie": MASK, "Accept": "json"}


def test_credential_query_parameters_are_masked() -> None:
    """api_key, token, access_token and client_secret are masked in URLs; others kept."""
    url = "https://h/p?api_key=A1&token=B2&access_token=C3&client_secret=D4&apikey=E5&page=2"
    out = redact_url(url)
    for secret in ("A1", "B2", "C3", "D4", "E5"):
        assert f"={secret}" not in out
    assert "page=2" in out


def test_userinfo_is_masked() -> None:
    """user:password@ in a URL is masked."""
    assert "hunter2" not in redact_url("https://bob:hunter2@h/p")


def test_configured_names_are_masked() -> None:
    """Header and parameter names a configuration marks secret are masked too."""
    with registry.isolated():
        registry.add_names(headers=["X-Discogs-Token"], params=["sig_v2"])
        assert redact_headers({"X-Discogs-Token": "t"}) == {"X-Discogs-Token": MASK}
        assert "zzz" not in redact_url("https://h/?sig_v2=zzz")


def test_registered_values_are_masked_in_structures() -> None:
    """A registered secret value is masked inside nested values of any key."""
    with registry.isolated():
        registry.add("Z9x8c7v6")
        out = redact_value("detail", {"body": ["ok", "echo Z9x8c7v6"], "n": 3})
        assert out == {"body": ["ok", f"echo {MASK}"], "n": 3}


def test_short_values_are_not_registered() -> None:
    """Values too short to be credentials are not masked (they would mask ordinary words)."""
    with registry.isolated():
        registry.add("ab")
        assert registry.mask("abc") == "abc"


@given(
    secret=st.text(min_size=8, max_size=40).filter(
        lambda s: s.strip() == s and s.isprintable() and "*" not in s
    ),
    noise=st.text(),
)
def test_registered_secret_never_survives_masking(secret: str, noise: str) -> None:
    """Whatever text surrounds a registered secret, the secret does not survive masking."""
    with registry.isolated():
        registry.add(secret)
        assert secret not in registry.mask(noise + secret + noise)
