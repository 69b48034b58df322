"""API tokens: created and revoked by their owner, checked on every request; and the
log of every API request.

A token is ``reg_`` and 43 random URL-safe characters; the database keeps its SHA-256
hash and its first characters (to tell tokens apart), never the token itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.models import ApiRequestLog, ApiToken

TOKEN_PREFIX = "reg_"
SHOWN_CHARACTERS = 12
# The time of last use is written at most this often per token (not on every request).
LAST_USED_EVERY = dt.timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_token_create(
    *, user, name: str, expires_at: dt.datetime, read_only: bool = False
) -> tuple[ApiToken, str]:
    """A new token of ``user``: ``(the stored token, the token to show once)``.

    ``expires_at`` must be in the future and at most ``API_TOKEN_MAX_DAYS`` ahead.
    """
    now = timezone.now()
    if expires_at <= now:
        raise ValidationError({"expires_at": _("The expiry date must be in the future.")})
    longest = dt.timedelta(days=settings.API_TOKEN_MAX_DAYS)
    if expires_at > now + longest:
        raise ValidationError(
            {
                "expires_at": _("A token lasts at most %(days)d days.")
                % {"days": settings.API_TOKEN_MAX_DAYS}
            }
        )
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        name=name.strip(),
        prefix=key[:SHOWN_CHARACTERS],
        key_hash=_hash(key),
        read_only=read_only,
        created_at=now,
        expires_at=expires_at,
    )
    token.full_clean()
    token.save()
    return token, key


def api_token_revoke(*, user, token: ApiToken) -> ApiToken:
    """Revoke one of ``user``'s own tokens (revoking twice keeps the first time)."""
    if token.user_id != user.pk:
        raise ValidationError(_("Only the owner of a token may revoke it."))
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.full_clean()
        token.save(update_fields=["revoked_at"])
    return token


def api_tokens_of(user):
    """``user``'s tokens, newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def api_token_find(*, key: str) -> ApiToken | None:
    """The stored token ``key`` stands for (with its user), whatever its state; None
    for a key that was never issued."""
    if not key.startswith(TOKEN_PREFIX):
        return None
    return ApiToken.objects.select_related("user").filter(key_hash=_hash(key)).first()


def api_token_touch(*, token: ApiToken) -> None:
    """Note that ``token`` was used now (written at most once a minute)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def api_request_log(
    *, user, token: ApiToken | None, endpoint: str, method: str, status: int, duration_ms: int
) -> ApiRequestLog:
    """Record one API request (the request log is written for every answer)."""
    entry = ApiRequestLog(
        user=user if user is not None and user.is_authenticated else None,
        token=token,
        endpoint=endpoint[:300],
        method=method[:10],
        status=status,
        duration_ms=max(0, duration_ms),
    )
    entry.save()
    return entry
