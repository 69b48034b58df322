"""``manage.py data_dictionary``: one row per variable, generated from the models."""

from django.core.management.base import BaseCommand
from django.utils import translation

from registry.choices import Language
from registry.interchange import dictionary


class Command(BaseCommand):
    help = (
        "Print the data dictionary (name, section, label, type, codes, min/max, branching, "
        "rules, help text), generated from the models. --language translates the labels, "
        "help texts and rules; column names and codes are the interchange's in any language."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("csv", "md"), default="csv")
        parser.add_argument("--language", choices=Language.values, default=Language.ENGLISH)

    def handle(self, *args, **options):
        with translation.override(options["language"]):
            text = dictionary.as_csv() if options["format"] == "csv" else dictionary.as_markdown()
        self.stdout.write(text, ending="")
