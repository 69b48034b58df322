"""The REST API: tokens (hashed, expiring, read-only, revocable), the request log, the
patient list's filters and cursor, a section written with the form's rules, warnings,
reason, version and lock, the dictionary, the study tables (live or from a data
freeze), the data freezes and the schema."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from registry.api.services import api_token_create, api_token_revoke
from registry.models import Admission, ApiRequestLog, ApiToken, DataFreeze
from registry.workflow.services import patient_lock

from .factories import PASSWORD, UserFactory, full_patient

pytestmark = pytest.mark.django_db


def tomorrow() -> dt.datetime:
    return timezone.now() + dt.timedelta(days=1)


def api(user, **token) -> Client:
    _, key = api_token_create(
        user=user, name="script", expires_at=token.pop("expires_at", tomorrow()), **token
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def section_url(patient, key="admission") -> str:
    return reverse("api:section", kwargs={"pk": patient.pk, "section_key": key})


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


# --- tokens ----------------------------------------------------------------------------


def test_only_the_hash_of_a_token_is_stored_and_the_token_is_shown_once(nurse):
    token, key = api_token_create(user=nurse, name="laptop", expires_at=tomorrow())
    stored = ApiToken.objects.get(pk=token.pk)
    assert key not in {stored.key_hash, stored.prefix, stored.name}
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(stored.prefix)


def test_a_token_expiring_in_the_past_or_beyond_the_longest_lifetime_is_refused(nurse, settings):
    settings.API_TOKEN_MAX_DAYS = 30
    with pytest.raises(ValidationError, match="future"):
        api_token_create(user=nurse, name="x", expires_at=timezone.now() - dt.timedelta(hours=1))
    with pytest.raises(ValidationError, match="30 days"):
        api_token_create(user=nurse, name="x", expires_at=timezone.now() + dt.timedelta(days=31))


def test_no_token_a_wrong_one_an_expired_one_and_a_revoked_one_answer_401(nurse):
    url = reverse("api:sites")
    assert Client().get(url).status_code == 401
    assert Client().get(url)["WWW-Authenticate"].startswith("Bearer")
    assert Client(HTTP_AUTHORIZATION="Bearer reg_not-a-token").get(url).status_code == 401
    token, key = api_token_create(user=nurse, name="x", expires_at=tomorrow())
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(url).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    assert "expired" in client.get(url).json()["detail"]
    ApiToken.objects.filter(pk=token.pk).update(expires_at=tomorrow())
    api_token_revoke(user=nurse, token=token)
    assert "revoked" in client.get(url).json()["detail"]


def test_a_deactivated_users_token_stops_working(nurse):
    client = api(nurse)
    nurse.is_active = False
    nurse.save()
    assert client.get(reverse("api:sites")).status_code == 401


def test_only_the_owner_revokes_a_token(nurse, investigator):
    token, _ = api_token_create(user=nurse, name="x", expires_at=tomorrow())
    with pytest.raises(ValidationError):
        api_token_revoke(user=investigator, token=token)


def test_the_profile_page_creates_a_token_shows_it_once_and_revokes_it(client, nurse):
    client.force_login(nurse)
    day = (timezone.localdate() + dt.timedelta(days=10)).isoformat()
    created = client.post(
        reverse("api_token_create"), {"name": "R script", "expires_on": day, "read_only": "on"}
    )
    key = created.context["new_key"]
    assert key in created.content.decode()
    token = ApiToken.objects.get(user=nurse)
    assert token.read_only and token.name == "R script"
    assert key not in client.get(reverse("profile")).content.decode()
    client.post(reverse("api_token_revoke", args=[token.pk]))
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_the_profile_page_names_the_field_of_a_bad_expiry(client, nurse):
    client.force_login(nurse)
    refused = client.post(reverse("api_token_create"), {"name": "x", "expires_on": "2001-01-01"})
    assert refused.context["token_form"].errors["expires_on"] == [
        "The expiry date must be in the future."
    ]
    assert not ApiToken.objects.exists()


def test_a_read_only_token_reads_but_never_writes(nurse, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    client = api(nurse, read_only=True)
    url = section_url(patient)
    assert client.get(url).status_code == 200
    refused = patch(client, url, {"version": client.get(url).json()["version"], "values": {}})
    assert refused.status_code == 403
    assert "read-only" in refused.json()["detail"]


def test_every_request_is_logged_with_user_token_endpoint_method_and_status(nurse):
    client = api(nurse)
    client.get(reverse("api:sites"))
    Client().get(reverse("api:patients"))
    logged = list(ApiRequestLog.objects.order_by("at", "pk"))
    assert [(e.endpoint, e.method, e.status) for e in logged] == [
        ("/api/v1/sites/", "GET", 200),
        ("/api/v1/patients/", "GET", 401),
    ]
    assert logged[0].user == nurse and logged[0].token.user == nurse
    assert logged[1].user is None and logged[1].token is None


# --- patients --------------------------------------------------------------------------


def test_the_patient_list_takes_the_pages_filters_and_pages_with_a_cursor(nurse, site_a):
    for number in range(5):
        full_patient(study_id=f"A-{number:03d}", site=site_a)
    client = api(nurse)
    first = client.get(reverse("api:patients"), {"page_size": 2}).json()
    seen = [row["study_id"] for row in first["results"]]
    following = client.get(first["next"]).json()
    seen += [row["study_id"] for row in following["results"]]
    following = client.get(following["next"]).json()
    seen += [row["study_id"] for row in following["results"]]
    assert sorted(seen) == [f"A-{n:03d}" for n in range(5)] and following["next"] is None
    found = client.get(reverse("api:patients"), {"q": "003"}).json()["results"]
    assert [row["study_id"] for row in found] == ["A-003"]


def test_a_filter_the_page_would_refuse_answers_400_naming_it(nurse, site_b):
    response = api(nurse).get(reverse("api:patients"), {"site": site_b.pk})
    assert response.status_code == 400
    assert "site" in response.json()["errors"]


def test_the_patient_detail_gives_each_sections_status_and_version(nurse, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    body = api(nurse).get(reverse("api:patient", args=[patient.pk])).json()
    assert body["study_id"] == "A-1" and body["site"] == "A" and body["locked"] is False
    assert body["sections"]["admission"]["version"] == patient.admission.version


# --- writing a section -----------------------------------------------------------------


def read(client, patient, key="admission") -> dict:
    return client.get(section_url(patient, key)).json()


def test_a_section_is_written_with_the_version_read_and_a_new_version_comes_back(nurse, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    client = api(nurse)
    before = read(client, patient)
    new = 7 if before["values"]["nihss_admission"] != 7 else 8
    saved = patch(
        client,
        section_url(patient),
        {
            "version": before["version"],
            "values": {"nihss_admission": new},
            "complete": before["status"] == "complete",
            "reason": "typo",
        },
    )
    assert saved.status_code == 200, saved.json()
    assert saved.json()["values"]["nihss_admission"] == new
    assert saved.json()["version"] == before["version"] + 1
    assert Admission.objects.get(patient=patient).nihss_admission == new


def test_a_value_out_of_range_is_refused_with_the_forms_message_naming_the_field(nurse, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    client = api(nurse)
    before = read(client, patient)
    body = {"version": before["version"], "values": {"nihss_admission": 99}, "reason": "x"}
    refused = patch(client, section_url(patient), body)
    assert refused.status_code == 400
    assert "nihss_admission" in refused.json()["errors"]
    assert (
        Admission.objects.get(patient=patient).nihss_admission
        == before["values"]["nihss_admission"]
    )


def test_an_unknown_field_is_refused_by_name(nurse, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    client = api(nurse)
    body = {"version": read(client, patient)["version"], "values": {"shoe_size": 42}}
    refused = patch(client, section_url(patient), body)
    assert refused.status_code == 400 and "shoe_size" in refused.json()["detail"]


def test_a_complete_section_changes_only_with_a_reason(nurse, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    client = api(nurse)
    before = read(client, patient)
    change = {"version": before["version"], "values": {"nihss_admission": 3}, "complete": True}
    complete = patch(client, section_url(patient), {**change, "reason": "entered"})
    assert complete.status_code == 200
    change["version"] = complete.json()["version"]
    change["values"] = {"nihss_admission": 4}
    refused = patch(client, section_url(patient), change)
    assert refused.status_code == 400
    assert "reason_for_change" in refused.json()["errors"]
    assert patch(client, section_url(patient), {**change, "reason": "CT report"}).status_code == 200
    history = Admission.history.filter(patient_id=patient.pk).first()
    assert history.history_change_reason == "CT report"


def test_a_warning_is_refused_until_confirmed_with_a_reason(nurse, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    client = api(nurse)
    before = read(client, patient)
    onset = dt.datetime.fromisoformat(before["values"]["door_time"]) - dt.timedelta(hours=49)
    change = {
        "version": before["version"],
        "values": {"onset_time": onset.isoformat()},
        "complete": before["status"] == "complete",
        "reason": "late arrival",
    }
    refused = patch(client, section_url(patient), change)
    assert refused.status_code == 400
    (warning,) = refused.json()["warnings"]
    assert warning["rule"] == "onset_to_door_over_24h__door_time"
    confirmed = {**change, "confirmations": {warning["rule"]: "Found at home"}}
    assert patch(client, section_url(patient), confirmed).status_code == 200
    assert patient.warning_confirmations.get().reason == "Found at home"


def test_a_change_based_on_an_old_version_answers_409_with_the_stored_values(nurse, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    client = api(nurse)
    before = read(client, patient)
    complete = before["status"] == "complete"
    first = {"version": before["version"], "values": {"nihss_admission": 5}, "reason": "a"}
    assert patch(client, section_url(patient), {**first, "complete": complete}).status_code == 200
    second = {**first, "values": {"nihss_admission": 6}, "complete": complete}
    conflict = patch(client, section_url(patient), second)
    assert conflict.status_code == 409
    assert conflict.json()["stored_version"] == before["version"] + 1
    assert conflict.json()["stored"]["nihss_admission"] == 5


def test_a_locked_record_refuses_writes_naming_the_lock(nurse, monitor, site_a):
    patient = full_patient(study_id="A-1", site=site_a)
    patient_lock(user=monitor, patient=patient, reason="SDV done", password=PASSWORD)
    client = api(nurse)
    before = read(client, patient)
    assert before["locked"] is True
    refused = patch(client, section_url(patient), {"version": before["version"], "values": {}})
    assert refused.status_code == 403
    assert "locked" in refused.json()["detail"] and "monitor_a" in refused.json()["detail"]


# --- dictionary, reports, schema -----------------------------------------------------


def test_the_dictionary_lists_every_column_with_its_range(nurse):
    entries = api(nurse).get(reverse("api:dictionary")).json()
    nihss = next(entry for entry in entries if entry["name"] == "nihss_admission")
    assert (nihss["min"], nihss["max"]) == ("0", "42")


def command_json(*args) -> dict:
    printed = io.StringIO()
    call_command(*args, stdout=printed)
    return json.loads(printed.getvalue())


def test_the_study_tables_are_the_commands_json_for_the_same_filters(investigator, site_a):
    for number in range(3):
        full_patient(study_id=f"A-{number}", site=site_a)
    body = api(investigator).get(reverse("api:study_tables"), {"site": "A"}).json()
    command = command_json("study_tables", "--site", "A")
    assert set(body) == set(command)
    assert body["table1"] == command["table1"]
    assert body["filters"] == command["filters"]


def test_report_filters_the_command_would_refuse_answer_400(investigator):
    client = api(investigator)
    refused = client.get(reverse("api:study_tables"), {"from": "2020-02-01", "to": "2020-01-01"})
    assert refused.status_code == 400 and "to" in refused.json()
    assert client.get(reverse("api:quality_indicators"), {"period": "week"}).status_code == 400


def test_the_quality_indicators_are_the_commands_json_for_the_same_filters(investigator, site_a):
    full_patient(study_id="A-1", site=site_a)
    body = api(investigator).get(reverse("api:quality_indicators"), {"period": "year"}).json()
    assert body == command_json("quality_indicators", "--period", "year")


# --- data freezes ------------------------------------------------------------------------


@pytest.fixture
def freeze_cache(tmp_path, settings):
    settings.FREEZE_CACHE_DIR = str(tmp_path / "freeze-cache")


def freeze_of(client, name: str, **fields) -> dict:
    created = client.post(
        reverse("api:freezes"), {"name": name, "reason": "manuscript", **fields}, "application/json"
    )
    assert created.status_code == 201, created.content
    return created.json()


def without_time_of_computing(result: dict) -> dict:
    return {key: value for key, value in result.items() if key != "generated_at"}


def test_the_reports_of_a_freeze_are_the_commands_json_for_that_freeze_whatever_changed(
    investigator, site_a, freeze_cache
):
    for number in range(3):
        full_patient(study_id=f"A-{number}", site=site_a)
    client = api(investigator)
    freeze = freeze_of(client, "submission-1")
    Admission.objects.filter(patient__study_id="A-0").update(nihss_admission=3)
    tables = client.get(reverse("api:study_tables"), {"freeze": "submission-1"}).json()
    command = command_json("study_tables", "--freeze", "submission-1")
    assert without_time_of_computing(tables) == without_time_of_computing(command)
    assert tables["freeze"]["sha256"] == freeze["sha256"]
    quality = client.get(reverse("api:quality_indicators"), {"freeze": "submission-1"}).json()
    assert quality == command_json("quality_indicators", "--freeze", "submission-1")


def test_a_freeze_downloads_as_the_csv_whose_sha256_it_keeps(investigator, site_a, freeze_cache):
    full_patient(study_id="A-1", site=site_a)
    client = api(investigator)
    freeze = freeze_of(client, "abstract", site="A")
    assert (freeze["sites"], freeze["site"], freeze["n_patients"]) == (["A"], "A", 1)
    download = client.get(reverse("api:freeze_download", args=["abstract"]))
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == download["X-Freeze-SHA256"] == freeze["sha256"]
    assert body.startswith(b"study_id,") and b"A-1" in body
    detail = client.get(reverse("api:freeze", args=["abstract"])).json()
    assert detail == freeze
    assert client.get(reverse("api:freezes")).json() == [freeze]


def test_freezing_is_refused_to_a_read_only_token_and_to_a_nurse(investigator, nurse):
    url, body = reverse("api:freezes"), {"name": "x", "reason": "manuscript"}
    read_only = api(investigator, read_only=True).post(url, body, "application/json")
    assert read_only.status_code == 403 and "read-only" in read_only.json()["detail"]
    assert api(nurse).post(url, body, "application/json").status_code == 403
    assert not DataFreeze.objects.exists()


def test_a_used_name_or_another_sites_code_is_refused_naming_the_field(
    investigator, site_a, site_b, freeze_cache
):
    client = api(investigator)
    freeze_of(client, "abstract")
    url = reverse("api:freezes")
    again = client.post(url, {"name": "abstract", "reason": "again"}, "application/json")
    assert again.status_code == 400 and "name" in again.json()["errors"]
    elsewhere = client.post(url, {"name": "b", "reason": "x", "site": "B"}, "application/json")
    assert elsewhere.status_code == 400 and "site" in elsewhere.json()["errors"]
    assert list(DataFreeze.objects.values_list("name", flat=True)) == ["abstract"]


def tamper(name: str) -> None:
    """Change a stored freeze's rows (the model and the database refuse an UPDATE)."""
    freeze = DataFreeze.objects.get(name=name)
    rows = gzip.decompress(bytes(freeze.rows_gz)).replace(b"A-1", b"A-9")
    freeze.delete()
    freeze.rows_gz = gzip.compress(rows)
    DataFreeze.objects.bulk_create([freeze])


def test_an_unknown_freeze_answers_404_and_a_tampered_one_409_naming_it(
    investigator, site_a, freeze_cache
):
    full_patient(study_id="A-1", site=site_a)
    client = api(investigator)
    assert client.get(reverse("api:study_tables"), {"freeze": "nope"}).status_code == 404
    assert client.get(reverse("api:freeze", args=["nope"])).status_code == 404
    freeze_of(client, "abstract")
    tamper("abstract")
    for url in (
        reverse("api:study_tables") + "?freeze=abstract",
        reverse("api:quality_indicators") + "?freeze=abstract",
        reverse("api:freeze_download", args=["abstract"]),
        reverse("api:freeze_compare", args=["abstract"]),
    ):
        refused = client.get(url)
        assert refused.status_code == 409, url
        assert "abstract" in refused.json()["detail"] and "SHA-256" in refused.json()["detail"]


def test_a_freeze_compared_with_the_live_data_lists_the_changed_value(
    investigator, site_a, freeze_cache
):
    full_patient(study_id="A-1", site=site_a)
    client = api(investigator)
    freeze_of(client, "abstract")
    Admission.objects.filter(patient__study_id="A-1").update(nihss_admission=3)
    compared = client.get(reverse("api:freeze_compare", args=["abstract"])).json()
    assert (compared["after"], compared["n_differences"]) == ("live", 1)
    assert [(c["study_id"], c["column"], c["after"]) for c in compared["changes"]] == [
        ("A-1", "nihss_admission", "3")
    ]
    freeze_of(client, "second")
    url = reverse("api:freeze_compare", args=["abstract"])
    assert client.get(url, {"with": "second"}).json()["changes"] == compared["changes"]
    assert client.get(url, {"with": "nope"}).status_code == 404


def test_the_openapi_schema_validates_without_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_documentation_page_is_served_from_the_registry_itself(client, nurse):
    client.force_login(nurse)
    page = client.get(reverse("api:docs")).content.decode()
    assert "/static/drf_spectacular_sidecar/" in page and "//cdn" not in page


def test_a_page_of_patients_takes_as_many_queries_for_many_patients_as_for_one(nurse, site_a):
    client = api(nurse)
    client.get(reverse("api:sites"))  # the token's first use is noted once (a write)
    full_patient(study_id="A-000", site=site_a)
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("api:patients"))
    for number in range(1, 6):
        full_patient(study_id=f"A-{number:03d}", site=site_a)
    with CaptureQueriesContext(connection) as six:
        assert len(client.get(reverse("api:patients")).json()["results"]) == 6
    assert len(six) == len(one)


def test_the_registry_administrator_reads_tokens_and_requests_in_the_admin_without_hashes(
    nurse, client
):
    token, _ = api_token_create(user=nurse, name="laptop", expires_at=tomorrow())
    api(nurse).get(reverse("api:sites"))
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    requests = client.get(reverse("admin:registry_apirequestlog_changelist"))
    assert "/api/v1/sites/" in requests.content.decode()
    page = client.get(reverse("admin:registry_apitoken_change", args=[token.pk]))
    assert page.status_code == 200 and token.key_hash not in page.content.decode()
