"""``manage.py purge_import_uploads``: delete import uploads left waiting too long.

Run it from cron (docs/deployment.md); each upload runs it too. An upload nobody
confirmed or cancelled (the tab closed, the session expired, the server failed
meanwhile) is deleted once older than ``IMPORT_UPLOAD_MAX_AGE_HOURS`` (24).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from registry.interchange.uploads import upload_dir, uploads_purge


class Command(BaseCommand):
    help = "Delete import uploads (and their previews) older than IMPORT_UPLOAD_MAX_AGE_HOURS."

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours", type=int, help="age in hours (default: IMPORT_UPLOAD_MAX_AGE_HOURS)"
        )

    def handle(self, *args, **options):
        removed = uploads_purge(max_age_hours=options["hours"])
        self.stdout.write(f"{removed} file(s) deleted from {upload_dir()}.")
