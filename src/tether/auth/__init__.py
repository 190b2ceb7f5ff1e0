"""Authentication: API keys, bearer tokens, Basic, OAuth 2.0, custom schemes; secrets and their sources.

Every scheme is an options object with ``kind = "auth"``: pass it to ``tether.Client(auth=...)``
(or in ``policies=[...]``). It is built into the pipeline's ``auth`` stage, which signs a copy of
every attempt, sends credentials only to the configured origin, and on a 401 renews the credential
and replays the attempt once. Secrets come from ``tether.secret`` sources. See
``docs/guides/auth.md``.
"""

from __future__ import annotations

from tether.auth._base import AuthOptions, AuthPolicy
from tether.auth._custom import AuthLike, Combined, Custom, HttpxAuth, as_auth
from tether.auth._oauth2 import TOKEN_ENDPOINT, OAuth2ClientCredentials, OAuth2RefreshToken
from tether.auth._spec import AUTH_TYPES, from_spec
from tether.auth._static import ApiKey, Basic, Bearer, Headers

__all__ = [
    "AUTH_TYPES",
    "TOKEN_ENDPOINT",
    "ApiKey",
    "AuthLike",
    "AuthOptions",
    "AuthPolicy",
    "Basic",
    "Bearer",
    "Combined",
    "Custom",
    "Headers",
    "HttpxAuth",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "as_auth",
    "from_spec",
]
