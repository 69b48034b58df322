"""A nurse on a phone and on a ward tablet: every page fits the screen, the forms' shortcuts
work, the CRF prints without the screen's furniture; an investigator's report on a phone.

The data are what `make demo` loads (``seed_demo``: the SYNTHETIC 85-patient cohort and one
user per role), so the pages are as full as a real site's.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.utils.translation import gettext, override
from playwright.sync_api import Page, expect

from registry.management.commands.seed_demo import DEMO_USERS
from registry.models import SECTION_MODELS, Patient, Site, User
from tests.factories import PatientFactory

from .conftest import assert_accessible, login, screenshot
from .forms import field

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
PORTRAIT_TABLET = {"width": 768, "height": 1024}
PASSWORDS = {username: password for username, _, password in DEMO_USERS}


def vi(text: str) -> str:
    """What the Vietnamese pages say for ``text`` (the demo nurse reads them)."""
    with override("vi"):
        return gettext(text)


def in_english(username: str) -> None:
    """Show ``username`` the English pages: a test of the forms' shortcuts, not of words."""
    User.objects.filter(username=username).update(language="en")


def assert_fits(page: Page) -> None:
    """The page is no wider than the screen: nothing to scroll sideways, nothing cut off."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide"


def visit(page: Page, url: str) -> None:
    page.goto(url)
    assert_fits(page)


def nurse_pages(live_server, patient: Patient) -> list[str]:
    """Every page of a nurse's day, in the order she meets them."""
    base = live_server.url
    return [
        f"{base}/patients/",
        f"{base}/patients/{patient.pk}/",
        *(f"{base}/patients/{patient.pk}/{model.key}/" for model in SECTION_MODELS),
        f"{base}/patients/{patient.pk}/history/",
        f"{base}/followup/",
        f"{base}/patients/{patient.pk}/workflow/calls/",
        f"{base}/patients/{patient.pk}/workflow/mrs/",
        f"{base}/screening/",
        f"{base}/queries/",
        f"{base}/checks/",
        f"{base}/interchange/",
        f"{base}/interchange/dictionary/",
        f"{base}/patients/new/",
        f"{base}/patients/{patient.pk}/print/",
        f"{base}/crf/blank/",
        f"{base}/accounts/password/",
        f"{base}/no-such-page/",
    ]


@pytest.mark.parametrize("screen", [PHONE, PORTRAIT_TABLET], ids=["phone", "tablet"])
def test_every_page_of_the_nurses_day_fits_a_phone_and_a_tablet(new_context, live_server, screen):
    call_command("seed_demo", stdout=io.StringIO())
    patient = Patient.objects.order_by("study_id").first()
    page = new_context(viewport=screen).new_page()
    login(page, live_server, "nurse", PASSWORDS["nurse"], scan=False)
    assert_fits(page)
    for url in nurse_pages(live_server, patient):
        visit(page, url)

    # The navigation bar folds into its button and opens on a tap (in Vietnamese).
    nav = page.get_by_role("navigation", name=vi("Main navigation"))
    patients = nav.get_by_role("link", name=vi("Patients"), exact=True)
    expect(patients).to_be_hidden()
    nav.get_by_role("button", name=vi("Show navigation")).click()
    expect(patients).to_be_visible()

    page.goto(f"{live_server.url}/patients/{patient.pk}/procedure/")
    # A yes / no answer is ticked by a finger-sized label.
    label = page.locator(".registry-form .form-check-label").first
    box = label.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44
    if screen is PORTRAIT_TABLET:
        screenshot(page, "tablet-section-form", docs="tablet-section-form")


def test_the_report_page_fits_a_phone_with_its_tables_and_charts(new_context, live_server):
    call_command("seed_demo", stdout=io.StringIO())
    User.objects.filter(username="investigator").update(language="vi")
    page = new_context(viewport=PHONE).new_page()
    login(page, live_server, "investigator", PASSWORDS["investigator"], scan=False)
    for url in ("/reports/", "/reports/published/", "/flow/"):
        visit(page, f"{live_server.url}{url}")
    page.goto(f"{live_server.url}/reports/")
    chart = page.get_by_role("img", name=re.compile(r"Grotta")).first
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth > 0")
    assert_accessible(page)
    screenshot(page, "phone-report", docs="phone-report", clip_to="#outcomes")


DESKTOP = {"width": 1280, "height": 800}


@pytest.mark.parametrize("language", ["en", "vi"])
def test_the_quality_page_fits_a_desktop_a_tablet_and_a_phone_its_tables_scrolling_inside(
    new_context, live_server, language
):
    call_command("seed_demo", stdout=io.StringIO())
    User.objects.filter(username="investigator").update(language=language)
    for screen in (DESKTOP, PORTRAIT_TABLET, PHONE):
        page = new_context(viewport=screen).new_page()
        login(page, live_server, "investigator", PASSWORDS["investigator"], scan=False)
        page.goto(f"{live_server.url}/quality/")
        page.wait_for_load_state("networkidle")  # its figures, drawn by requests of their own
        expect(page.locator("html")).to_have_attribute("lang", language)
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, f"/quality/ is wider than {screen['width']} px"
        # A table wider than the screen scrolls inside its own box.
        for table in page.locator(".quality-site table").all():
            box = table.evaluate(
                "t => t.closest('.table-responsive').getBoundingClientRect().right"
            )
            assert box <= screen["width"]
        page.close()


def test_the_forms_shortcuts_fill_now_pick_an_mrs_grade_and_go_to_the_next_section(
    new_context, live_server
):
    call_command("seed_demo", stdout=io.StringIO())
    in_english("nurse")
    patient = PatientFactory(site=Site.objects.get(code="SIS"), study_id="NEW-001")
    page = new_context(viewport=PORTRAIT_TABLET).new_page()
    login(page, live_server, "nurse", PASSWORDS["nurse"], scan=False)
    page.goto(f"{live_server.url}/patients/{patient.pk}/admission/")
    assert_accessible(page)

    door = field(page, "Door time")
    page.locator(".input-group").filter(has=door).get_by_role("button", name="Now").click()
    expect(door).to_have_value(re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d$"))
    typed_door = door.input_value()

    pre_stroke = field(page, "Pre-stroke mRS")
    pre_stroke.select_option(
        label="2 - slight disability: looks after own affairs without assistance"
    )
    expect(pre_stroke).to_have_value("2")

    page.get_by_role("button", name="Save and next section").click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/imaging/$"))
    # The door time just saved is shown on the procedure form, to check the groin puncture.
    page.goto(f"{live_server.url}/patients/{patient.pk}/procedure/")
    shown = page.locator(".registry-shown-value")
    expect(shown).to_contain_text("Door time")
    expect(shown).to_contain_text(typed_door.replace("T", " "))


def test_a_section_and_the_whole_crf_print_without_navigation_tabs_or_buttons(
    new_context, live_server
):
    call_command("seed_demo", stdout=io.StringIO())
    in_english("nurse")
    patient = Patient.objects.order_by("study_id").first()
    page = new_context(viewport=PORTRAIT_TABLET).new_page()
    login(page, live_server, "nurse", PASSWORDS["nurse"], scan=False)
    for url in (
        f"/patients/{patient.pk}/admission/",
        f"/patients/{patient.pk}/print/",
        "/crf/blank/",
    ):
        page.goto(f"{live_server.url}{url}")
        expect(page.locator(".navbar")).to_be_visible()
        page.emulate_media(media="print")
        expect(page.locator(".navbar")).to_be_hidden()
        for hidden in page.locator(".nav-tabs, main .btn").all():
            expect(hidden).to_be_hidden()
        expect(page.get_by_label(re.compile(r"^\s*Door time")).first).to_be_visible()
        page.emulate_media(media="screen")
    page.goto(f"{live_server.url}/crf/blank/")
    assert_accessible(page)
    screenshot(page, "blank-crf")


@pytest.mark.parametrize("language", ["en", "vi"])
def test_the_freezes_api_tokens_and_checks_pages_fit_a_desktop_a_tablet_and_a_phone(
    new_context, live_server, language, settings, tmp_path
):
    import datetime as dt

    from django.utils import timezone

    from registry.api.services import api_token_create
    from registry.freezes import freeze_create

    settings.FREEZE_CACHE_DIR = str(tmp_path / "freeze-cache")
    call_command("seed_demo", stdout=io.StringIO())
    investigator = User.objects.get(username="investigator")
    User.objects.filter(pk=investigator.pk).update(language=language)
    freeze = freeze_create(name="manuscript-1", reason="submission", user=investigator)
    expires = timezone.now() + dt.timedelta(days=30)
    api_token_create(user=investigator, name="hospital dashboard", expires_at=expires)
    pages = (
        "/freezes/",
        f"/freezes/{freeze.name}/",
        f"/reports/?freeze={freeze.name}",
        "/accounts/profile/",
        "/checks/",
        "/interchange/export/",
    )
    for screen in (DESKTOP, PORTRAIT_TABLET, PHONE):
        page = new_context(viewport=screen).new_page()
        login(page, live_server, "investigator", PASSWORDS["investigator"], scan=False)
        for url in pages:
            visit(page, f"{live_server.url}{url}")
            page.wait_for_load_state("networkidle")  # the report's figures, drawn apart
            expect(page.locator("html")).to_have_attribute("lang", language)
            if screen is PHONE:
                slug = url.strip("/").replace("/", "-").replace("?", "-").replace("=", "-")
                screenshot(page, f"phone-{language}-{slug}")
        page.close()
