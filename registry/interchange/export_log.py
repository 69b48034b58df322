"""The export log as administrators read it: who exported what, when, with which
filters, identifiable or not; on a page and as CSV."""

from __future__ import annotations

import csv
import io
import json

from django.db.models import QuerySet

from registry import access
from registry.models import ExportLog

CSV_COLUMNS = (
    "when",
    "user",
    "format",
    "identifiable",
    "filters",
    "sites_covered",
    "patients",
    "via",
)


def export_log_for(user) -> QuerySet[ExportLog]:
    """Entries of exports that could hold patients of the user's sites, newest first."""
    return (
        access.export_logs_for(user)
        .select_related("user", "site")
        .prefetch_related("sites")
        .order_by("-created_at", "-pk")
    )


def export_log_csv(entries) -> str:
    """The entries as CSV: ISO date-times (UTC), 1/0, site codes, filters as JSON."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow(
            [
                entry.created_at.isoformat(),
                entry.user.username if entry.user else "",
                entry.format,
                "1" if entry.identifiable else "0",
                json.dumps(entry.filters, sort_keys=True),
                " ".join(site.code for site in entry.sites.all()),
                entry.n_patients,
                entry.via,
            ]
        )
    return buffer.getvalue()
