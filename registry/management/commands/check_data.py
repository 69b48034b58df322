"""``manage.py check_data``: run the registry's consistency rules over every record."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from registry.checks import MISSING, VIOLATION, WARNING, run_checks
from registry.models import Patient, Site


class Command(BaseCommand):
    help = (
        "List every rule violation, every warning (with its confirmation, if any) and every "
        "missing value of a completed section, per site and per patient, with completeness "
        "per section and per site."
    )

    def add_arguments(self, parser):
        parser.add_argument("--site", help="only this site code")
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--strict", action="store_true", help="exit with status 1 when a rule is violated"
        )

    def handle(self, *args, site=None, format="text", strict=False, **options):
        patients = Patient.objects.all()
        if site:
            if not Site.objects.filter(code=site).exists():
                raise CommandError(f"unknown site code {site!r}")
            patients = patients.filter(site__code=site)
        report = run_checks(patients)
        if format == "json":
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._text(report)
        if strict and report.n_violations:
            raise CommandError(f"{report.n_violations} rule violation(s)", returncode=1)

    def _text(self, report) -> None:
        out = self.stdout.write
        out(
            f"{report.n_patients} patients checked: {report.n_violations} rule violations, "
            f"{report.n_warnings} warnings ({report.n_unconfirmed} not confirmed), "
            f"{report.n_missing} missing values in completed sections."
        )
        for site, patients in report.by_site().items():
            out(f"\nSite {site}")
            for study_id, findings in patients.items():
                out(f"  {study_id}")
                for f in findings:
                    kind = {VIOLATION: "rule   ", WARNING: "warning", MISSING: "missing"}[f.kind]
                    out(f"    {kind} {f.code} [{', '.join(f.fields)}]: {f.message}")
                    if f.confirmation is not None:
                        c = f.confirmation
                        out(f"            confirmed by {c.by} on {c.at:%Y-%m-%d %H:%M}: {c.reason}")
        out("\nCompleteness (% of applicable values recorded)")
        header = ["site", *report.sections, "all"]
        out("  " + "".join(f"{h:>15}" for h in header))
        for row in report.completeness_rows():
            cells = [*row["sections"], row["all"]]
            text = "".join("{:>15}".format("-" if c is None else f"{c:.1f}") for c in cells)
            out(f"  {row['site']:>15}{text}")
