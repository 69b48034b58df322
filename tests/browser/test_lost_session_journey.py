"""Nothing typed is lost: a nurse's session ends while she types; she signs in again and
the same form offers back what she typed. Before the end, the page warns and keeps her
signed in when she asks.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.models import Session
from playwright.sync_api import Page, expect

from registry.choices import Role
from registry.models import Admission
from tests.factories import PatientFactory, UserFactory

from .conftest import assert_accessible, login
from .forms import field, fill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TYPED = {
    "NIHSS on admission": "14",
    "Pre-stroke mRS": "1",
    "Hypertension": "Yes",
}


def end_the_session_on_the_server() -> None:
    """What SESSION_COOKIE_AGE of idleness does: the server forgets the session."""
    Session.objects.all().delete()


def test_values_typed_when_the_session_ended_are_offered_back_after_signing_in(
    page: Page, live_server, nurse, site_a
):
    patient = PatientFactory(site=site_a, study_id="CT-0101")
    form_url = f"{live_server.url}/patients/{patient.pk}/admission/"
    login(page, live_server, "nurse_a")
    page.goto(form_url)
    fill(page, TYPED)

    end_the_session_on_the_server()
    page.get_by_role("button", name="Save draft").click()

    # The sign-in page says what happened and comes back to the form.
    expect(page).to_have_url(re.compile(r"/accounts/session-expired/\?next="))
    expect(page.get_by_role("alert")).to_contain_text("What you typed is kept in this browser")
    assert_accessible(page)
    assert not Admission.objects.exists()
    page.get_by_label(re.compile(r"^username", re.I)).fill("nurse_a")
    page.get_by_label(re.compile(r"^password", re.I)).fill("correct-horse-battery")
    page.get_by_role("button", name=re.compile(r"sign ?in", re.I)).click()
    expect(page).to_have_url(form_url)

    # The form opens empty, with what she typed offered back.
    expect(field(page, "NIHSS on admission")).to_have_value("")
    offer = page.locator(".registry-draft-offer")
    expect(offer).to_contain_text("not saved")
    assert_accessible(page)
    offer.get_by_role("button", name="Restore what I typed").click()
    expect(offer).to_have_count(0)
    expect(field(page, "NIHSS on admission")).to_have_value("14")
    expect(field(page, "Pre-stroke mRS")).to_have_value("1")
    expect(
        page.get_by_role("group", name=re.compile(r"^Hypertension")).get_by_label("Yes", exact=True)
    ).to_be_checked()

    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status").first).to_contain_text("saved as draft")
    admission = Admission.objects.get()
    assert (admission.nihss_admission, admission.premorbid_mrs, admission.hypertension) == (
        14,
        1,
        True,
    )
    # Saved: the browser no longer keeps it, and the form offers nothing.
    page.goto(form_url)
    expect(page.locator(".registry-draft-offer")).to_have_count(0)
    assert (
        page.evaluate(
            "Object.keys(localStorage).filter(k => k.startsWith('registry-draft:')).length"
        )
        == 0
    )


def test_a_draft_is_not_offered_to_another_nurse_on_the_same_tablet(
    page: Page, live_server, nurse, site_a
):
    UserFactory(username="nurse_c", role=Role.DATA_ENTRY, sites=[site_a])
    patient = PatientFactory(site=site_a)
    form_url = f"{live_server.url}/patients/{patient.pk}/admission/"
    login(page, live_server, "nurse_a")
    page.goto(form_url)
    fill(page, {"NIHSS on admission": "9"})
    end_the_session_on_the_server()
    page.goto(form_url)  # sent to the session-ended sign-in page
    page.get_by_label(re.compile(r"^username", re.I)).fill("nurse_c")
    page.get_by_label(re.compile(r"^password", re.I)).fill("correct-horse-battery")
    page.get_by_role("button", name=re.compile(r"sign ?in", re.I)).click()
    expect(page).to_have_url(form_url)
    expect(page.locator(".registry-draft-offer")).to_have_count(0)


def test_the_page_warns_before_the_session_ends_and_stay_signed_in_keeps_it(
    page: Page, live_server, nurse, site_a, settings
):
    # A short session, so that the warning comes within the test (half-way: 4 s).
    settings.SESSION_COOKIE_AGE = 8
    login(page, live_server, "nurse_a")
    warning = page.locator("#session-warning")
    expect(warning).to_be_hidden()
    expect(warning).to_be_visible(timeout=8_000)
    assert_accessible(page)
    warning.get_by_role("button", name="Stay signed in").click()
    expect(warning).to_be_hidden()
    # The session was pushed on: the next page opens without signing in again.
    page.goto(f"{live_server.url}/patients/")
    expect(page).to_have_url(re.compile(r"/patients/$"))


def test_once_the_session_has_ended_the_page_says_so_and_links_to_sign_in(
    page: Page, live_server, nurse, site_a, settings
):
    settings.SESSION_COOKIE_AGE = 4
    patient = PatientFactory(site=site_a)
    login(page, live_server, "nurse_a")
    page.goto(f"{live_server.url}/patients/{patient.pk}/admission/")
    ended = page.locator("#session-ended")
    expect(ended).to_be_visible(timeout=8_000)
    ended.get_by_role("link", name="Sign in again").click()
    expect(page).to_have_url(re.compile(r"/accounts/session-expired/\?next=%2Fpatients%2F"))
