"""Who sends an API request: a token (``Authorization: Bearer <token>``), or the
browser's session for the schema's documentation pages.

A session counts only once its two-factor check passed (the pages' rule,
``registry.twofactor``), and DRF's session authentication asks for the CSRF token on
every unsafe method, so a page of another origin cannot write through a nurse's session.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from registry import twofactor

from . import services

KEYWORDS = ("Bearer", "Token")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>``: the token's user, with the token as ``request.auth``."""

    def authenticate(self, request):
        words = authentication.get_authorization_header(request).split()
        if not words or words[0].decode("latin-1") not in KEYWORDS:
            return None
        if len(words) != 2:
            raise exceptions.AuthenticationFailed(
                _("The Authorization header must be 'Bearer' and the token, nothing else.")
            )
        token = services.api_token_find(key=words[1].decode("latin-1"))
        if token is None:
            raise exceptions.AuthenticationFailed(_("Unknown token."))
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This token was revoked."))
        if not token.is_active():
            raise exceptions.AuthenticationFailed(_("This token has expired."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("This account is deactivated."))
        services.api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Makes an unauthenticated request a 401 (with this challenge), not a 403.
        return 'Bearer realm="api"'


class VerifiedSessionAuthentication(authentication.SessionAuthentication):
    """The signed-in session, once its two-factor check passed; CSRF on unsafe methods."""

    def authenticate(self, request):
        found = super().authenticate(request)
        if found is None:
            return None
        user = found[0]
        if twofactor.requires_two_factor(user) and not twofactor.is_verified(user):
            return None
        return found


class TokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema names the token: an HTTP bearer token."""

    target_class = ApiTokenAuthentication
    name = "token"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}


class SessionScheme(OpenApiAuthenticationExtension):
    """The signed-in session (the documentation page's), as a cookie."""

    target_class = VerifiedSessionAuthentication
    name = "session"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
