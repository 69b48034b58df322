"""Two nurses on the same admission form: a save can only overwrite a value its author saw."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from registry.models import Admission

from .factories import AdmissionFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


def browser_text(value) -> str:
    """A stored value as the form's input holds it (date-time pickers show minutes)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")
    return str(value)  # numbers, and the flags' radio values True / False


def as_submitted(instance) -> dict[str, str]:
    """The admission form as the browser submits it, untouched."""
    names = Admission.clinical_fields()
    data = {name: browser_text(getattr(instance, name)) for name in names}
    return {**data, "version": str(instance.version), "action": "draft"}


def resubmitted(response) -> dict[str, str]:
    """What the second click sends: the form that came back, as it is."""
    return {key: response.context["form"].data.get(key) for key in response.context["form"].data}


@pytest.fixture
def two_nurses(site_a):
    patient = PatientFactory(site=site_a)
    admission = AdmissionFactory(patient=patient, nihss_admission=20, premorbid_mrs=0)
    nurses = []
    for name in ("nurse_a", "nurse_b"):
        client = Client()
        client.force_login(UserFactory(username=name, sites=[site_a]))
        nurses.append(client)
    return patient, admission, nurses


def test_the_refused_form_holds_the_stored_value_where_the_second_nurse_changed_nothing(
    two_nurses,
):
    patient, admission, (nurse_a, nurse_b) = two_nurses
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    seen_by_a, seen_by_b = as_submitted(admission), as_submitted(admission)

    assert nurse_a.post(url, {**seen_by_a, "nihss_admission": "11"}).status_code == 302
    refused = nurse_b.post(url, {**seen_by_b, "premorbid_mrs": "1"})
    assert refused.status_code == 200
    assert "NIHSS on admission: 11" in refused.content.decode()
    form = refused.context["form"]
    assert form["nihss_admission"].value() == "11"  # the stored value, not B's stale 20
    assert form["premorbid_mrs"].value() == "1"  # B's own change is kept
    assert form.conflicts == []

    assert nurse_b.post(url, resubmitted(refused)).status_code == 302
    stored = Admission.objects.get(patient=patient)
    assert (stored.nihss_admission, stored.premorbid_mrs) == (11, 1)


def test_a_field_both_nurses_changed_is_shown_side_by_side_and_must_be_chosen(two_nurses):
    patient, admission, (nurse_a, nurse_b) = two_nurses
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    seen_by_a, seen_by_b = as_submitted(admission), as_submitted(admission)
    nurse_a.post(url, {**seen_by_a, "nihss_admission": "11"})
    refused = nurse_b.post(url, {**seen_by_b, "nihss_admission": "15"})
    form = refused.context["form"]
    assert form.conflicts == ["nihss_admission"]
    html = refused.content.decode()
    assert "Now stored:" in html and "Your value:" in html
    assert form.conflict_rows["nihss_admission"]["stored"] == "11"
    assert form.conflict_rows["nihss_admission"]["mine"] == "15"

    unchosen = nurse_b.post(url, resubmitted(refused))
    assert unchosen.status_code == 200
    assert "Choose the stored value or yours." in unchosen.content.decode()
    assert Admission.objects.get(patient=patient).nihss_admission == 11

    keep_stored = {**resubmitted(refused), "resolve_nihss_admission": "stored"}
    assert nurse_b.post(url, keep_stored).status_code == 302
    assert Admission.objects.get(patient=patient).nihss_admission == 11


def test_keeping_ones_own_value_after_the_conflict_stores_it(two_nurses):
    patient, admission, (nurse_a, nurse_b) = two_nurses
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    seen_by_a, seen_by_b = as_submitted(admission), as_submitted(admission)
    nurse_a.post(url, {**seen_by_a, "nihss_admission": "11"})
    refused = nurse_b.post(url, {**seen_by_b, "nihss_admission": "15"})
    keep_mine = {**resubmitted(refused), "resolve_nihss_admission": "mine"}
    assert nurse_b.post(url, keep_mine).status_code == 302
    assert Admission.objects.get(patient=patient).nihss_admission == 15
