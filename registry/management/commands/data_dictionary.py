"""``manage.py data_dictionary``: one row per variable, generated from the models."""

from django.core.management.base import BaseCommand
from django.utils import translation

from registry.choices import Language
from registry.interchange import dictionary, redcap


class Command(BaseCommand):
    help = (
        "Print the data dictionary (name, section, label, type, codes, min/max, branching, "
        "rules, help text), generated from the models. --language translates the labels, "
        "help texts and rules; column names and codes are the interchange's in any language. "
        "--format redcap writes a REDCap data dictionary (its 18 columns) of the records "
        "that export_registry --format redcap writes (with --deidentified, of the "
        "de-identified records)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("csv", "md", "redcap"), default="csv")
        parser.add_argument(
            "--deidentified",
            action="store_true",
            help="with --format redcap: the dictionary of a de-identified records export",
        )
        parser.add_argument("--language", choices=Language.values, default=Language.ENGLISH)

    def handle(self, *args, **options):
        writers = {
            "csv": dictionary.as_csv,
            "md": dictionary.as_markdown,
            "redcap": lambda: redcap.dictionary_csv(deidentified=options["deidentified"]),
        }
        with translation.override(options["language"]):
            text = writers[options["format"]]()
        self.stdout.write(text, ending="")
