"""Tokens of the REST API and the log of every API request.

A token is shown once, when it is created; only its SHA-256 hash is stored, so a copy
of the database gives nobody a usable token. Tokens are random (256 bits), hence a
plain hash is enough: no salt or slow hash is needed against guessing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["ApiToken", "ApiRequestLog"]


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=80)
    # The first characters of the token, to tell one's tokens apart in lists and logs.
    prefix = models.CharField(_("prefix"), max_length=12)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(_("read-only"), default=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_active(self, now=None) -> bool:
        """Neither revoked nor expired at ``now`` (default: the current time)."""
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now


class ApiRequestLog(models.Model):
    """One row per API request: who, with which token, what and with what answer."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, related_name="+")
    endpoint = models.CharField(max_length=300)
    method = models.CharField(max_length=10)
    status = models.PositiveSmallIntegerField()
    at = models.DateTimeField(default=timezone.now, db_index=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("API request")
        verbose_name_plural = _("API requests")
        ordering = ["-at"]
