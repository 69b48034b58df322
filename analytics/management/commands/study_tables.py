"""``manage.py study_tables``: the study's tables regenerated from the registry.

JSON exactly per ``shared/spec/study-tables-json.md``; CSV (one block per table)
or xlsx (one sheet per table). Run by the registry's operator: all patients.
"""

from __future__ import annotations

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from analytics import exports
from analytics.datasets import FOLLOWUP_WINDOW_CHOICES, Filters
from analytics.tables import (
    P_METHODS,
    add_provenance,
    strip_internal,
    study_tables,
    validate_covariates,
)
from registry.choices import Circulation
from registry.freezes import FreezeTampered
from registry.management.commands.freeze_registry import freeze_named
from registry.models import Site


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def add_filter_arguments(parser) -> None:
    """The filters and methods of the study tables (also ``study_report``'s)."""
    parser.add_argument("--output", help="file to write (default: standard output)")
    parser.add_argument(
        "--freeze", help="compute from this data freeze instead of the live registry"
    )
    parser.add_argument("--site", help="site code")
    parser.add_argument("--from", dest="date_from", help="first door date, YYYY-MM-DD")
    parser.add_argument("--to", dest="date_to", help="last door date, YYYY-MM-DD")
    parser.add_argument("--circulation", choices=Circulation.values)
    parser.add_argument("--p-method", choices=P_METHODS, default="fisher")
    parser.add_argument(
        "--followup-window",
        choices=FOLLOWUP_WINDOW_CHOICES,
        default="as_recorded",
        help="a 3-month mRS outside 90 days ± FOLLOWUP_WINDOW_DAYS: counted as the "
        "study did (as_recorded) or missing (strict, a sensitivity analysis)",
    )
    parser.add_argument(
        "--covariates",
        help="regression covariates, comma separated: yes/no study variables and "
        "age_years, nihss_admission, onset_to_door_hours, procedure_minutes, dwi_aspects, "
        "pc_aspects (default: settings)",
    )


def _filters(options) -> Filters:
    site = options["site"]
    if site and not Site.objects.filter(code=site).exists():
        raise CommandError(f"unknown site code: {site}")
    date_from = _date(options["date_from"]) if options["date_from"] else None
    date_to = _date(options["date_to"]) if options["date_to"] else None
    if date_from and date_to and date_from > date_to:
        raise CommandError(
            f"--from {date_from.isoformat()} is after --to {date_to.isoformat()}: "
            "no door date can be in that range"
        )
    return Filters(
        site=site,
        date_from=date_from,
        date_to=date_to,
        circulation=options["circulation"],
        followup_window=options["followup_window"],
    )


def tables_from_options(options) -> dict:
    """The study tables (the contract, with ``add_provenance``) of the command's options;
    CommandError for a bad filter or covariate."""
    filters = _filters(options)
    covariates = None
    if options["covariates"]:
        try:
            covariates = validate_covariates(options["covariates"].split(","))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
    freeze = freeze_named(options["freeze"]) if options.get("freeze") else None
    try:
        result = study_tables(
            None, filters, p_method=options["p_method"], covariates=covariates, freeze=freeze
        )
    except FreezeTampered as exc:
        raise CommandError(str(exc)) from exc
    return add_provenance(strip_internal(result), None, filters)


class Command(BaseCommand):
    help = "Print the study's tables (Tables I-IV, baseline, outcomes, regression)."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("json", "csv", "xlsx"), default="json")
        add_filter_arguments(parser)

    def handle(self, *args, **options):
        result = tables_from_options(options)
        fmt = options["format"]
        if fmt == "xlsx":
            if not options["output"]:
                raise CommandError("--format xlsx needs --output FILE")
            with open(options["output"], "wb") as handle:
                handle.write(exports.to_xlsx(exports.table_frames(result), exports.about(result)))
            return
        if fmt == "json":
            text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
        else:
            text = exports.to_csv(exports.table_frames(result))
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
