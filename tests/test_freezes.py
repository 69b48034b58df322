"""Data freezes: the study tables, quality indicators and exports reproduced from a
freeze however the registry changes afterwards, the comparison, access and audit."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from analytics.quality import quality_indicators
from analytics.tables import add_provenance, strip_internal, study_tables
from registry import freezes
from registry.models import (
    SECTION_MODELS,
    Admission,
    DataFreeze,
    FollowUp,
    FreezeDeletion,
    FreezeImmutable,
    Patient,
    patients_refresh_stored,
)

from .analytics_cohort import build_cohort


@pytest.fixture(autouse=True)
def freeze_cache(tmp_path, settings):
    settings.FREEZE_CACHE_DIR = str(tmp_path / "freeze-cache")


@pytest.fixture
def cohort(site_a, site_b):
    return build_cohort(site_a, site_b)


@pytest.fixture
def frozen(cohort, admin_user):
    return freezes.freeze_create(name="submission-1", reason="manuscript", user=admin_user)


def tables_json(freeze=None) -> str:
    result = add_provenance(strip_internal(study_tables(None, freeze=freeze)))
    result.pop("generated_at")
    return json.dumps(result, sort_keys=True)


def change_three_values_and_delete_a_patient(cohort) -> None:
    """A-01's 3-month mRS, B-01's NIHSS and A-02's age change; A-03 is deleted."""
    followup = FollowUp.objects.get(patient=cohort["A-01"])
    FollowUp.objects.filter(pk=followup.pk).update(mrs_3m=(followup.mrs_3m + 1) % 6)
    admission = Admission.objects.get(patient=cohort["B-01"])
    Admission.objects.filter(pk=admission.pk).update(nihss_admission=admission.nihss_admission + 1)
    Patient.objects.filter(pk=cohort["A-02"].pk).update(age_years=40)
    patients_refresh_stored()
    for model in SECTION_MODELS:
        model.objects.filter(patient=cohort["A-03"]).delete()
    cohort["A-03"].delete()


def test_the_tables_from_a_freeze_stay_the_same_and_the_comparison_lists_the_four_changes(
    cohort, frozen
):
    before = tables_json(frozen)
    live_before = tables_json()
    change_three_values_and_delete_a_patient(cohort)

    assert tables_json(frozen) == before
    assert tables_json() != live_before
    comparison = freezes.freeze_compare(freeze=frozen)
    assert comparison.added == []
    assert comparison.removed == ["A-03"]
    changed = {(c.study_id, c.column, c.before, c.after) for c in comparison.changes}
    assert {(s, c) for s, c, _b, _a in changed} == {
        ("A-01", "mrs_3m"),
        ("B-01", "nihss_admission"),
        ("A-02", "age_years"),
    }
    assert ("A-02", "age_years", str(cohort["A-02"].age_years), "40") in changed
