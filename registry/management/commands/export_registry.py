"""``manage.py export_registry``: the registry as interchange CSV, Excel or Stata."""

from __future__ import annotations

import sys

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from registry.interchange.exporter import FORMATS, ExportRefused
from registry.interchange.redcap import export_for
from registry.models import Site, User


class Command(BaseCommand):
    help = (
        "Export the registry (CSV and xlsx: exactly the interchange columns; dta: Stata with "
        "labels; redcap: REDCap's records CSV, described by data_dictionary --format redcap). "
        "--deidentified replaces study IDs by a per-export pseudonym and dates by "
        "days/minutes from door time. Every export is logged."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, default="csv")
        parser.add_argument("--output", help="file to write (default: standard output)")
        parser.add_argument("--site", help="only this site code")
        parser.add_argument("--deidentified", action="store_true")
        parser.add_argument(
            "--user",
            help="export as this registry user (its access rules apply and it is logged); "
            "without it the export is logged as the server operator's",
        )

    def handle(self, *args, **options):
        user = None
        if options["user"]:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"unknown user {options['user']!r}")
        site = None
        if options["site"]:
            site = Site.objects.filter(code=options["site"]).first()
            if site is None:
                raise CommandError(f"unknown site code {options['site']!r}")
        deidentified = True if options["deidentified"] else None if user else False
        try:
            export = export_for(options["format"])(
                user=user,
                site=site,
                deidentified=deidentified,
                via="command",
            )
        except PermissionDenied as exc:
            raise CommandError(
                "this user may not take this export (identifiable exports need the admin role)"
            ) from exc
        except ExportRefused as exc:
            raise CommandError(str(exc)) from exc
        if options["output"]:
            with open(options["output"], "wb") as stream:
                export.write_to(stream)
            kind = "identifiable" if export.identifiable else "de-identified"
            self.stderr.write(f"{export.n_patients} patients ({kind}) -> {options['output']}")
        else:
            sys.stdout.flush()
            export.write_to(sys.stdout.buffer)
            sys.stdout.buffer.flush()
