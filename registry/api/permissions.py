"""The API asks ``registry.access`` what the pages ask: ``USE_API`` for any request;
each view then asks for its own permission after looking up its object, as the pages
do (another site's patient answers 404 before any 403). A read-only token never
writes, whatever the object."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import permissions

from registry import access
from registry.models import ApiToken


class UsesApi(permissions.BasePermission):
    """Signed in (by token or session) and holding ``USE_API``; an unsafe method needs a
    token that is not read-only (or the session)."""

    message = _("Your role does not allow this.")

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if not access.has(user, access.USE_API):
            return False
        if request.method not in permissions.SAFE_METHODS:
            token = request.auth
            if isinstance(token, ApiToken) and token.read_only:
                self.message = _("This token is read-only.")
                return False
        return True
