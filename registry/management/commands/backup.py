"""`python manage.py backup FILE`: a consistent dump of the configured database."""

from django.core.management.base import BaseCommand, CommandError

from registry.backup import BackupError, backup, vendor


class Command(BaseCommand):
    help = (
        "Write a consistent backup of the configured database to FILE (pg_dump custom "
        "format for PostgreSQL, the online backup API for SQLite). The file holds "
        "identifiable data and is created readable by its owner only."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="where to write the backup")
        parser.add_argument("--database", default="default", help="database alias")

    def handle(self, *args, file, database, **options):
        try:
            written = backup(file, alias=database)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        size = written.stat().st_size
        self.stdout.write(f"Backed up the {vendor(database)} database to {written} ({size} bytes).")
