"""Smaller guards: nothing decided in advance, repeated clicks asked about, ranges in the
browser, labels rather than column codes."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from registry import rules
from registry.display import MRS_FIELDS
from registry.forms import section_form_class
from registry.models import Admission, ContactAttempt, FollowUp, PatientExclusion
from registry.workflow import services as workflow
from registry.workflow.forms import ExclusionForm

from .factories import AdmissionFactory, PatientFactory, aware

pytestmark = pytest.mark.django_db


def test_the_exclusion_form_comes_with_no_reason_and_no_date_chosen():
    form = ExclusionForm()
    assert form["reason"].value() in (None, "")
    assert form["excluded_on"].value() is None
    assert not ExclusionForm({}).is_valid()


def test_a_single_click_on_exclude_excludes_nobody(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    client.force_login(nurse)
    url = reverse("registry:patient_calls", args=[patient.pk])
    assert client.post(url, {"action": "exclude"}).status_code == 200
    assert not PatientExclusion.objects.exists()


def test_a_second_identical_contact_attempt_on_the_same_day_asks_for_confirmation(site_a, nurse):
    patient = PatientFactory(site=site_a)
    AdmissionFactory(patient=patient)
    today = timezone.localdate()
    workflow.contact_attempt_log(user=nurse, patient=patient, outcome="no_answer")
    with pytest.raises(ValidationError) as asked:
        workflow.contact_attempt_log(user=nurse, patient=patient, outcome="no_answer")
    assert "confirm_repeat" in asked.value.message_dict
    workflow.contact_attempt_log(
        user=nurse, patient=patient, outcome="no_answer", confirm_repeat=True
    )
    workflow.contact_attempt_log(user=nurse, patient=patient, outcome="reached")
    assert ContactAttempt.objects.filter(attempt_date=today).count() == 3


def test_number_inputs_carry_min_and_max_from_the_rules():
    for model in (Admission, FollowUp):
        form = section_form_class(model)()
        for name in model.clinical_fields():
            if name in rules.RANGES:
                low, high = rules.RANGES[name]
                html = str(form[name])
                if name in MRS_FIELDS:  # a pick list of exactly the grades in range
                    assert re.findall(r'<option value="(\d)"', html) == [
                        str(grade) for grade in range(low, high + 1)
                    ], name
                    continue
                assert f'min="{low}"' in html and f'max="{high}"' in html, name


def test_queries_show_the_field_label_not_the_column_code(client, monitor, site_a):
    patient = PatientFactory(site=site_a)
    workflow.query_raise(user=monitor, patient=patient, field="premorbid_mrs", text="Source?")
    client.force_login(monitor)
    page = client.get(reverse("registry:query_list")).content.decode()
    assert "Pre-stroke mRS" in page and "premorbid_mrs" not in page


def test_the_drill_down_list_writes_the_door_time_in_the_registry_format(
    client, investigator, site_a
):
    patient = PatientFactory(site=site_a)
    AdmissionFactory(patient=patient, door_time=aware(2026, 1, 10, 9, 5), onset_time=None)
    client.force_login(investigator)
    page = client.get(reverse("analytics:patients"), {"cell": "baseline:patients"})
    assert "2026-01-10 09:05" in page.content.decode()
