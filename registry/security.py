"""Small security helpers used through settings: the client address for login
throttling, and responses never stored by a cache."""

from __future__ import annotations

from django.conf import settings
from django.utils.cache import add_never_cache_headers


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


class NoStoreMiddleware:
    """``Cache-Control: no-store`` (and the rest of ``never_cache``) on every response.

    Pages, histories and downloads show patient data: a browser must not keep them on
    a shared ward computer (the back button or the disk cache after sign-out), nor a
    proxy. Static files are served before this middleware runs and stay cacheable.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        add_never_cache_headers(response)
        return response
