"""The TLS context both engines use: verification on by default, an optional minimum version."""

from __future__ import annotations

import os
import ssl

__all__ = ["make_ssl_context"]


def make_ssl_context(
    verify: bool | str | ssl.SSLContext, min_tls_version: ssl.TLSVersion | None
) -> ssl.SSLContext:
    """An ``SSLContext`` from ``EngineOptions.verify`` and ``min_tls_version``.

    ``True`` uses the system trust store with hostname checks, ``False`` turns verification off,
    a string is a CA bundle file (or a directory of CA certificates). A given ``SSLContext`` is
    used as it is, except that ``min_tls_version``, when set, is applied to it.
    """
    if isinstance(verify, ssl.SSLContext):
        ctx = verify
    elif verify is True:
        ctx = ssl.create_default_context()
    elif verify is False:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        if os.path.isdir(verify):
            ctx = ssl.create_default_context(capath=verify)
        else:
            ctx = ssl.create_default_context(cafile=verify)
    else:
        raise TypeError(f"verify must be a bool, a CA bundle path or an ssl.SSLContext, got {verify!r}")
    if min_tls_version is not None:
        ctx.minimum_version = min_tls_version
    return ctx
