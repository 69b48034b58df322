"""``manage.py data_dictionary``: one row per variable, generated from the models."""

from django.core.management.base import BaseCommand

from registry.interchange import dictionary


class Command(BaseCommand):
    help = (
        "Print the data dictionary (name, section, label, type, codes, min/max, branching, "
        "rules, help text), generated from the models."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("csv", "md"), default="csv")

    def handle(self, *args, **options):
        text = dictionary.as_csv() if options["format"] == "csv" else dictionary.as_markdown()
        self.stdout.write(text, ending="")
