"""benchmarks/make_cohort.py: the benchmark's synthetic registry obeys every model rule."""

import pytest
from django.db import models

from analytics import datasets
from benchmarks import make_cohort as generator
from registry.models import (
    ALL_SECTIONS_COMPLETE,
    Patient,
    PatientExclusion,
    ScreeningEntry,
    mrs_3m_missing,
    sections_complete,
)


@pytest.mark.django_db(transaction=True)  # the generator runs VACUUM / ANALYZE afterwards
def test_a_synthetic_cohort_passes_full_clean_and_its_flow_chart_adds_up():
    generator.make_cohort(400, sites=3, quiet=True)
    # Every patient, screening entry and exclusion through the models' full_clean().
    assert generator.check_sample(1000) == 400
    assert Patient.objects.count() == 400
    enrolled = ScreeningEntry.objects.filter(patient__isnull=False).count()
    assert enrolled == 400
    assert ScreeningEntry.objects.count() == 400 + 60  # 15 % screened, not enrolled
    flow = datasets.flow()
    assert flow["enrolled_without_screening"] == 0
    assert flow["excluded_at_screening"]["total"] == 48  # 12 % of 400
    assert flow["consent_refused"] == 12  # 3 %
    excluded = PatientExclusion.objects.filter(active=True, reason="lost_to_followup").count()
    assert 0 < excluded == flow["excluded_after_enrolment"]["total"]
    # The stored worklist flag agrees with its definition for every generated patient.
    disagree = Patient.objects.annotate(missing=mrs_3m_missing()).exclude(
        mrs_3m_missing=models.F("missing")
    )
    assert not disagree.exists()
    assert 0 < Patient.objects.filter(mrs_3m_missing=True).count() < 400
    # So do the stored complete sections (the list's "section incomplete" filter).
    disagree = Patient.objects.annotate(defined=sections_complete()).exclude(
        sections_complete=models.F("defined")
    )
    assert not disagree.exists()
    incomplete = Patient.objects.exclude(sections_complete=ALL_SECTIONS_COMPLETE).count()
    assert 0 < incomplete < 400
