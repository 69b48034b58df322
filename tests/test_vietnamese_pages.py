"""The nurse's and the investigator's pages in Vietnamese carry none of the registry's
English strings: each page's visible text is compared with the English msgids of the
catalogue (locale/vi/LC_MESSAGES/django.po)."""

import datetime as dt
import re
from html import unescape
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.choices import Language
from registry.models import SECTION_MODELS

from .analytics_cohort import build_cohort
from .factories import AdmissionFactory, ComplicationsFactory, PatientFactory, full_patient
from .po_files import CATALOGUE, read_po

pytestmark = pytest.mark.django_db

# Attributes a reader sees or hears (a screen reader reads aria-label and title).
READ_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt", "value")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%|%[sd]|\{\w+\}|<[^>]+>")


class VisibleText(HTMLParser):
    """The text a reader of the page sees: text nodes, labels of buttons and fields."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "title"):
            self._hidden += 1
        attributes = dict(attrs)
        for name in READ_ATTRIBUTES:
            if name == "value" and (tag, attributes.get("type")) != ("input", "submit"):
                continue
            if attributes.get(name):
                self.parts.append(attributes[name])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "title"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return re.sub(r"\s+", " ", unescape(" ".join(parser.parts)))


def english_fragments() -> set[str]:
    """What of each English msgid must not be read on a Vietnamese page: its literal
    pieces between placeholders, longer than 3 characters, that no Vietnamese message
    uses as well (NIHSS, mRS, ASPECTS, sICH read the same in both languages)."""
    entries = [entry for entry in read_po(CATALOGUE) if entry.msgid]
    vietnamese = "\n".join(text for entry in entries for text in entry.msgstr.values())
    fragments = set()
    for entry in entries:
        for piece in PLACEHOLDER.split(entry.msgid):
            piece = piece.strip(" .,:;()·-–")
            if len(piece) > 3 and not re.search(rf"(?<!\w){re.escape(piece)}(?!\w)", vietnamese):
                fragments.add(piece)
    return fragments


def english_found(text: str, fragments: set[str]) -> list[str]:
    return sorted(f for f in fragments if re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text))


@pytest.fixture(autouse=True)
def vietnamese_site_name(site_a):
    site_a.name = "Bệnh viện Đa khoa Trung ương Cần Thơ"
    site_a.save()


@pytest.fixture
def nurse_vi(nurse):
    nurse.language = Language.VIETNAMESE
    nurse.save()
    return nurse


@pytest.fixture
def due_patient(site_a):
    """Admitted 90 days ago and discharged: the 3-month call is due today."""
    onset = timezone.now() - dt.timedelta(days=90)
    patient = PatientFactory(site=site_a, study_id="CT-090")
    AdmissionFactory(patient=patient, onset_time=onset, door_time=onset + dt.timedelta(hours=2))
    ComplicationsFactory(patient=patient, discharge_date=timezone.localdate(onset))
    return patient


def nurse_pages(patient, due_patient) -> dict[str, str]:
    mrs = reverse("registry:mrs_interview", args=[due_patient.pk])
    return {
        "list": reverse("registry:patient_list"),
        "overview": reverse("registry:patient_detail", args=[patient.pk]),
        **{
            f"section {model.key}": reverse("registry:section_edit", args=[patient.pk, model.key])
            for model in SECTION_MODELS
        },
        "blank section": reverse("registry:section_edit", args=[due_patient.pk, "imaging"]),
        "history": reverse("registry:patient_history", args=[patient.pk]),
        "worklist": reverse("registry:followup_worklist"),
        "follow-up": reverse("registry:patient_calls", args=[due_patient.pk]),
        "questionnaire": mrs,
        "questionnaire, a later question": f"{mrs}?q=dead&answer=no",
        "questionnaire, the score": f"{mrs}?a_dead=no&a_constant_care=no"
        "&q=needs_help_bodily&answer=yes",
        "new patient": reverse("registry:patient_create"),
        "profile": reverse("profile"),
    }


def test_the_nurses_pages_in_vietnamese_carry_no_english_string_of_the_registry(
    client, nurse_vi, site_a, due_patient
):
    patient = full_patient(site=site_a, study_id="CT-001")
    client.force_login(nurse_vi)
    fragments = english_fragments()
    found = {}
    for name, url in nurse_pages(patient, due_patient).items():
        response = client.get(url)
        assert response.status_code == 200, name
        text = visible_text(response.content.decode())
        if english := english_found(text, fragments):
            found[name] = english
    assert found == {}


def test_a_rule_broken_in_vietnamese_is_explained_in_vietnamese(client, nurse_vi, site_a):
    from .test_views import admission_post

    patient = PatientFactory(site=site_a)
    client.force_login(nurse_vi)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    response = client.post(url, admission_post(door_time="2024-03-01T07:00"))
    text = visible_text(response.content.decode())
    assert "Thời điểm nhập viện không được trước thời điểm khởi phát." in text
    assert english_found(text, english_fragments()) == []


def test_the_report_page_in_vietnamese_carries_no_english_string_of_the_registry(
    client, investigator, site_a, site_b
):
    # Site names are the hospitals' own words, not the registry's: name them as a
    # Vietnamese registry would, so that only the registry's strings are looked for.
    for site, name in ((site_a, "Bệnh viện A"), (site_b, "Bệnh viện B")):
        site.name = name
        site.save()
    build_cohort(site_a, site_b)
    investigator.language = Language.VIETNAMESE
    investigator.save()
    client.force_login(investigator)
    response = client.get(reverse("analytics:report"))
    text = visible_text(response.content.decode())
    assert "Kết cục xấu" in text
    assert english_found(text, english_fragments()) == []
