"""``manage.py export_registry``: the registry as interchange CSV, Excel or Stata."""

from __future__ import annotations

import sys

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from registry import access
from registry.freezes import FreezeTampered
from registry.interchange.exporter import FORMATS, ExportRefused
from registry.interchange.redcap import export_for
from registry.models import Site, User

from .freeze_registry import freeze_named


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
        parser.add_argument("--freeze", help="export this data freeze's rows, not the live ones")
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
        freeze = freeze_named(options["freeze"]) if options["freeze"] else None
        if freeze is not None and user is not None:
            if not access.freezes_for(user).filter(pk=freeze.pk).exists():
                raise CommandError(f"this user may not read the data freeze {freeze.name!r}")
        try:
            export = export_for(options["format"])(
                user=user,
                site=site,
                deidentified=deidentified,
                via="command",
                freeze=freeze,
            )
        except PermissionDenied as exc:
            raise CommandError(
                "this user may not take this export (identifiable exports need the admin role)"
            ) from exc
        except (ExportRefused, FreezeTampered) as exc:
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
        if freeze is not None:
            self.stderr.write(
                f"from the data freeze {freeze.name!r} frozen at "
                f"{freeze.created_at.isoformat(timespec='seconds')}, SHA-256 {freeze.sha256}"
            )
