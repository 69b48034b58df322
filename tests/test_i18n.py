"""Two languages: each user's own, day-first dates in Vietnamese, exports that never change
with the language of the page."""

import datetime as dt
import json
import re

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone, translation

from registry import smrs
from registry.choices import Language
from registry.forms import section_formfield
from registry.models import Admission, Complications, MrsInterview, User

from .analytics_cohort import build_cohort
from .factories import AdmissionFactory, ComplicationsFactory, PatientFactory, full_patient
from .test_views import admission_post

pytestmark = pytest.mark.django_db

LANGS = ("en", "vi")
HANOI = dt.timezone(dt.timedelta(hours=7))


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.content.decode()).group(1)


@pytest.fixture
def nurse_vi(nurse):
    nurse.language = Language.VIETNAMESE
    nurse.save()
    return nurse


def test_a_user_reads_the_pages_in_the_language_of_her_account(client, nurse_vi):
    client.force_login(nurse_vi)
    response = client.get(reverse("registry:patient_list"), HTTP_ACCEPT_LANGUAGE="en")
    assert html_lang(response) == "vi"
    assert "Bệnh nhân" in response.content.decode()


def test_a_user_without_a_choice_reads_the_registrys_default_language(client, nurse, settings):
    settings.LANGUAGE_CODE = "vi"
    client.force_login(nurse)
    response = client.get(reverse("registry:patient_list"), HTTP_ACCEPT_LANGUAGE="en")
    assert html_lang(response) == "vi"


def test_the_switcher_stores_the_language_on_the_account_and_returns_to_the_page(client, nurse):
    client.force_login(nurse)
    here = reverse("registry:patient_list")
    response = client.post(reverse("language_set"), {"language": "vi", "next": here})
    assert response.status_code == 302 and response["Location"] == here
    nurse.refresh_from_db()
    assert nurse.language == "vi"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "vi"
    assert html_lang(client.get(here)) == "vi"


def test_the_switcher_on_the_login_page_sets_the_cookie_only(client):
    response = client.post(reverse("language_set"), {"language": "vi", "next": reverse("login")})
    assert response.status_code == 302
    assert html_lang(client.get(reverse("login"))) == "vi"


def test_the_switcher_refuses_an_unknown_language_and_a_foreign_next_page(client, nurse):
    client.force_login(nurse)
    assert client.post(reverse("language_set"), {"language": "fr"}).status_code == 400
    response = client.post(
        reverse("language_set"), {"language": "vi", "next": "https://example.org/"}
    )
    assert response["Location"] == reverse(settings.LOGIN_REDIRECT_URL)


def test_the_profile_page_saves_the_language_and_writes_no_rights_history(client, nurse):
    client.force_login(nurse)
    before = nurse.history.count()
    response = client.post(reverse("profile"), {"language": "vi"})
    assert response.status_code == 302
    nurse.refresh_from_db()
    assert nurse.language == "vi"
    assert nurse.history.count() == before
    page = client.get(reverse("profile")).content.decode()
    assert 'value="vi" selected' in page


def test_the_demo_nurse_reads_vietnamese_and_the_demo_investigator_english(db):
    call_command("seed_demo", stdout=None)
    languages = dict(User.objects.values_list("username", "language"))
    assert languages["nurse"] == "vi" and languages["investigator"] == "en"


# --- Day-first dates -------------------------------------------------------------------


def test_03_04_2026_typed_in_vietnamese_is_the_3rd_of_april(client, nurse_vi, site_a):
    patient = PatientFactory(site=site_a)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    client.force_login(nurse_vi)
    data = admission_post(onset_time="03/04/2026 07:30", door_time="03/04/2026 09:45")
    assert client.post(url, data).status_code == 302
    admission = Admission.objects.get()
    assert admission.onset_time == dt.datetime(2026, 4, 3, 7, 30, tzinfo=HANOI)
    assert admission.door_time == dt.datetime(2026, 4, 3, 9, 45, tzinfo=HANOI)


def test_a_date_typed_day_first_or_in_iso_means_the_same_day_in_vietnamese():
    field = section_formfield(Complications._meta.get_field("discharge_date"))
    with translation.override("vi"):
        assert field.clean("03/04/2026") == dt.date(2026, 4, 3)
        assert field.clean("2026-04-03") == dt.date(2026, 4, 3)


def test_vietnamese_pages_show_dates_day_first_and_decimals_with_a_comma():
    from django.utils import formats

    with translation.override("vi"):
        assert formats.date_format(dt.date(2026, 4, 3), "SHORT_DATE_FORMAT") == "03/04/2026"
        assert formats.time_format(dt.time(14, 5)) == "14:05"
        assert formats.localize(2.5) == "2,5"
    with translation.override("en"):
        assert formats.localize(2.5) == "2.5"


# --- Exports stay language-neutral ------------------------------------------------------


def download(client, user, language: str, *args) -> bytes:
    user.language = language
    user.save()
    client.force_login(user)
    return client.get(reverse("analytics:download", args=args)).content


def test_the_study_tables_downloads_are_the_same_in_both_languages(
    client, investigator, site_a, site_b
):
    build_cohort(site_a, site_b)
    english = download(client, investigator, "en", "all", "csv")
    assert download(client, investigator, "vi", "all", "csv") == english
    assert re.search(rb"\d\.\d", english)
    contracts = [json.loads(download(client, investigator, lang, "all", "json")) for lang in LANGS]
    for contract in contracts:
        contract.pop("generated_at")  # the second it was computed
    assert contracts[0] == contracts[1]


def test_the_interchange_export_is_the_same_in_both_languages(client, admin_user, site_a):
    full_patient(site=site_a)
    files = {}
    for language in ("en", "vi"):
        admin_user.language = language
        admin_user.save()
        client.force_login(admin_user)
        data = {"format": "csv", "identifiable": "on"}
        files[language] = b"".join(client.post(reverse("registry:export"), data).streaming_content)
    assert files["vi"] == files["en"]
    assert re.search(rb",\d{4}-\d\d-\d\d[ T]\d\d:\d\d", files["vi"])


# --- The mRS questionnaire's language ---------------------------------------------------


def due_today(site, study_id: str):
    """A patient admitted 90 days ago and discharged: the 3-month call is due today."""
    onset = timezone.now() - dt.timedelta(days=90)
    patient = PatientFactory(site=site, study_id=study_id)
    AdmissionFactory(patient=patient, onset_time=onset, door_time=onset + dt.timedelta(hours=2))
    ComplicationsFactory(patient=patient, discharge_date=timezone.localdate(onset))
    return patient


def interview(client, user, patient):
    url = reverse("registry:mrs_interview", args=[patient.pk])
    client.force_login(user)
    data = {
        "a_dead": "no",
        "a_constant_care": "yes",
        "interview_date": timezone.localdate().isoformat(),
        "respondent": "proxy",
    }
    return client.post(url, data)


def test_an_interview_stores_the_language_and_version_of_its_questions(client, nurse_vi, site_a):
    patient = due_today(site_a, "CT-090")
    assert interview(client, nurse_vi, patient).status_code == 302
    stored = MrsInterview.objects.get()
    assert (stored.language, stored.questionnaire_version) == ("vi", smrs.VERSION)


def test_the_vietnamese_questionnaire_says_its_wording_is_not_yet_validated(client, nurse, site_a):
    patient = due_today(site_a, "CT-090")
    url = reverse("registry:mrs_interview", args=[patient.pk])
    client.force_login(nurse)
    assert "not yet validated" not in client.get(url).content.decode()
    nurse.language = Language.VIETNAMESE
    nurse.save()
    assert "bản dịch chưa được thẩm định" in client.get(url).content.decode()


def test_the_report_counts_the_interviews_per_language(client, nurse, investigator, site_a):
    interview(client, nurse, due_today(site_a, "CT-091"))
    nurse.language = Language.VIETNAMESE
    nurse.save()
    interview(client, nurse, due_today(site_a, "CT-092"))
    interview(client, nurse, due_today(site_a, "CT-093"))
    client.force_login(investigator)
    page = client.get(reverse("analytics:report")).content.decode()
    counted = re.search(r'<span id="interview-languages">(.*?)</span>', page, re.S).group(1)
    assert "English 1 · Tiếng Việt 2" in counted


def test_the_error_pages_speak_the_users_language(client, nurse_vi):
    client.force_login(nurse_vi)
    response = client.get(reverse("registry:patient_detail", args=[999_999]))
    assert response.status_code == 404
    assert "Không tìm thấy" in response.content.decode()
    assert html_lang(response) == "vi"
