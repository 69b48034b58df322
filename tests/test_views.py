"""The nurse's screens: who may open what, the form flow, the History tab, the list."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from registry import services
from registry.choices import SectionStatus
from registry.models import Admission, Patient

from .factories import (
    ONSET,
    AdmissionFactory,
    ImagingFactory,
    PatientFactory,
    ProcedureFactory,
    full_patient,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient_a(site_a):
    return full_patient(site=site_a, study_id="CT-001")


def pages(patient) -> dict[str, str]:
    return {
        "list": reverse("registry:patient_list"),
        "new": reverse("registry:patient_create"),
        "overview": reverse("registry:patient_detail", args=[patient.pk]),
        "history": reverse("registry:patient_history", args=[patient.pk]),
        "section": reverse("registry:section_edit", args=[patient.pk, "imaging"]),
    }


def login(client, user):
    client.force_login(user)
    return client


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- Access: each role x each page -----------------------------------------------------


@pytest.mark.parametrize("page", ["list", "new", "overview", "history", "section"])
def test_anonymous_visitors_are_sent_to_the_login_page(client, patient_a, page):
    url = pages(patient_a)[page]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


EXPECTED = {
    "nurse": {"list": 200, "new": 200, "overview": 200, "history": 200, "section": 200},
    "admin_user": {"list": 200, "new": 200, "overview": 200, "history": 200, "section": 200},
    "investigator": {"list": 200, "new": 403, "overview": 200, "history": 200, "section": 403},
    "monitor": {"list": 200, "new": 403, "overview": 200, "history": 200, "section": 403},
    # A nurse of another site: the patient does not exist for her.
    "nurse_b": {"list": 200, "new": 200, "overview": 404, "history": 404, "section": 404},
}


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("page", ["list", "new", "overview", "history", "section"])
def test_each_role_gets_the_expected_answer_on_each_page(client, request, patient_a, role, page):
    user = request.getfixturevalue(role)
    response = login(client, user).get(pages(patient_a)[page])
    assert response.status_code == EXPECTED[role][page]


def test_another_sites_patient_is_not_listed(client, patient_a, nurse_b):
    response = login(client, nurse_b).get(reverse("registry:patient_list"))
    assert "CT-001" not in text(response)


def test_an_investigator_cannot_post_a_section(client, patient_a, investigator):
    url = reverse("registry:section_edit", args=[patient_a.pk, "admission"])
    response = login(client, investigator).post(url, {"nihss_admission": "3", "version": "1"})
    assert response.status_code == 403
    assert Admission.objects.get().nihss_admission == 18


def test_another_sites_nurse_cannot_post_a_section(client, patient_a, nurse_b):
    url = reverse("registry:section_edit", args=[patient_a.pk, "admission"])
    response = login(client, nurse_b).post(url, {"nihss_admission": "3", "version": "1"})
    assert response.status_code == 404
    assert Admission.objects.get().nihss_admission == 18


def test_an_unknown_section_is_not_found(client, patient_a, nurse):
    url = reverse("registry:patient_detail", args=[patient_a.pk]) + "billing/"
    assert login(client, nurse).get(url).status_code == 404


def test_the_overview_offers_no_edit_button_to_an_investigator(client, patient_a, investigator):
    page = text(login(client, investigator).get(pages(patient_a)["overview"]))
    assert reverse("registry:section_edit", args=[patient_a.pk, "admission"]) not in page
    assert "New patient" not in page


def test_the_overview_offers_edit_buttons_to_a_nurse(client, patient_a, nurse):
    page = text(login(client, nurse).get(pages(patient_a)["overview"]))
    assert reverse("registry:section_edit", args=[patient_a.pk, "admission"]) in page


def test_the_reports_link_is_shown_only_to_roles_that_read_reports(
    client, patient_a, nurse, investigator
):
    assert 'href="/reports/"' not in text(login(client, nurse).get(pages(patient_a)["list"]))
    page = text(login(client, investigator).get(pages(patient_a)["list"]))
    assert 'href="/reports/"' in page


def test_the_login_page_has_labelled_fields(client):
    page = text(client.get(reverse("login")))
    assert '<label class="form-label" for="id_username">' in page
    assert '<label class="form-label" for="id_password">' in page


# --- New patient -------------------------------------------------------------------------


def test_a_nurse_registers_a_patient_at_her_site(client, nurse, site_a):
    response = login(client, nurse).post(
        reverse("registry:patient_create"),
        {"study_id": "CT-100", "site": site_a.pk, "sex": "female", "age_years": "74"},
    )
    patient = Patient.objects.get(study_id="CT-100")
    assert response["Location"] == reverse("registry:patient_detail", args=[patient.pk])
    assert patient.created_by == nurse


def test_a_nurse_cannot_register_a_patient_at_another_site(client, nurse, site_b):
    response = login(client, nurse).post(
        reverse("registry:patient_create"),
        {"study_id": "CT-100", "site": site_b.pk, "sex": "female", "age_years": "74"},
    )
    assert response.status_code == 200
    assert "site" in response.context["form"].errors
    assert not Patient.objects.exists()


def test_a_study_id_already_registered_is_refused_next_to_the_field(client, nurse, site_a):
    PatientFactory(site=site_a, study_id="CT-100")
    response = login(client, nurse).post(
        reverse("registry:patient_create"),
        {"study_id": "CT-100", "site": site_a.pk, "sex": "male", "age_years": "60"},
    )
    assert "study_id" in response.context["form"].errors
    assert Patient.objects.count() == 1


# --- Section form flow ------------------------------------------------------------------


def admission_post(**overrides) -> dict:
    data = {
        "onset_time": "2024-03-01T07:30",
        "door_time": "2024-03-01T09:45",
        "transfer": "True",
        "nihss_admission": "16",
        "premorbid_mrs": "0",
        "admission_mrs": "4",
        "hypertension": "True",
        "smoking": "False",
        "diabetes": "False",
        "myocardial_infarction": "False",
        "atrial_fibrillation": "True",
        "chronic_kidney_disease": "False",
        "dysphagia": "",
        "iv_thrombolysis": "False",
        "version": "0",
        "action": "draft",
    }
    data.update(overrides)
    return data


def test_a_bad_input_comes_back_with_every_value_kept_and_is_then_corrected(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    login(client, nurse)

    response = client.post(url, admission_post(nihss_admission="43", door_time="2024-03-01T07:00"))
    assert response.status_code == 200
    form = response.context["form"]
    assert "nihss_admission" in form.errors
    assert form.errors["door_time"] == ["Door time must not be before onset time."]
    page = text(response)
    assert 'value="43"' in page
    assert 'value="2024-03-01T07:00"' in page
    assert 'value="2024-03-01T07:30"' in page
    assert re.search(r'name="transfer" value="True"\s+id="id_transfer_1" checked', page)
    assert not Admission.objects.exists()

    response = client.post(url, admission_post())
    assert response.status_code == 302
    admission = Admission.objects.get()
    assert admission.nihss_admission == 16
    assert admission.transfer is True
    assert admission.dysphagia is None
    assert admission.status == SectionStatus.DRAFT
    # The date-time was read in the hospital's time zone (Asia/Ho_Chi_Minh, UTC+7).
    assert admission.door_time == dt.datetime(2024, 3, 1, 2, 45, tzinfo=dt.UTC)


def test_the_form_shows_stored_values_in_the_hospital_time_zone(client, nurse, site_a):
    admission = AdmissionFactory(patient=PatientFactory(site=site_a))
    url = reverse("registry:section_edit", args=[admission.patient.pk, "admission"])
    page = text(login(client, nurse).get(url))
    assert 'type="datetime-local" name="onset_time" value="2020-06-01T08:00"' in page
    assert 'name="hypertension" value="True" id="id_hypertension_1" checked' in page


def test_mark_complete_with_a_blank_field_says_which_field(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    response = login(client, nurse).post(url, admission_post(action="complete"))
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "dysphagia": ["Required to mark the section complete."]
    }


def test_a_rule_from_another_section_shows_next_to_the_field(client, nurse, site_a):
    admission = AdmissionFactory(patient=PatientFactory(site=site_a))
    url = reverse("registry:section_edit", args=[admission.patient.pk, "procedure"])
    early = timezone.localtime(admission.door_time - dt.timedelta(minutes=1))
    early = early.strftime("%Y-%m-%dT%H:%M")
    response = login(client, nurse).post(
        url, {"groin_puncture_time": early, "version": "0", "action": "draft"}
    )
    errors = response.context["form"].errors
    assert errors["groin_puncture_time"] == ["Groin puncture time must not be before door time."]


def test_branch_fields_carry_data_attributes_and_a_note_for_no_javascript(
    client, nurse, site_a, patient_a
):
    url = reverse("registry:section_edit", args=[patient_a.pk, "imaging"])
    page = text(login(client, nurse).get(url))
    assert 'data-branch-controller="circulation" data-branch-value="anterior"' in page
    assert 'data-branch-controller="circulation" data-branch-value="posterior"' in page
    assert "Fill only if Circulation = Anterior." in page
    assert "registry/branching.js" in page
    assert "<script>" not in page  # no inline script: the CSP forbids it


def test_labels_keep_the_case_of_clinical_abbreviations(client, nurse, patient_a):
    url = reverse("registry:section_edit", args=[patient_a.pk, "complications"])
    page = text(login(client, nurse).get(url))
    assert "mRS at discharge" in page
    assert "MRS at discharge" not in page
    assert "Symptomatic ICH (sICH)" in page


def test_mt_details_are_tied_to_mt_performed(client, nurse, patient_a):
    url = reverse("registry:section_edit", args=[patient_a.pk, "procedure"])
    page = text(login(client, nurse).get(url))
    assert page.count('data-branch-controller="mt_performed" data-branch-value="True"') == 3


def test_a_complete_section_asks_for_a_reason_before_changing(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    login(client, nurse)
    client.post(url, admission_post(dysphagia="False", action="complete"))
    assert Admission.objects.get().status == SectionStatus.COMPLETE

    page = text(client.get(url))
    assert 'name="reason_for_change"' in page
    response = client.post(
        url, admission_post(dysphagia="False", nihss_admission="17", version="1", action="complete")
    )
    assert response.status_code == 200
    assert "reason_for_change" in response.context["form"].errors
    assert 'value="17"' in text(response)

    response = client.post(
        url,
        admission_post(
            dysphagia="False",
            nihss_admission="17",
            version="1",
            action="complete",
            reason_for_change="NIHSS re-scored by neurologist",
        ),
    )
    assert response.status_code == 302
    assert Admission.objects.get().nihss_admission == 17


def test_an_unchanged_complete_section_saves_without_a_reason(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    login(client, nurse)
    client.post(url, admission_post(dysphagia="False", action="complete"))
    response = client.post(url, admission_post(dysphagia="False", version="1", action="complete"))
    assert response.status_code == 302


def test_an_untouched_time_with_seconds_is_not_a_change(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    onset = ONSET + dt.timedelta(seconds=30)
    AdmissionFactory(patient=patient, onset_time=onset, status=SectionStatus.COMPLETE)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    page = text(login(client, nurse).get(url))
    shown = re.search(r'name="onset_time" value="([^"]+)"', page).group(1)
    door = re.search(r'name="door_time" value="([^"]+)"', page).group(1)
    imaging = re.search(r'name="imaging_time" value="([^"]+)"', page).group(1)
    data = admission_post(
        onset_time=shown,
        door_time=door,
        imaging_time=imaging,
        transfer="False",
        nihss_admission="18",
        admission_mrs="5",
        hypertension="True",
        atrial_fibrillation="False",
        dysphagia="False",
        version="1",
        action="complete",
    )
    response = client.post(url, data)
    assert response.status_code == 302  # no reason asked: nothing changed
    assert Admission.objects.get().onset_time == onset


def test_a_stale_form_is_refused_with_the_stored_values_and_can_be_resubmitted(
    client, nurse, site_a
):
    patient = PatientFactory(site=site_a)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    login(client, nurse)
    client.post(url, admission_post())
    services.section_save(
        patient=patient,
        section_key="admission",
        user=nurse,
        data={"nihss_admission": 20},
        complete=False,
        expected_version=1,
    )
    response = client.post(url, admission_post(nihss_admission="15", version="1"))
    assert response.status_code == 200
    page = text(response)
    assert "NIHSS on admission: 20" in page
    assert 'name="version" value="2"' in page
    assert 'value="15"' in page
    response = client.post(url, admission_post(nihss_admission="15", version="2"))
    assert response.status_code == 302
    assert Admission.objects.get().nihss_admission == 15


# --- Overview and History ------------------------------------------------------------------


def test_the_overview_shows_the_timeline_with_intervals(client, nurse, patient_a):
    page = text(login(client, nurse).get(pages(patient_a)["overview"]))
    assert "2020-06-01 08:00" in page  # onset, hospital time
    assert "Onset to door: <strong>4 h 00 min</strong>" in page
    assert "Door to groin puncture: <strong>1 h 00 min</strong>" in page
    assert "Procedure time: <strong>50 min</strong>" in page
    assert "2020-08-30" in page  # 3-month follow-up


def test_the_overview_shows_each_sections_status(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    services.section_save(
        patient=patient,
        section_key="imaging",
        user=nurse,
        data={"circulation": "posterior", "mri_diagnosis": "stenosis"},
        complete=False,
    )
    page = text(login(client, nurse).get(reverse("registry:patient_detail", args=[patient.pk])))
    assert page.count("Not started") == 4
    assert "Draft" in page
    assert "Posterior" in page


def test_the_history_tab_shows_labels_words_and_the_reason(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    login(client, nurse)
    client.post(url, admission_post(dysphagia="False", action="complete"))
    client.post(
        url,
        admission_post(
            dysphagia="True",
            premorbid_mrs="1",
            version="1",
            action="complete",
            reason_for_change="Corrected from the ward notes",
        ),
    )
    page = text(client.get(reverse("registry:patient_history", args=[patient.pk])))
    assert "Dysphagia on admission</span>: No &rarr; Yes" in page
    assert (
        "Pre-stroke mRS</span>: 0 - no symptoms &rarr; "
        "1 - no significant disability despite symptoms" in page
    )
    assert "Corrected from the ward notes" in page
    assert "nurse_a" in page
    assert "Status</span>: Complete" in page  # created complete: the new value alone
    assert "Draft &rarr; Complete" not in page
    assert page.index("Corrected from the ward notes") < page.index("Created")


def test_the_history_tab_has_no_form_to_edit_it(client, nurse, patient_a):
    page = text(login(client, nurse).get(pages(patient_a)["history"]))
    assert '<form method="post" class="registry-form' not in page
    assert "Occlusion (100%)" in page  # coded values in words


# --- Patient list ---------------------------------------------------------------------------


def test_the_list_searches_by_study_id(client, nurse, site_a):
    PatientFactory(site=site_a, study_id="CT-001")
    PatientFactory(site=site_a, study_id="CT-002")
    response = login(client, nurse).get(reverse("registry:patient_list"), {"q": "002"})
    assert [row["patient"].study_id for row in response.context["rows"]] == ["CT-002"]


def test_the_list_filters_by_site(client, admin_user, site_a, site_b):
    PatientFactory(site=site_a, study_id="A-1")
    PatientFactory(site=site_b, study_id="B-1")
    response = login(client, admin_user).get(reverse("registry:patient_list"), {"site": site_b.pk})
    assert [row["patient"].study_id for row in response.context["rows"]] == ["B-1"]


def _complete_every_section(patient, *, but=()):
    for key, section in patient.sections().items():
        if key not in but:
            section.status = SectionStatus.COMPLETE
            section.save()


def test_the_list_filters_patients_with_a_section_incomplete(client, nurse, site_a):
    _complete_every_section(full_patient(site=site_a, study_id="CT-FULL"))
    _complete_every_section(full_patient(site=site_a, study_id="CT-NOFU"), but=["followup"])
    draft = PatientFactory(site=site_a, study_id="CT-DRAFT")
    ImagingFactory(patient=draft)
    PatientFactory(site=site_a, study_id="CT-EMPTY")
    login(client, nurse)
    url = reverse("registry:patient_list")

    def listed(incomplete):
        response = client.get(url, {"incomplete": incomplete})
        return [row["patient"].study_id for row in response.context["rows"]]

    assert listed("any") == ["CT-DRAFT", "CT-EMPTY", "CT-NOFU"]
    assert listed("imaging") == ["CT-DRAFT", "CT-EMPTY"]
    assert listed("followup") == ["CT-DRAFT", "CT-EMPTY", "CT-NOFU"]
    assert listed("") == ["CT-DRAFT", "CT-EMPTY", "CT-FULL", "CT-NOFU"]


def test_the_incomplete_filter_follows_a_section_completed_and_reopened(client, nurse, site_a):
    patient = full_patient(site=site_a, study_id="CT-001")
    _complete_every_section(patient, but=["procedure"])
    login(client, nurse)

    def listed():
        response = client.get(reverse("registry:patient_list"), {"incomplete": "any"})
        return [row["patient"].study_id for row in response.context["rows"]]

    assert listed() == ["CT-001"]
    _complete_every_section(patient)
    assert listed() == []
    patient.procedure.status = SectionStatus.DRAFT
    patient.procedure.save()
    assert listed() == ["CT-001"]


def test_the_list_shows_a_badge_per_section(client, nurse, site_a):
    patient = PatientFactory(site=site_a)
    ProcedureFactory(patient=patient)
    page = text(login(client, nurse).get(reverse("registry:patient_list")))
    assert page.count("Not started") == 4
    assert page.count(">Draft<") == 1


def test_the_list_is_paginated_and_keeps_the_filters(client, nurse, site_a):
    for n in range(30):
        PatientFactory(site=site_a, study_id=f"CT-{n:03d}")
    response = login(client, nurse).get(reverse("registry:patient_list"), {"q": "CT"})
    assert len(response.context["rows"]) == 25
    assert "?q=CT&amp;page=2" in text(response)
    response = client.get(reverse("registry:patient_list"), {"q": "CT", "page": 2})
    assert len(response.context["rows"]) == 5


def test_a_later_page_holds_the_next_patients_in_study_id_order(client, nurse, site_a):
    for n in (3, 29, 0, 27, 26, *range(4, 26), 28, 1, 2):
        PatientFactory(site=site_a, study_id=f"CT-{n:03d}")
    response = login(client, nurse).get(reverse("registry:patient_list"), {"page": 2})
    listed = [row["patient"].study_id for row in response.context["rows"]]
    assert listed == ["CT-025", "CT-026", "CT-027", "CT-028", "CT-029"]
    assert response.context["page"].paginator.count == 30


def test_the_list_orders_patients_by_site_then_study_id(client, admin_user, site_a, site_b):
    # The order of the (site, study ID) index: site_a was created first.
    for site, study_id in ((site_b, "A-2"), (site_a, "B-1"), (site_b, "A-1"), (site_a, "A-9")):
        PatientFactory(site=site, study_id=study_id)
    response = login(client, admin_user).get(reverse("registry:patient_list"))
    listed = [row["patient"].study_id for row in response.context["rows"]]
    assert listed == ["A-9", "B-1", "A-1", "A-2"]


def test_a_nurse_given_another_site_lists_its_patients_at_once(nurse, site_a, site_b):
    from registry import access

    PatientFactory(site=site_b, study_id="B-1")
    assert not access.patients_for(nurse).filter(study_id="B-1").exists()
    nurse.sites.add(site_b)  # the same user object: the remembered site keys are forgotten
    assert access.patients_for(nurse).filter(study_id="B-1").exists()
    nurse.sites.remove(site_b)
    assert not access.patients_for(nurse).filter(study_id="B-1").exists()


@pytest.mark.parametrize("n_patients", [5, 50])
def test_the_list_costs_the_same_number_of_queries_for_5_or_50_patients(
    client, nurse, site_a, django_assert_max_num_queries, n_patients
):
    for n in range(n_patients):
        full_patient(site=site_a, study_id=f"Q-{n:03d}")
    login(client, nurse)
    with django_assert_max_num_queries(14):  # the list's 13 (test_query_counts.py) + 1
        response = client.get(reverse("registry:patient_list"))
    assert response.status_code == 200


def test_the_home_page_leads_to_the_patient_list(client, nurse):
    response = login(client, nurse).get(reverse("registry:home"))
    assert response["Location"] == reverse("registry:patient_list")


def test_onset_helper_matches_the_factories():
    # The expectations above read the factories' onset in hospital time.
    assert ONSET.utcoffset() == dt.timedelta(hours=7)
