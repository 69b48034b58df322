"""What the section forms offer a nurse on a tablet: the mRS as a pick list of its grades,
"Now" and "Today" buttons, the door time on the procedure form, "Save and next section"."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.choices import MRS_LABELS, SectionStatus
from registry.models import Admission

from .factories import AdmissionFactory, PatientFactory
from .test_views import admission_post, login, text

pytestmark = pytest.mark.django_db


def section_url(patient, key: str) -> str:
    return reverse("registry:section_edit", args=[patient.pk, key])


def options(page: str, name: str) -> list[tuple[str, str]]:
    select = re.search(rf'<select name="{name}".*?</select>', page, re.S).group(0)
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)


def test_each_mrs_field_is_a_pick_list_of_its_grades_in_words(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    page = text(login(client, nurse).get(section_url(patient, "admission")))
    pre_stroke = options(page, "premorbid_mrs")
    # Before the stroke a patient is alive: grades 0-5 only (rules.RANGES).
    assert [value for value, _ in pre_stroke] == ["", "0", "1", "2", "3", "4", "5"]
    assert pre_stroke[1][1].strip() == str(MRS_LABELS[0])
    followup = text(client.get(section_url(patient, "followup")))
    grades = [value for value, _ in options(followup, "mrs_3m")]
    assert grades == ["", "0", "1", "2", "3", "4", "5", "6"]


def test_a_grade_picked_from_the_list_is_stored_as_its_number(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    response = login(client, nurse).post(
        section_url(patient, "admission"), admission_post(premorbid_mrs="2", admission_mrs="")
    )
    assert response.status_code == 302
    admission = Admission.objects.get()
    assert (admission.premorbid_mrs, admission.admission_mrs) == (2, None)


def test_a_grade_outside_the_fields_range_is_refused_next_to_the_field(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    response = login(client, nurse).post(
        section_url(patient, "admission"), admission_post(premorbid_mrs="6")
    )
    assert response.status_code == 200
    assert "premorbid_mrs" in response.context["form"].errors
    assert not Admission.objects.exists()


def test_every_page_carries_the_translated_now_and_today_labels_and_the_hospital_zone(
    client, nurse, site_a
):
    patient = PatientFactory(site=site_a)
    page = text(login(client, nurse).get(section_url(patient, "admission")))
    assert 'data-time-zone="Asia/Ho_Chi_Minh"' in page
    assert 'data-label-now="Now"' in page
    assert 'data-label-today="Today"' in page
    assert "registry/fill-now.js" in page


def test_the_procedure_form_shows_the_door_time_read_only(client, nurse, site_a):
    admission = AdmissionFactory(patient=PatientFactory(site=site_a))
    page = text(login(client, nurse).get(section_url(admission.patient, "procedure")))
    shown = re.search(r'registry-shown-value">(.*?)</div>', page).group(1)
    assert "Door time" in shown
    assert timezone.localtime(admission.door_time).strftime("%Y-%m-%d %H:%M") in shown
    assert 'name="door_time"' not in page


def test_the_procedure_form_says_when_the_door_time_is_not_recorded(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    page = text(login(client, nurse).get(section_url(patient, "procedure")))
    assert re.search(r"Door time</span>\s*<span[^>]*>Not recorded</span>", page)


def test_save_and_next_section_saves_and_opens_the_next_sections_form(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    response = login(client, nurse).post(
        section_url(patient, "admission"), admission_post(action="next")
    )
    assert response.status_code == 302
    assert response["Location"] == section_url(patient, "imaging")
    assert Admission.objects.get().status == SectionStatus.DRAFT


def test_save_and_next_section_keeps_a_complete_section_complete(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    login(client, nurse).post(
        section_url(patient, "admission"), admission_post(dysphagia="True", action="complete")
    )
    response = client.post(
        section_url(patient, "admission"),
        admission_post(
            dysphagia="True",
            nihss_admission="18",
            version="1",
            action="next",
            reason_for_change="NIHSS re-scored",
        ),
    )
    assert response["Location"] == section_url(patient, "imaging")
    admission = Admission.objects.get()
    assert (admission.status, admission.nihss_admission) == (SectionStatus.COMPLETE, 18)


def test_the_last_section_has_no_save_and_next_button(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    login(client, nurse)
    assert "Save and next section" in text(client.get(section_url(patient, "admission")))
    assert "Save and next section" not in text(client.get(section_url(patient, "followup")))
