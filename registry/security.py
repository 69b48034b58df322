"""Small security helpers used through settings (client address for login throttling)."""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str | None:
    """The address login throttling counts failures against.

    Behind the reverse proxy every request comes from 127.0.0.1, so the proxy's
    ``X-Real-IP`` (set by nginx from the connection, never taken from the client)
    is used; otherwise the socket's address. Trusting the header without a proxy
    would let an attacker pick a new address for every guess.
    """
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_REAL_IP", "").strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")
