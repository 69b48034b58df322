"""Automatic consistency checks over the whole registry.

Runs the registry's own rules (``rules.violations``, ``rules.warnings`` and each
section's ``missing_for_completion``) over every patient's flat values; nothing is
restated here. A warning comes with its confirmation when a nurse confirmed the
same values. One query for the patients, one per section and one for the
confirmations, whatever the number of patients.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from . import rules
from .choices import SectionStatus
from .models import SECTION_MODELS, Patient, WarningConfirmation

VIOLATION = "violation"
MISSING = "missing"
WARNING = "warning"


@dataclass(frozen=True)
class Confirmation:
    """Who confirmed a warned value, when and why."""

    by: str
    at: object
    reason: str


@dataclass(frozen=True)
class Finding:
    patient_pk: int
    study_id: str
    site: str
    kind: str  # VIOLATION, WARNING or MISSING
    code: str  # the rule code, or the missing column
    fields: tuple[str, ...]
    message: str
    section: str | None = None
    confirmation: Confirmation | None = None  # a warning confirmed for these values


@dataclass
class Tally:
    filled: int = 0
    applicable: int = 0

    @property
    def percent(self) -> float | None:
        return None if self.applicable == 0 else 100.0 * self.filled / self.applicable


@dataclass
class CheckReport:
    n_patients: int = 0
    findings: list[Finding] = field(default_factory=list)
    # completeness[site][section key] and completeness[site]["all"]; site "all" = overall
    completeness: dict[str, dict[str, Tally]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Tally))
    )
    sections: tuple[str, ...] = tuple(m.key for m in SECTION_MODELS)

    @property
    def section_titles(self) -> list[str]:
        return [capfirst(m._meta.verbose_name) for m in SECTION_MODELS]

    @property
    def n_violations(self) -> int:
        return sum(1 for f in self.findings if f.kind == VIOLATION)

    @property
    def n_warnings(self) -> int:
        return sum(1 for f in self.findings if f.kind == WARNING)

    @property
    def n_unconfirmed(self) -> int:
        return sum(1 for f in self.findings if f.kind == WARNING and f.confirmation is None)

    @property
    def n_missing(self) -> int:
        return sum(1 for f in self.findings if f.kind == MISSING)

    def by_site(self) -> dict[str, dict[str, list[Finding]]]:
        """Findings grouped by site code, then by study ID (both sorted)."""
        grouped: dict[str, dict[str, list[Finding]]] = {}
        for finding in sorted(self.findings, key=lambda f: (f.site, f.study_id)):
            grouped.setdefault(finding.site, {}).setdefault(finding.study_id, []).append(finding)
        return grouped

    def completeness_rows(self) -> list[dict[str, object]]:
        """One row per site (overall last) with the percentage per section and overall."""
        rows = []
        for site in sorted(s for s in self.completeness if s != "all") + ["all"]:
            tallies = self.completeness.get(site)
            if tallies is None:
                continue
            rows.append(
                {
                    "site": site,
                    "sections": [tallies[key].percent for key in self.sections],
                    "all": tallies["all"].percent,
                }
            )
        return rows

    def as_dict(self) -> dict[str, object]:
        return {
            "n_patients": self.n_patients,
            "n_violations": self.n_violations,
            "n_warnings": self.n_warnings,
            "n_missing": self.n_missing,
            "findings": [
                {
                    "site": f.site,
                    "study_id": f.study_id,
                    "kind": f.kind,
                    "code": f.code,
                    "fields": list(f.fields),
                    "section": f.section,
                    "message": str(f.message),
                    "confirmed": None
                    if f.confirmation is None
                    else {
                        "by": f.confirmation.by,
                        "at": f.confirmation.at.isoformat(timespec="seconds"),
                        "reason": f.confirmation.reason,
                    },
                }
                for f in sorted(self.findings, key=lambda f: (f.site, f.study_id))
            ],
            "completeness": {
                site: {key: tally.percent for key, tally in tallies.items()}
                for site, tallies in self.completeness.items()
            },
        }


def _section_rows(model, patients: QuerySet[Patient]) -> dict[int, dict[str, object]]:
    names = model.clinical_fields()
    rows = model.objects.filter(patient__in=patients.values("pk")).values(
        "patient_id", "status", *names
    )
    return {row.pop("patient_id"): row for row in rows}


def run_checks(patients: QuerySet[Patient]) -> CheckReport:
    """Check every patient of ``patients`` (already restricted by ``registry.access``)."""
    report = CheckReport()
    base = patients.order_by("site__code", "study_id").values(
        "pk", "study_id", "site__code", "sex", "age_years"
    )
    sections = {model: _section_rows(model, patients) for model in SECTION_MODELS}
    confirmations = _confirmations(patients)
    for row in base:
        report.n_patients += 1
        pk, site = row["pk"], row["site__code"]
        values: dict[str, object] = {
            "study_id": row["study_id"],
            "site": site,
            "sex": row["sex"],
            "age_years": row["age_years"],
        }
        own = {model: sections[model].get(pk) for model in SECTION_MODELS}
        for section_row in own.values():
            if section_row is not None:
                values.update({k: v for k, v in section_row.items() if k != "status"})
        for rule in rules.violations(values):
            report.findings.append(
                Finding(pk, row["study_id"], site, VIOLATION, rule.code, rule.fields, rule.message)
            )
        for rule in rules.warnings(values):
            confirmed = confirmations.get((pk, rule.code, rule.fingerprint(values)))
            report.findings.append(
                Finding(
                    pk,
                    row["study_id"],
                    site,
                    WARNING,
                    rule.code,
                    rule.fields,
                    rule.message,
                    confirmation=confirmed,
                )
            )
        for model, section_row in own.items():
            _tally(report, site, model, values)
            if section_row is None or section_row["status"] != SectionStatus.COMPLETE:
                continue
            instance = model(**{k: v for k, v in section_row.items() if k != "status"})
            for name in instance.missing_for_completion(values):
                report.findings.append(
                    Finding(
                        pk,
                        row["study_id"],
                        site,
                        MISSING,
                        name,
                        (name,),
                        _("Missing in a completed section."),
                        model.key,
                    )
                )
    return report


def _confirmations(patients: QuerySet[Patient]) -> dict[tuple, Confirmation]:
    """The latest confirmation of each (patient, rule code, values), one query."""
    rows = (
        WarningConfirmation.objects.filter(patient__in=patients.values("pk"))
        .order_by("confirmed_at", "pk")
        .values_list(
            "patient_id", "code", "fingerprint", "confirmed_by__username", "confirmed_at", "reason"
        )
    )
    return {
        (pk, code, fingerprint): Confirmation(by or "", at, reason)
        for pk, code, fingerprint, by, at, reason in rows
    }


def _tally(report: CheckReport, site: str, model, values: dict[str, object]) -> None:
    for name in model.clinical_fields():
        if not rules.field_applies(name, values):
            continue
        filled = values.get(name) not in (None, "")
        for site_key in (site, "all"):
            for section_key in (model.key, "all"):
                tally = report.completeness[site_key][section_key]
                tally.applicable += 1
                tally.filled += int(filled)
