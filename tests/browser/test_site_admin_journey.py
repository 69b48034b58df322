"""Journey: a hospital's site administrator takes on a nurse, then a nurse leaves.

The site administrator creates the nurse's account in their own site, the nurse signs in
and changes the one-off password; later the account is deactivated (never deleted) and
the account changes page says who did what, when, from what to what.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from registry.choices import Role
from tests.factories import UserFactory

from .conftest import assert_accessible, login, logout, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ONE_OFF = "first-Shift-password-9"
HER_OWN = "ward-seven-Night-shift"


def test_a_site_administrator_creates_then_deactivates_a_nurse_and_the_audit_says_so(
    page: Page, live_server, site_a, site_b
):
    UserFactory(username="siteadmin_a", role=Role.SITE_ADMIN, sites=[site_a])
    UserFactory(username="nurse_of_b", sites=[site_b])
    login(page, live_server, "siteadmin_a")

    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.get_by_role("table", name="Users of your sites")).not_to_contain_text("nurse_of_b")
    assert_accessible(page)
    page.get_by_role("link", name="New user").click()
    expect(page.get_by_label("B - Site B")).to_have_count(0)  # not their site to give
    page.get_by_label("Username").fill("lan_nurse")
    page.get_by_label("Role").select_option(Role.DATA_ENTRY)
    page.get_by_label("A - Site A").check()
    page.get_by_label("One-off password").fill(ONE_OFF)
    page.get_by_label("The same password again").fill(ONE_OFF)
    assert_accessible(page)
    page.get_by_role("button", name="Create the account").click()
    expect(page.get_by_role("status")).to_contain_text("Account lan_nurse created.")
    logout(page)

    login(page, live_server, "lan_nurse", ONE_OFF)
    page.get_by_role("link", name="Change password").click()
    page.get_by_label("Old password").fill(ONE_OFF)
    page.locator("#id_new_password1").fill(HER_OWN)
    page.get_by_label("New password confirmation").fill(HER_OWN)
    assert_accessible(page)
    page.get_by_role("button", name="Change the password").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Password changed")
    logout(page)

    login(page, live_server, "siteadmin_a")
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_role("link", name="lan_nurse").click()
    page.get_by_label("Reason").fill("moved to another hospital")
    page.get_by_role("button", name="Deactivate the account").click()
    expect(page.get_by_role("status")).to_contain_text("lan_nurse deactivated.")
    assert_accessible(page)
    screenshot(page, "site-admin-account")

    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_role("link", name="Account changes").click()
    changes = page.get_by_role("table", name="Account changes")
    expect(changes).to_contain_text("deactivated: moved to another hospital")
    expect(changes).to_contain_text("password changed by its owner")
    expect(changes).not_to_contain_text("nurse_of_b")
    assert_accessible(page)
    screenshot(page, "site-admin-account-changes")
    logout(page)

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label(re.compile(r"^username", re.I)).fill("lan_nurse")
    page.get_by_label(re.compile(r"^password", re.I)).fill(HER_OWN)
    page.get_by_role("button", name=re.compile(r"log ?in|sign ?in", re.I)).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
