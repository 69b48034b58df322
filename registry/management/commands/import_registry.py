"""``manage.py import_registry FILE``: bulk import of interchange rows (CSV or .xlsx)."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry.interchange.importer import registry_import
from registry.interchange.redcap import redcap_import
from registry.models import User


class Command(BaseCommand):
    help = (
        "Import patients from a CSV or .xlsx file in the interchange format "
        "Import patients from a CSV or .xlsx file in the interchange format "
        "(shared/spec/interchange-columns.md), of any number of rows (read and checked a "
        "chunk at a time), or with --format redcap a REDCap records export described by "
        "its data dictionary (--dictionary) and a mapping file for variables named "
        "otherwise (--mapping). All or nothing: on any problem nothing is written, the "
        "problems are printed (the first 10,000) and the exit status is 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV (UTF-8) or .xlsx file with a header row")
        parser.add_argument(
            "--format",
            choices=("interchange", "redcap"),
            default="interchange",
            help="interchange (default): the registry's columns; redcap: a REDCap records "
            "export (CSV, raw values, one row per record)",
        )
        parser.add_argument("--dictionary", help="with --format redcap: its REDCap data dictionary")
        parser.add_argument(
            "--mapping",
            help="with --format redcap: CSV redcap_variable,registry_column for variables "
            "whose names are not the registry's (a blank registry_column leaves one out)",
        )
        parser.add_argument("--user", help="username the history entries are attributed to")
        parser.add_argument(
            "--dry-run", action="store_true", help="validate and count, write nothing"
        )
        parser.add_argument("--create-sites", action="store_true", help="create unknown site codes")
        parser.add_argument(
            "--strict-warnings",
            action="store_true",
            help="refuse the file when any value raises a warning (default: report, import)",
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        user = None
        if options["user"]:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"unknown user {options['user']!r}")
        result = self._import(path, user, options)
        if not options["strict_warnings"]:
            for warning in result.warnings:
                self.stderr.write(f"warning: {warning}")
            if result.warning_total > len(result.warnings):
                more = result.warning_total - len(result.warnings)
                self.stderr.write(f"... and {more} more warning(s), counted below.")
        if result.problems:
            for problem in result.problems:
                self.stderr.write(str(problem))
            self.stderr.write(
                f"{len(result.problems)} problem(s) in {result.rows} row(s); nothing was written."
            )
            raise SystemExit(1)
        if result.dry_run:
            for line in result.diff_lines():
                self.stdout.write(line)
        self._summary(result)

    def _import(self, path: Path, user, options):
        common = {
            "user": user,
            "filename": path.name,
            "dry_run": options["dry_run"],
            "create_sites": options["create_sites"],
            "strict_warnings": options["strict_warnings"],
        }
        if options["format"] == "interchange":
            if options["dictionary"] or options["mapping"]:
                raise CommandError("--dictionary and --mapping go with --format redcap")
            # Streamed: no limit on the rows but the disk's.
            return registry_import(file=path, max_rows=sys.maxsize, **common)
        if not options["dictionary"]:
            raise CommandError("--format redcap needs --dictionary (the REDCap data dictionary)")
        for name in ("dictionary", "mapping"):
            if options[name] and not Path(options[name]).is_file():
                raise CommandError(f"{options[name]}: no such file")
        mapping = Path(options["mapping"]) if options["mapping"] else None
        return redcap_import(
            file=path, dictionary=Path(options["dictionary"]), mapping=mapping, **common
        )

    def _summary(self, result) -> None:
        verb = "would be" if result.dry_run else "were"
        if result.sites_created:
            self.stdout.write(f"Sites {verb} created: {', '.join(result.sites_created)}")
        self.stdout.write(
            f"{result.rows} rows: {result.created} patients {verb} created, "
            f"{result.changed} {verb} changed, {result.unchanged} unchanged."
            + (" Dry run: nothing was written." if result.dry_run else "")
        )
        if result.warning_total:
            counts = ", ".join(f"{code} {n}" for code, n in result.warning_counts.items())
            self.stdout.write(f"{result.warning_total} warning(s), imported as they are: {counts}.")
        if result.nothing_to_do:
            self.stdout.write("Nothing to change: every patient is stored with these values.")
