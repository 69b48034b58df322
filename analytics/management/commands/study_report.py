"""``manage.py study_report --format docx --output FILE``: the study tables as a
manuscript-ready Word document (``analytics.report_docx``), with the filters and
methods of ``study_tables``. Run by the registry's operator: all patients."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from analytics import report_docx

from .study_tables import add_filter_arguments, tables_from_options


class Command(BaseCommand):
    help = "Write the study's tables, methods and figures as a Word document."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("docx",), default="docx")
        add_filter_arguments(parser)

    def handle(self, *args, **options):
        if not options["output"]:
            raise CommandError("--format docx needs --output FILE")
        document = report_docx.build(tables_from_options(options))
        with open(options["output"], "wb") as handle:
            handle.write(document)
