"""A lock that means something: lock and unlock are two signed actions, never a toggle, and
a locked record is read-only on every screen."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from registry.models import Admission, PatientLock
from registry.workflow import services as workflow

from .factories import AdmissionFactory, PatientFactory

PASSWORD = "correct-horse-battery"  # the factories' users' password

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(site_a):
    patient = PatientFactory(site=site_a, study_id="SDV-1")
    AdmissionFactory(patient=patient, nihss_admission=18)
    return patient


def lock_url(patient):
    return reverse("registry:patient_lock", args=[patient.pk])


def test_the_same_lock_post_sent_twice_leaves_the_record_locked(client, monitor, patient):
    client.force_login(monitor)
    signed = {"action": "lock", "reason": "Source documents checked", "password": PASSWORD}
    assert client.post(lock_url(patient), signed).status_code == 302
    again = client.post(lock_url(patient), signed, follow=True)
    assert "The record is already locked." in again.content.decode()
    lock = PatientLock.objects.get(patient=patient)
    assert lock.locked
    assert lock.history.count() == 1


def test_each_history_row_carries_its_own_reason_meaning_and_signer(client, monitor, patient):
    client.force_login(monitor)
    client.post(lock_url(patient), {"action": "lock", "reason": "SDV", "password": PASSWORD})
    client.post(
        lock_url(patient), {"action": "unlock", "reason": "Door time query", "password": PASSWORD}
    )
    rows = PatientLock.objects.get(patient=patient).history.order_by("history_id")
    assert [(r.locked, r.reason, r.meaning, r.history_user) for r in rows] == [
        (True, "SDV", "source_data_verified", monitor),
        (False, "Door time query", "reopened_for_correction", monitor),
    ]


def test_a_post_without_an_explicit_action_changes_nothing(client, monitor, patient):
    client.force_login(monitor)
    response = client.post(lock_url(patient), {"reason": "SDV", "password": PASSWORD})
    assert response.status_code == 400
    assert not PatientLock.objects.exists()


def test_a_lock_needs_a_reason_and_the_users_own_password(monitor, patient):
    with pytest.raises(ValidationError) as no_reason:
        workflow.patient_lock(user=monitor, patient=patient, reason="  ", password=PASSWORD)
    assert "reason" in no_reason.value.message_dict
    with pytest.raises(ValidationError) as wrong:
        workflow.patient_lock(user=monitor, patient=patient, reason="SDV", password="guess")
    assert "password" in wrong.value.message_dict
    assert not PatientLock.objects.exists()


def test_a_locked_record_shows_badges_and_a_read_only_form_without_save_buttons(
    client, monitor, nurse, patient
):
    workflow.patient_lock(user=monitor, patient=patient, reason="SDV", password=PASSWORD)
    client.force_login(nurse)
    listing = client.get(reverse("registry:patient_list")).content.decode()
    overview = client.get(reverse("registry:patient_detail", args=[patient.pk])).content.decode()
    section = client.get(reverse("registry:section_edit", args=[patient.pk, "admission"]))
    html = section.content.decode()
    for page in (listing, overview, html):
        assert "registry-lock-badge" in page
    assert ">Edit<" not in overview
    assert 'value="draft"' not in html and 'value="complete"' not in html
    assert all(field.disabled for field in section.context["form"].fields.values())


def test_a_direct_post_to_a_locked_section_names_the_lock_and_keeps_what_was_typed(
    client, monitor, nurse, patient
):
    workflow.patient_lock(user=monitor, patient=patient, reason="SDV", password=PASSWORD)
    client.force_login(nurse)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    response = client.post(url, {"nihss_admission": "10", "action": "draft", "version": "1"})
    assert response.status_code == 403
    html = response.content.decode()
    assert "is locked" in html and monitor.username in html
    assert "NIHSS on admission" in html and "<code>10</code>" in html
    assert '<nav class="navbar' in html  # the site's layout, not a bare error page
    assert Admission.objects.get(patient=patient).nihss_admission == 18
