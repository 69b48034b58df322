"""Data freezes: the registry's interchange rows kept unchanged under a name.

An investigator freezes the data before submitting a manuscript; the study tables,
quality indicators, Word report and exports can then be computed from the freeze,
whatever is corrected afterwards (``registry.freezes``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["DataFreeze", "FreezeDeletion", "FreezeImmutable"]


class FreezeImmutable(Exception):
    """A freeze is written once: changing a stored one is refused."""


class DataFreeze(models.Model):
    """A named, immutable copy of the interchange rows of some patients.

    The rows are the interchange CSV exactly as the export writes it, gzip-compressed in
    one binary column: the CSV of 1,000,000 patients is several hundred megabytes as
    text and a few tens compressed, so the row is written and read as a stream of
    compressed bytes without the text ever being held whole, and one column keeps the
    rows and their hash together (a table of rows would multiply the rows of the
    database and need the hash recomputed from a sorted scan). ``sha256`` is the
    SHA-256 of the uncompressed CSV: what ``sha256sum`` gives for the downloaded file.
    A database trigger refuses any UPDATE of the table as well as ``save()``.
    """

    name = models.SlugField(_("name"), max_length=80, unique=True)
    reason = models.TextField(_("reason"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("frozen by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("frozen at"))
    site_codes = models.JSONField(_("sites"), default=list, blank=True)
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    n_patients = models.PositiveIntegerField(_("patients"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    # Exclusions after enrolment in force when frozen (study ID -> reason code): they
    # decide who is analysed, and they are not interchange columns.
    exclusions = models.JSONField(_("exclusions after enrolment"), default=dict, blank=True)
    rows_gz = models.BinaryField(_("rows (gzip CSV)"))

    class Meta:
        verbose_name = _("data freeze")
        verbose_name_plural = _("data freezes")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None or not self._state.adding:
            raise FreezeImmutable(f"data freeze {self.name!r} is stored and cannot be changed")
        super().save(*args, **kwargs)


class FreezeDeletion(models.Model):
    """The audit of a deleted freeze: it outlives the freeze."""

    name = models.CharField(_("name"), max_length=80)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    n_patients = models.PositiveIntegerField(_("patients"))
    frozen_at = models.DateTimeField(_("frozen at"))
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("deleted by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    deleted_at = models.DateTimeField(_("deleted at"), auto_now_add=True)
    reason = models.TextField(_("reason"))

    class Meta:
        verbose_name = _("deleted data freeze")
        verbose_name_plural = _("deleted data freezes")
        ordering = ["-deleted_at"]

    def __str__(self) -> str:
        return self.name
