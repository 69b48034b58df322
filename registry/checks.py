"""Automatic consistency checks over the whole registry.

Runs the registry's own rules (``rules.violations``, ``rules.warnings`` and each
section's ``missing_for_completion``) over every patient's flat values; nothing is
restated here. A warning comes with its confirmation when a nurse confirmed the
same values.

The patients are read site by site (in site code order), each site in study ID
order from the ``(site, study_id)`` index, as plain rows of one query that joins
the five sections, and checked in chunks of ``CHUNK_SIZE`` patients: memory
holds one chunk, whatever the number of patients. The completeness per section
and site is one aggregate query whose "applies" conditions are built from
``rules.BRANCHING``.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import connection, models
from django.db.models import Count, Q, QuerySet
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from . import rules
from .choices import SectionStatus
from .models import SECTION_MODELS, Patient, Site, WarningConfirmation

VIOLATION = "violation"
MISSING = "missing"
WARNING = "warning"
KINDS = (VIOLATION, WARNING, MISSING)

# Patients checked per chunk: one chunk of rows and findings is held in memory.
CHUNK_SIZE = 5000
# Findings per page of the checks page, and the most patients one page reads.
PAGE_FINDINGS = 50
PAGE_PATIENTS = 1000


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

    def as_dict(self, message: str | None = None) -> dict[str, object]:
        """The finding as ``check_data --format json`` writes it (``message``: the
        message already translated, as a caller writing many findings keeps it)."""
        confirmed = self.confirmation
        return {
            "site": self.site,
            "study_id": self.study_id,
            "kind": self.kind,
            "code": self.code,
            "fields": list(self.fields),
            "section": self.section,
            "message": str(self.message) if message is None else message,
            "confirmed": None
            if confirmed is None
            else {
                "by": confirmed.by,
                "at": confirmed.at.isoformat(timespec="seconds"),
                "reason": confirmed.reason,
            },
        }


@dataclass
class Tally:
    filled: int = 0
    applicable: int = 0

    @property
    def percent(self) -> float | None:
        return None if self.applicable == 0 else 100.0 * self.filled / self.applicable


def _completeness_default() -> defaultdict:
    return defaultdict(lambda: defaultdict(Tally))


@dataclass
class CheckReport:
    n_patients: int = 0
    findings: list[Finding] = field(default_factory=list)
    # completeness[site][section key] and completeness[site]["all"]; site "all" = overall
    completeness: dict[str, dict[str, Tally]] = field(default_factory=_completeness_default)
    sections: tuple[str, ...] = tuple(m.key for m in SECTION_MODELS)

    @property
    def section_titles(self) -> list[str]:
        return section_titles()

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
        return group_by_site(sorted(self.findings, key=lambda f: (f.site, f.study_id)))

    def completeness_rows(self) -> list[dict[str, object]]:
        """One row per site (overall last) with the percentage per section and overall."""
        return completeness_rows(self.completeness, self.sections)

    def as_dict(self) -> dict[str, object]:
        return {
            "n_patients": self.n_patients,
            "n_violations": self.n_violations,
            "n_warnings": self.n_warnings,
            "n_missing": self.n_missing,
            "findings": [
                f.as_dict() for f in sorted(self.findings, key=lambda f: (f.site, f.study_id))
            ],
            "completeness": completeness_dict(self.completeness),
        }


def section_titles() -> list[str]:
    return [capfirst(m._meta.verbose_name) for m in SECTION_MODELS]


def group_by_site(findings: Iterable[Finding]) -> dict[str, dict[str, list[Finding]]]:
    """Findings (already in site and study ID order) grouped by site, then study ID."""
    grouped: dict[str, dict[str, list[Finding]]] = {}
    for finding in findings:
        grouped.setdefault(finding.site, {}).setdefault(finding.study_id, []).append(finding)
    return grouped


def completeness_rows(completeness, sections=None) -> list[dict[str, object]]:
    """One row per site (overall last) with the percentage per section and overall."""
    sections = sections or tuple(m.key for m in SECTION_MODELS)
    rows = []
    for site in sorted(s for s in completeness if s != "all") + ["all"]:
        tallies = completeness.get(site)
        if tallies is None:
            continue
        rows.append(
            {
                "site": site,
                "sections": [tallies[key].percent for key in sections],
                "all": tallies["all"].percent,
            }
        )
    return rows


def completeness_dict(completeness) -> dict[str, dict[str, float | None]]:
    """``completeness`` as ``check_data --format json`` writes it."""
    return {
        site: {key: tally.percent for key, tally in tallies.items()}
        for site, tallies in completeness.items()
    }


def run_checks(patients: QuerySet[Patient], *, chunk_size: int = CHUNK_SIZE) -> CheckReport:
    """Check every patient of ``patients`` (already restricted by ``registry.access``).

    Holds every finding; ``scan`` streams them for a registry of any size.
    """
    report = CheckReport(completeness=completeness(patients))
    for n, findings in scan(patients, chunk_size=chunk_size):
        report.n_patients += n
        report.findings.extend(findings)
    return report


# --- reading the patients' flat values ------------------------------------------


def _section_path(model) -> str:
    return model._meta.get_field("patient").remote_field.related_name


# Where each flat value lives, as an ORM path from the patient.
PATHS: dict[str, str] = {
    "study_id": "study_id",
    "site": "site__code",
    "sex": "sex",
    "age_years": "age_years",
    **{
        name: f"{_section_path(model)}__{name}"
        for model in SECTION_MODELS
        for name in model.clinical_fields()
    },
}
VALUE_NAMES = tuple(PATHS)
_STATUS_PATHS = tuple(f"{_section_path(model)}__status" for model in SECTION_MODELS)
_COLUMNS = ("pk", *_STATUS_PATHS, *PATHS.values())
_N_HEAD = 1 + len(SECTION_MODELS)  # pk and the sections' statuses precede the values
# One site at a time, in study ID order: the (site, study ID) index's order.
_ORDER = ("site_id", "study_id")


def _rows(patients: QuerySet[Patient]) -> QuerySet:
    return patients.order_by(*_ORDER).values_list(*_COLUMNS)


def _sites(patients: QuerySet[Patient]) -> list[tuple[int, str]]:
    """``(pk, code)`` of the sites of ``patients``, in code order."""
    having = Site.objects.filter(pk__in=patients.order_by().values("site_id"))
    return list(having.order_by("code").values_list("pk", "code"))


def scan(
    patients: QuerySet[Patient], *, chunk_size: int = CHUNK_SIZE
) -> Iterator[tuple[int, list[Finding]]]:
    """``(patients checked, their findings)`` per chunk, in site code and study ID order."""
    for site_pk, _code in _sites(patients):
        rows = _stream(_rows(patients.filter(site_id=site_pk)), chunk_size)
        while chunk := list(itertools.islice(rows, chunk_size)):
            yield len(chunk), check_rows(chunk)


def _stream(rows: QuerySet, chunk_size: int) -> Iterator[tuple]:
    """The rows of ``rows``, read ``chunk_size`` at a time from a server-side cursor."""
    if connection.vendor != "postgresql":
        yield from rows.iterator(chunk_size=chunk_size)
        return
    from psycopg.types.datetime import TimestamptzLoader  # only on PostgreSQL

    sql, params = rows.query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        # psycopg's own (compiled) loader of time stamps, in the session's zone (UTC):
        # Django's per-zone loader is interpreted Python, and a million patients carry
        # some six million time stamps. None of the columns needs another conversion.
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(chunk_size):
            yield from chunk


# --- the rules over a chunk of rows -------------------------------------------------

# missing_for_completion reads only the flat values it is given: one blank instance
# per section stands for every patient's.
_MISSING = _("Missing in a completed section.")
_BLANK = {model: None for model in SECTION_MODELS}


def _blank(model):
    if _BLANK[model] is None:
        _BLANK[model] = model()
    return _BLANK[model]


def check_rows(rows: list[tuple]) -> list[Finding]:
    """The findings of rows of ``_rows`` (one query for the confirmations, if warned)."""
    findings: list[Finding] = []
    warned: list[tuple[int, Finding, str]] = []  # (position, finding, fingerprint)
    for row in rows:
        pk, statuses = row[0], row[1:_N_HEAD]
        values = dict(zip(VALUE_NAMES, row[_N_HEAD:], strict=True))
        head = (pk, values["study_id"], values["site"])
        for rule in rules.violations(values):
            findings.append(Finding(*head, VIOLATION, rule.code, rule.fields, rule.message))
        for rule in rules.warnings(values):
            finding = Finding(*head, WARNING, rule.code, rule.fields, rule.message)
            warned.append((len(findings), finding, rule.fingerprint(values)))
            findings.append(finding)
        for model, status in zip(SECTION_MODELS, statuses, strict=True):
            if status != SectionStatus.COMPLETE:
                continue
            for name in _blank(model).missing_for_completion(values):
                findings.append(Finding(*head, MISSING, name, (name,), _MISSING, model.key))
    _attach_confirmations(findings, warned)
    return findings


def _attach_confirmations(findings: list[Finding], warned: list) -> None:
    if not warned:
        return
    found = _confirmations({finding.patient_pk for _, finding, _ in warned})
    for position, finding, fingerprint in warned:
        confirmed = found.get((finding.patient_pk, finding.code, fingerprint))
        if confirmed is not None:
            findings[position] = Finding(
                *(getattr(finding, f) for f in _FINDING_FIELDS), confirmation=confirmed
            )


_FINDING_FIELDS = ("patient_pk", "study_id", "site", "kind", "code", "fields", "message")


def _confirmations(patient_pks: set[int]) -> dict[tuple, Confirmation]:
    """The latest confirmation of each (patient, rule code, values), one query."""
    rows = (
        WarningConfirmation.objects.filter(patient__in=patient_pks)
        .order_by("confirmed_at", "pk")
        .values_list(
            "patient_id", "code", "fingerprint", "confirmed_by__username", "confirmed_at", "reason"
        )
    )
    return {
        (pk, code, fingerprint): Confirmation(by or "", at, reason)
        for pk, code, fingerprint, by, at, reason in rows
    }


# --- completeness: one aggregate query ----------------------------------------------


def _applies(name: str) -> Q:
    """``rules.field_applies`` as a condition on the patient's row."""
    branch = rules.BRANCHING.get(name)
    if branch is None:
        return Q()
    return Q(**{f"{PATHS[branch.controller]}__in": branch.values})


def _filled(model, name: str) -> Q:
    filled = Q(**{f"{PATHS[name]}__isnull": False})
    if isinstance(model._meta.get_field(name), models.CharField | models.TextField):
        filled &= ~Q(**{PATHS[name]: ""})
    return filled


def completeness(patients: QuerySet[Patient]) -> dict[str, dict[str, Tally]]:
    """Applicable and filled values per site and section (and "all"), one query."""
    counts = {}
    for model in SECTION_MODELS:
        for name in model.clinical_fields():
            applies = _applies(name)
            counts[f"a__{model.key}__{name}"] = Count("pk", filter=applies)
            counts[f"f__{model.key}__{name}"] = Count("pk", filter=applies & _filled(model, name))
    result = _completeness_default()
    for row in patients.order_by().values("site__code").annotate(**counts):
        site = row.pop("site__code")
        for key, n in row.items():
            which, section, _name = key.split("__", 2)
            for site_key in (site, "all"):
                for section_key in (section, "all"):
                    tally = result[site_key][section_key]
                    if which == "a":
                        tally.applicable += n
                    else:
                        tally.filled += n
    return result


# --- one page of the checks page -----------------------------------------------------


@dataclass
class CheckPage:
    """The findings of up to ``PAGE_PATIENTS`` patients of one site, from a study ID on."""

    findings: list[Finding]
    site: str | None
    n_patients: int  # patients read for this page
    after: str = ""  # the page starts after this study ID of ``site``
    first_site: str | None = None  # the first page's site
    next_site: str | None = None  # where the next page starts (None: this is the last)
    next_after: str = ""

    def by_site(self) -> dict[str, dict[str, list[Finding]]]:
        return group_by_site(self.findings)


def check_page(
    patients: QuerySet[Patient],
    *,
    site: str | None = None,
    after: str = "",
    kind: str = "",
    code: str = "",
    per_page: int = PAGE_FINDINGS,
    max_patients: int = PAGE_PATIENTS,
) -> CheckPage:
    """The next ``per_page`` findings (whole patients) of ``site`` after study ID ``after``.

    ``site`` None starts at the first site of ``patients``; a page stays within one
    site, so it is read from the ``(site, study_id)`` index. ``kind`` and ``code``
    keep only those findings. A constant number of queries.
    """
    pks = {code_: pk for pk, code_ in _sites(patients)}
    sites = list(pks)
    if site not in pks:
        site, after = (sites[0] if sites else None), ""
    if site is None:
        return CheckPage([], None, 0)
    # The page's keys first, from the (site, study ID) index, then their rows: asked
    # for the joined rows directly, PostgreSQL walked the study ID index of every site.
    wanted = patients.filter(site_id=pks[site], study_id__gt=after).order_by(*_ORDER)
    keys = list(wanted.values_list("pk", flat=True)[:max_patients])
    rows = list(_rows(Patient.objects.filter(pk__in=keys)))
    findings, read = _page_findings(rows, kind=kind, code=code, per_page=per_page)
    page = CheckPage(findings, site, read, after, sites[0])
    if read < len(rows) or len(keys) == max_patients:
        page.next_site, page.next_after = site, rows[read - 1][_N_HEAD]
    elif sites.index(site) + 1 < len(sites):
        page.next_site = sites[sites.index(site) + 1]
    return page


def _page_findings(rows, *, kind: str, code: str, per_page: int) -> tuple[list[Finding], int]:
    """The wanted findings of whole patients until ``per_page``, and the rows read."""
    findings = [
        f for f in check_rows(rows) if (not kind or f.kind == kind) and (not code or f.code == code)
    ]
    if len(findings) <= per_page:
        return findings, len(rows)
    # Whole patients: the page ends with the last finding of the per_page-th's patient.
    last = findings[per_page - 1].patient_pk
    end = per_page
    while end < len(findings) and findings[end].patient_pk == last:
        end += 1
    return findings[:end], [row[0] for row in rows].index(last) + 1
