"""``manage.py quality_indicators``: quality of care per site and period.

JSON exactly per ``shared/spec/quality-indicators.md``; CSV (a block for the time
indicators, one for the rates) or xlsx (a sheet each). Run by the registry's
operator: all patients. ``--refresh-facts`` writes every patient's stored quality facts
again from the sections (``registry.models.QualityFacts``), e.g. after sections were
changed by SQL by hand.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from analytics import exports
from analytics.datasets import Filters
from analytics.quality import PERIODS, facts_refresh, quality_indicators
from registry.freezes import FreezeTampered
from registry.management.commands.freeze_registry import freeze_named
from registry.models import Site

from .study_tables import _date


class Command(BaseCommand):
    help = "Print the quality-of-care indicators (times, rates, award levels) per site."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("json", "csv", "xlsx"), default="json")
        parser.add_argument("--output", help="file to write (default: standard output)")
        parser.add_argument(
            "--freeze", help="compute from this data freeze instead of the live registry"
        )
        parser.add_argument("--site", help="site code")
        parser.add_argument("--from", dest="date_from", help="first door date, YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", help="last door date, YYYY-MM-DD")
        parser.add_argument("--period", choices=PERIODS, default="all")
        parser.add_argument(
            "--refresh-facts",
            action="store_true",
            help="first write every patient's stored quality facts again from the sections",
        )

    def handle(self, *args, **options):
        if options["refresh_facts"]:
            facts_refresh()
        site = options["site"]
        if site and not Site.objects.filter(code=site).exists():
            raise CommandError(f"unknown site code: {site}")
        filters = Filters(
            site=site,
            date_from=_date(options["date_from"]) if options["date_from"] else None,
            date_to=_date(options["date_to"]) if options["date_to"] else None,
        )
        freeze = freeze_named(options["freeze"]) if options["freeze"] else None
        try:
            result = quality_indicators(None, filters, period=options["period"], freeze=freeze)
        except FreezeTampered as exc:
            raise CommandError(str(exc)) from exc
        fmt = options["format"]
        if fmt == "xlsx":
            if not options["output"]:
                raise CommandError("--format xlsx needs --output FILE")
            with open(options["output"], "wb") as handle:
                handle.write(exports.to_xlsx(exports.quality_frames(result)))
            return
        if fmt == "json":
            text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
        else:
            text = exports.to_csv(exports.quality_frames(result))
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
