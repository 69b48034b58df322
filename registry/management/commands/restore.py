"""`python manage.py restore FILE [--force]`: bring back a backup made by `backup`."""

from django.core.management.base import BaseCommand, CommandError

from registry.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Replace what the configured database holds with the backup FILE. Refuses a "
        "database that already holds patients unless --force. Run `migrate` afterwards "
        "when the backup comes from an older version of the registry."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="a file written by `manage.py backup`")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace a database that already holds patients",
        )
        parser.add_argument("--database", default="default", help="database alias")

    def handle(self, *args, file, force, database, **options):
        try:
            restore(file, force=force, alias=database)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Restored {file}. Run `manage.py migrate` if the registry was upgraded.")
