"""A cohort drawn by ``registry.synthetic`` written to the test database."""

from __future__ import annotations

import numpy as np

from registry import synthetic
from registry.choices import SectionStatus
from registry.models import (
    SECTION_MODELS,
    Patient,
    PatientExclusion,
    ScreeningEntry,
    Site,
    patients_refresh_stored,
)


def write(cohort: synthetic.Cohort) -> None:
    """The drawn cohort through bulk_create, which calls no save(); the stored
    patient columns are then refreshed by their definition. Sites are created on
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
    patients_refresh_stored()
