"""The printable case-report form: one patient's five sections, and the blank CRF."""

import re

import pytest
from django.urls import reverse

from registry.models import SECTION_MODELS

from .factories import PatientFactory, full_patient
from .test_views import login, text

pytestmark = pytest.mark.django_db


def test_a_patients_printed_crf_holds_every_section_with_its_values_read_only(
    client, nurse, site_a
):
    patient = full_patient(site=site_a, study_id="CT-PRINT")
    page = text(login(client, nurse).get(reverse("registry:patient_print", args=[patient.pk])))
    assert "CT-PRINT" in page
    for model in SECTION_MODELS:
        assert f'id="print-{model.key}"' in page
    nihss = patient.admission.nihss_admission
    assert re.search(rf'name="admission-nihss_admission" value="{nihss}"[^>]*disabled', page)
    # Fields are read-only and the page posts nothing.
    assert "<form" not in page.split('id="main"')[1]


def test_the_blank_crf_has_every_section_with_nothing_filled_or_ticked(client, nurse, site_a):
    PatientFactory(site=site_a, study_id="CT-NOT-SHOWN")
    page = text(login(client, nurse).get(reverse("registry:blank_crf")))
    for model in SECTION_MODELS:
        assert f'id="print-{model.key}"' in page
    assert "CT-NOT-SHOWN" not in page
    assert not re.search(r'type="radio"[^>]*checked', page)
    assert not re.search(r'name="admission-nihss_admission"[^>]*value=', page)


def test_the_overview_and_the_patient_list_link_to_the_printable_forms(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    login(client, nurse)
    overview = text(client.get(reverse("registry:patient_detail", args=[patient.pk])))
    assert reverse("registry:patient_print", args=[patient.pk]) in overview
    assert reverse("registry:blank_crf") in text(client.get(reverse("registry:patient_list")))
