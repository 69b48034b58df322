"""Data the tables can trust, in Chromium: two nurses on one form (two browser contexts), a
suspicious value confirmed with a reason, and a monitor's signed lock that a second click
cannot undo."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from registry.models import Admission, PatientLock, WarningConfirmation
from tests.factories import AdmissionFactory, PatientFactory, UserFactory, aware

from .conftest import PASSWORD, assert_accessible, login, screenshot
from .forms import field, fill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def patient(site_a):
    patient = PatientFactory(site=site_a, study_id="CT-0042")
    AdmissionFactory(
        patient=patient,
        onset_time=aware(2026, 3, 2, 7, 30),
        door_time=aware(2026, 3, 2, 9, 10),
        nihss_admission=20,
        premorbid_mrs=0,
    )
    return patient


def admission_form(page: Page, live_server, patient) -> None:
    page.goto(f"{live_server.url}/patients/{patient.pk}/admission/")
    expect(page.get_by_role("heading", level=2, name=re.compile("Admission"))).to_be_visible()


def save_draft(page: Page) -> None:
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_load_state()


def test_the_second_nurse_gets_the_stored_values_back_and_cannot_undo_the_first(
    new_context, live_server, patient, site_a
):
    UserFactory(username="nurse_b2", sites=[site_a])
    UserFactory(username="nurse_a2", sites=[site_a])
    nurse_a = new_context().new_page()
    nurse_b = new_context().new_page()
    login(nurse_a, live_server, "nurse_a2")
    login(nurse_b, live_server, "nurse_b2")
    admission_form(nurse_a, live_server, patient)
    admission_form(nurse_b, live_server, patient)

    fill(nurse_a, {"NIHSS on admission": "11"})
    save_draft(nurse_a)
    expect(nurse_a.get_by_role("status").first).to_contain_text("Admission saved as draft")

    fill(nurse_b, {"Pre-stroke mRS": "1"})
    save_draft(nurse_b)
    expect(nurse_b.get_by_role("alert").first).to_contain_text("Nothing was saved")
    expect(nurse_b.locator("form.registry-form")).to_contain_text("NIHSS on admission: 11")
    expect(field(nurse_b, "NIHSS on admission")).to_have_value("11")
    expect(field(nurse_b, "Pre-stroke mRS")).to_have_value("1")
    assert_accessible(nurse_b)
    screenshot(nurse_b, "conflict-merged", docs="workflow-conflict")

    save_draft(nurse_b)  # the second click
    expect(nurse_b.get_by_role("status").first).to_contain_text("Admission saved as draft")
    stored = Admission.objects.get(patient=patient)
    assert (stored.nihss_admission, stored.premorbid_mrs) == (11, 1)


def test_both_nurses_change_one_field_and_the_second_chooses_explicitly(
    new_context, live_server, patient, site_a
):
    UserFactory(username="nurse_b2", sites=[site_a])
    UserFactory(username="nurse_a2", sites=[site_a])
    nurse_a = new_context().new_page()
    nurse_b = new_context().new_page()
    login(nurse_a, live_server, "nurse_a2")
    login(nurse_b, live_server, "nurse_b2")
    admission_form(nurse_a, live_server, patient)
    admission_form(nurse_b, live_server, patient)
    fill(nurse_a, {"NIHSS on admission": "11"})
    save_draft(nurse_a)
    fill(nurse_b, {"NIHSS on admission": "15"})
    save_draft(nurse_b)
    conflict = nurse_b.locator(".registry-conflict")
    expect(conflict).to_contain_text("Now stored: 11")
    expect(conflict).to_contain_text("Your value: 15")
    screenshot(
        nurse_b, "conflict-choose", docs="workflow-conflict-choose", clip_to="form.registry-form"
    )
    # Without a choice the browser does not send the form (the choice is required).
    nurse_b.get_by_role("button", name="Save draft").click()
    expect(nurse_b.locator(".registry-conflict")).to_be_visible()
    assert Admission.objects.get(patient=patient).nihss_admission == 11
    nurse_b.get_by_label("Keep the stored value").check()
    save_draft(nurse_b)
    expect(nurse_b.get_by_role("status").first).to_contain_text("Admission saved as draft")
    assert Admission.objects.get(patient=patient).nihss_admission == 11


def test_a_49_hour_gap_is_saved_once_the_nurse_confirms_it_with_a_reason(
    page: Page, live_server, patient, nurse
):
    login(page, live_server, "nurse_a")
    admission_form(page, live_server, patient)
    # Imaging follows the door; only the onset-to-door gap is in question here.
    fill(page, {"Door time": "2026-03-04T08:30", "Imaging time": "2026-03-04T08:50"})
    save_draft(page)
    warning = page.locator(".registry-warning")
    expect(warning).to_contain_text("More than 24 hours from onset to door")
    assert_accessible(page)
    warning.get_by_label("I confirm this value").check()
    warning.get_by_label("Reason for keeping this value").fill("Found at home two days later")
    screenshot(page, "warning-confirm", docs="workflow-warning", clip_to="form.registry-form")
    save_draft(page)
    expect(page.get_by_role("status").first).to_contain_text("Admission saved as draft")
    confirmation = WarningConfirmation.objects.get(patient=patient)
    assert confirmation.reason == "Found at home two days later"
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("table")).to_contain_text("Found at home two days later")


def test_the_monitors_signed_lock_survives_a_second_tab_and_makes_the_record_read_only(
    new_context, live_server, patient, monitor, nurse
):
    monitor_context = new_context()
    first_tab = monitor_context.new_page()
    login(first_tab, live_server, "monitor_a")
    lock_page = f"{live_server.url}/patients/{patient.pk}/workflow/lock/"
    first_tab.goto(lock_page)
    second_tab = monitor_context.new_page()
    second_tab.goto(lock_page)

    # An empty reason and no password: refused, nothing locked.
    first_tab.get_by_role("button", name=re.compile("Sign and lock")).click()
    expect(first_tab.locator(".invalid-feedback").first).to_be_visible()
    assert not PatientLock.objects.exists()
    for tab in (first_tab, second_tab):
        tab.get_by_label("Reason").fill("Source documents checked")
        tab.get_by_label(re.compile("Your password")).fill(PASSWORD)
    screenshot(first_tab, "lock-sign", docs="workflow-lock-sign")
    first_tab.get_by_role("button", name=re.compile("Sign and lock")).click()
    expect(first_tab.get_by_role("status").first).to_contain_text("Record locked.")
    # The second tab still shows the lock button: pressing it leaves the record locked.
    second_tab.get_by_role("button", name=re.compile("Sign and lock")).click()
    expect(second_tab.get_by_role("status").first).to_contain_text("already locked")
    lock = PatientLock.objects.get(patient=patient)
    assert lock.locked and lock.history.count() == 1
    expect(second_tab.get_by_role("table")).to_contain_text("Source data verified")

    nurse_page = new_context().new_page()
    login(nurse_page, live_server, "nurse_a")
    expect(nurse_page.locator(".registry-lock-badge").first).to_be_visible()
    nurse_page.goto(f"{live_server.url}/patients/{patient.pk}/")
    expect(nurse_page.locator(".registry-lock-badge").first).to_be_visible()
    expect(nurse_page.get_by_role("link", name=re.compile(r"^Edit "))).to_have_count(0)
    admission_form(nurse_page, live_server, patient)
    expect(nurse_page.get_by_role("button", name="Save draft")).to_have_count(0)
    expect(field(nurse_page, "NIHSS on admission")).to_be_disabled()
    assert_accessible(nurse_page)
    screenshot(nurse_page, "locked-section", docs="workflow-locked")
