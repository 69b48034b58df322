"""A study nurse enters a whole patient, section by section, in Chromium; then corrects one.

Journeys 1 and 2 of the browser-test issue: what a nurse does on a tablet, read back from the
screen as she would (messages next to fields, badges, the timeline, the History tab).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from registry.choices import SectionStatus
from tests.factories import (
    AdmissionFactory,
    ComplicationsFactory,
    FollowUpFactory,
    ImagingFactory,
    PatientFactory,
    ProcedureFactory,
)

from .conftest import (
    assert_accessible,
    keyboard_focus_order,
    login,
    logout,
    open_patient,
    patient_table,
    screenshot,
)
from .forms import choose, field, fill, flag_group, message_next_to

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECTIONS = ["Admission", "Imaging", "Procedure", "Complications and discharge", "3-month follow-up"]

ADMISSION = {
    "Onset (last known well)": "2026-03-02T07:30",
    "Door time": "2026-03-02T09:10",
    "Transferred from another hospital": "No",
    "NIHSS on admission": "17",
    "Pre-stroke mRS": "0",
    "Pre-procedural mRS": "5",
    "Hypertension": "Yes",
    "Smoking (current or former)": "No",
    "Diabetes": "No",
    "Myocardial infarction": "No",
    "Atrial fibrillation": "Yes",
    "Chronic kidney disease": "No",
    "Dysphagia on admission": "Yes",
    "IV thrombolysis (rTPA) before the procedure": "No",
}
IMAGING = {
    "3 T MRI/MRA diagnosis": "Occlusion (100%)",
    "3 T MRI occlusion site": "Basilar artery",
    "Clot on SWI (susceptibility vessel sign)": "Yes",
    "pc-ASPECTS": "8",
}
# The groin puncture typed first is 20 minutes before the door time: impossible.
PROCEDURE = {
    "Anaesthesia": "General anaesthesia",
    "Groin puncture time": "2026-03-02T08:50",
    "Procedure end time": "2026-03-02T10:40",
    "DSA diagnosis (reference standard)": "Occlusion (100%)",
    "DSA occlusion site": "Basilar artery",
    "MT technique": "Stent retriever",
    "MT passes": "2",
    "mTICI after MT": "2a - reperfusion of less than half of the territory",
    "Stent type": "Self-expanding",
    "Stent device": "Acclino 4.0 x 25",
    "Post-dilation (balloon inside the stent)": "No",
    "Residual stenosis (%)": "10",
    "DAPT loading dose before stenting": "Yes",
    "Final mTICI": "3 - complete reperfusion",
}
COMPLICATIONS = {
    "ICH on the 24 h CT": "No",
    "Symptomatic ICH (sICH)": "No",
    "New post-procedural infarct": "No",
    "Cerebral swelling": "No",
    "Decompressive craniectomy": "No",
    "Metabolic acidosis due to renal failure": "No",
    "Discharge date": "2026-03-12",
    "mRS at discharge": "3",
}
FOLLOW_UP = {
    "Follow-up date": "2026-06-03",
    "mRS at 3 months": "2",
    "Follow-up method": "Telephone",
    "Rehabilitation after discharge": "Yes",
}


def badge(page: Page, section: str):
    """The status badge in the heading of a section's card on the patient overview."""
    return page.get_by_role("heading", name=re.compile(rf"^{re.escape(section)}\b")).locator(
        ".badge"
    )


def open_section(page: Page, section: str) -> None:
    """From the overview, press the card's Start / Edit button of ``section``."""
    page.get_by_role("link", name=re.compile(rf"^(Start|Edit) {re.escape(section)}$")).click()
    expect(
        page.get_by_role("heading", level=2, name=re.compile(re.escape(section)))
    ).to_be_visible()


def mark_complete(page: Page, section: str) -> None:
    page.get_by_role("button", name="Mark complete").click()
    expect(
        page.get_by_role("status").filter(has_text=f"{section} saved and marked complete")
    ).to_be_visible()
    expect(badge(page, section)).to_have_text("Complete")


def timeline(page: Page):
    return page.get_by_role("region", name="Timeline")


def test_a_nurse_enters_a_whole_patient_with_one_impossible_time_corrected(
    page: Page, live_server, nurse
):
    login(page, live_server, "nurse_a")

    # New patient, from the navigation bar.
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="New patient"
    ).click()
    assert_accessible(page)
    fill(page, {"Study ID": "CT-0001", "Sex": "Female", "Age (years)": "74"})
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_role("status")).to_contain_text("Patient CT-0001 registered.")
    for section in SECTIONS:
        expect(badge(page, section)).to_have_text("Not started")
    expect(timeline(page)).to_contain_text("Onset")
    assert_accessible(page)

    # Admission.
    open_section(page, "Admission")
    assert_accessible(page)
    fill(page, ADMISSION)
    mark_complete(page, "Admission")
    expect(timeline(page)).to_contain_text("2026-03-02 07:30")
    expect(timeline(page)).to_contain_text("Onset to door: 1 h 40 min")

    # Imaging: the ASPECTS that applies follows the circulation the nurse picks.
    open_section(page, "Imaging")
    dwi, pc = field(page, "DWI-ASPECTS"), field(page, "pc-ASPECTS")
    expect(dwi).to_be_hidden()
    expect(pc).to_be_hidden()
    field(page, "Circulation").select_option(label="Anterior")
    expect(dwi).to_be_visible()
    expect(pc).to_be_hidden()
    dwi.fill("7")
    field(page, "Circulation").select_option(label="Posterior")
    expect(pc).to_be_visible()
    expect(dwi).to_be_hidden()
    fill(page, IMAGING)
    assert_accessible(page)
    mark_complete(page, "Imaging")
    # The DWI-ASPECTS typed while anterior was picked is not kept for a posterior stroke.
    expect(page.get_by_role("region", name="Case report form")).to_contain_text("Not applicable")

    # Procedure: MT details only when MT was performed. The branching script runs under the
    # real Content-Security-Policy (no inline script); a refusal would fail the test.
    with page.expect_response(re.compile(r"/procedure/$")) as form_response:
        open_section(page, "Procedure")
    assert "script-src 'self'" in form_response.value.headers["content-security-policy"]
    mt_fields = [field(page, name) for name in ("MT technique", "MT passes", "mTICI after MT")]
    for control in mt_fields:
        expect(control).to_be_hidden()
    choose(page, "Mechanical thrombectomy before stenting", "Yes")
    for control in mt_fields:
        expect(control).to_be_visible()
    choose(page, "Mechanical thrombectomy before stenting", "No")
    for control in mt_fields:
        expect(control).to_be_hidden()
    choose(page, "Mechanical thrombectomy before stenting", "Yes")
    fill(page, PROCEDURE)
    page.get_by_role("button", name="Mark complete").click()

    # The impossible value: a message next to the field, every other value kept.
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    expect(message_next_to(page, "Groin puncture time")).to_contain_text(
        "Groin puncture time must not be before door time."
    )
    expect(field(page, "Groin puncture time")).to_have_attribute("aria-invalid", "true")
    for label, value in PROCEDURE.items():
        if label.startswith(("Post-dilation", "DAPT")):
            expect(flag_group(page, label).get_by_label(value, exact=True)).to_be_checked()
        elif field(page, label).evaluate("e => e.tagName") == "SELECT":
            expect(field(page, label).locator("option:checked")).to_have_text(value)
        else:
            expect(field(page, label)).to_have_value(value)
    expect(
        flag_group(page, "Mechanical thrombectomy before stenting").get_by_label("Yes", exact=True)
    ).to_be_checked()
    expect(field(page, "MT technique")).to_be_visible()
    assert_accessible(page)
    screenshot(page, "nurse-form", docs="nurse-form")

    field(page, "Groin puncture time").fill("2026-03-02T09:55")
    mark_complete(page, "Procedure")
    expect(timeline(page)).to_contain_text("Door to groin puncture: 45 min")
    expect(timeline(page)).to_contain_text("Procedure time: 45 min")

    open_section(page, "Complications and discharge")
    fill(page, COMPLICATIONS)
    assert_accessible(page)
    mark_complete(page, "Complications and discharge")
    expect(timeline(page)).to_contain_text("2026-03-12")

    open_section(page, "3-month follow-up")
    fill(page, FOLLOW_UP)
    assert_accessible(page)
    mark_complete(page, "3-month follow-up")
    expect(timeline(page)).to_contain_text("2026-06-03")

    for section in SECTIONS:
        expect(badge(page, section)).to_have_text("Complete")
    assert_accessible(page)
    screenshot(page, "nurse-overview")

    # The patient list shows the five badges complete too.
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Patients"
    ).click()
    row = patient_table(page).get_by_role("row").filter(has_text="CT-0001")
    expect(row.locator(".badge")).to_have_text(["Complete"] * len(SECTIONS))
    assert_accessible(page)

    logout(page)


def completed_patient(site, nurse):
    """A patient whose five sections are complete, entered earlier by ``nurse``."""
    patient = PatientFactory(study_id="CT-0002", site=site)
    done = {"status": SectionStatus.COMPLETE, "completed_by": nurse}
    for factory in (
        AdmissionFactory,
        ImagingFactory,
        ProcedureFactory,
        ComplicationsFactory,
        FollowUpFactory,
    ):
        factory(patient=patient, **done)
    return patient


def test_changing_a_completed_section_asks_a_reason_that_history_shows(
    page: Page, live_server, nurse, site_a
):
    patient = completed_patient(site_a, nurse)
    login(page, live_server, "nurse_a")
    open_patient(page, "CT-0002")
    expect(badge(page, "Procedure")).to_have_text("Complete")

    open_section(page, "Procedure")
    expect(page.get_by_role("status")).to_contain_text("give a reason for change")
    field(page, "MT passes").fill("3")
    page.get_by_role("button", name="Mark complete").click()
    expect(message_next_to(page, "Reason for change")).to_contain_text("give a reason")
    expect(field(page, "MT passes")).to_have_value("3")

    field(page, "Reason for change").fill("Angiography report re-read: three passes")
    mark_complete(page, "Procedure")

    page.get_by_role("link", name="History").click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/history/$"))
    newest = page.get_by_role("row").nth(1)
    expect(newest).to_contain_text("MT passes: 2 → 3")
    expect(newest).to_contain_text("Angiography report re-read: three passes")
    expect(newest).to_contain_text("nurse_a")
    assert_accessible(page)
    screenshot(page, "nurse-history")

    # Keyboard users reach the skip link first, then the navigation, in reading order.
    focus = keyboard_focus_order(page, 3)
    assert focus[0] == "Skip to content", focus
    assert focus[1] == "Stroke registry", focus
