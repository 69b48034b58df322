"""A cohort drawn by ``registry.synthetic`` written to the test database."""

from __future__ import annotations

import datetime as dt

import numpy as np

from registry import synthetic
from registry.choices import SectionStatus
from registry.models import (
    SECTION_MODELS,
    Admission,
    Complications,
    Patient,
    PatientExclusion,
    Procedure,
    ScreeningEntry,
    Site,
    patients_sections_written,
)


def write(cohort: synthetic.Cohort) -> None:
    """The drawn cohort through bulk_create, which calls no save(); what is stored
    beside the sections is then refreshed by its definition. Sites are created on
    first use, so a second cohort (``first_id`` after the first) adds to the same sites."""
    sites = {
        code: Site.objects.get_or_create(code=code, defaults={"name": code})[0]
        for code in cohort.sites
    }

    def instances(model, table):
        for record in table.records():
            if "site" in record:
                record["site"] = sites[record["site"]]
            yield model(**record)

    Patient.objects.bulk_create(instances(Patient, cohort.patients()))
    for model in SECTION_MODELS:
        table, complete = cohort.section(model)
        table.add("status", np.where(complete, SectionStatus.COMPLETE, SectionStatus.DRAFT))
        model.objects.bulk_create(instances(model, table))
    ScreeningEntry.objects.bulk_create(instances(ScreeningEntry, cohort.screening_log()))
    PatientExclusion.objects.bulk_create(instances(PatientExclusion, cohort.exclusions()))
    patients_sections_written(patient_ids=None)


# Free text a cell can hold: quoting, formula prefixes, line ends, non-ASCII.
AWKWARD_TEXT = [
    "Solitaire, 4x20",
    'the "Enterprise" stent',
    "two\nlines",
    "carriage\rreturn",
    "crlf\r\nend",
    "=HYPERLINK(1)",
    "-4",
    "+x",
    "@x",
    "\tindented",
    "Nguyễn Văn Ánh — ổn định",
    "",
    "  spaced  ",
    "'quoted'",
    "\\.",
]


def awkward_cohort(*, texts: list[str] = AWKWARD_TEXT, whole_seconds: bool = False) -> None:
    """A drawn cohort (door times at every hour, so some fall on another date in UTC than
    in the registry's zone), then every edge written over some of its patients: free text
    that needs quoting, neutralising or non-ASCII bytes (``texts``), unknown times, times
    with seconds (half minutes round to even; ``whole_seconds`` for a reader that keeps
    only milliseconds), ages over the top-code, a patient without sections."""
    write(synthetic.draw(np.random.default_rng(11), 120, sites=("S001", "S002")))
    ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True))
    for pk, text in zip(ids, texts, strict=False):
        Procedure.objects.filter(patient_id=pk).update(stent_device=text)
    Admission.objects.filter(patient_id__in=ids[20:30]).update(onset_time=None)
    Admission.objects.filter(patient_id__in=ids[30:33]).update(door_time=None)
    for k, admission in enumerate(Admission.objects.filter(patient_id__in=ids[40:52])):
        if whole_seconds:
            before = dt.timedelta(seconds=30 * k + 1)
        else:
            before = dt.timedelta(seconds=30 * k, microseconds=k % 3)
        Admission.objects.filter(pk=admission.pk).update(onset_time=admission.door_time - before)
    Patient.objects.filter(pk__in=ids[60:64]).update(age_years=95)
    Patient.objects.filter(pk__in=ids[64:66]).update(age_years=90)
    bare = Patient.objects.get(pk=ids[70])
    for model in (Admission, Procedure, Complications):
        model.objects.filter(patient=bare).delete()
    # The updates above bypass Section.save(): store what they changed, as the writers do.
    patients_sections_written(patient_ids=ids)
