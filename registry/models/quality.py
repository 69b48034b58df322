"""Each patient's quality-of-care facts, kept beside the sections they come from.

The /quality/ page counts, for every patient of a registry, six intervals and a dozen
conditions over four sections. Computed at each read, a million patients cost the
database two seconds of joins and expressions before the page could start; kept here,
one row per patient, the page reads one narrow table. The definitions stay in
``analytics.quality`` (``FACTS``), which writes these rows (``facts_refresh``) whenever
a patient's sections are written: a section's ``save()`` / ``delete()`` and the bulk
writer send ``registry.signals.sections_written``. The table holds nothing that cannot
be computed again: ``manage.py quality_indicators --refresh-facts`` rewrites it.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["QualityFacts"]


class QualityFacts(models.Model):
    """One patient's facts for the quality indicators (``analytics.quality.FACTS``).

    Times are seconds: ``door_seconds`` and ``start_seconds`` since 1970-01-01 UTC (the
    door time; the onset time, or the door time when the onset is unknown), whose local
    quarter and date the reader computes in the registry's time zone; the intervals
    between two recorded times; NULL when a time is not recorded. ``conditions``: one bit
    per condition of ``analytics.quality.MASKS``.
    """

    patient = models.OneToOneField(
        "registry.Patient",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="quality_facts",
        verbose_name=_("patient"),
    )
    door_seconds = models.FloatField(null=True)
    start_seconds = models.FloatField(null=True)
    s_door_to_imaging = models.FloatField(null=True)
    s_door_to_needle = models.FloatField(null=True)
    s_door_to_groin = models.FloatField(null=True)
    s_imaging_to_groin = models.FloatField(null=True)
    s_groin_to_reperfusion = models.FloatField(null=True)
    s_onset_to_reperfusion = models.FloatField(null=True)
    conditions = models.IntegerField(default=0)

    class Meta:
        verbose_name = _("quality facts")
        verbose_name_plural = _("quality facts")
