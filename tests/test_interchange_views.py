"""The import/export pages: upload -> preview -> confirm, downloads, and who may do what."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from registry.interchange import uploads
from registry.models import ExportLog, Patient

from .interchange_rows import csv_text, row

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_upload_dir(settings, tmp_path):
    settings.IMPORT_UPLOAD_DIR = str(tmp_path / "uploads")
    return tmp_path / "uploads"


def upload(client, rows, name="patients.csv", **extra):
    content = csv_text(rows).encode()
    data = {"file": SimpleUploadedFile(name, content, content_type="text/csv"), **extra}
    return client.post(reverse("registry:import_upload"), data)


def confirmation(preview) -> dict:
    """What the preview page's confirm button sends: the file's and the plan's digests."""
    return {
        "action": "confirm",
        "digest": preview.context["digest"],
        "plan_digest": preview.context["result"].plan_digest,
    }


def pending_files(folder):
    """The uploads waiting in the folder (each preview is kept beside its upload)."""
    if not folder.exists():
        return []
    return [path for path in folder.iterdir() if not path.name.endswith(".preview.json")]


def test_an_admin_uploads_sees_the_counts_and_nothing_is_written_before_confirming(
    client, admin_user, site_a, private_upload_dir
):
    client.force_login(admin_user)
    response = upload(client, [row(), row(study_id="T-002")])
    assert response.status_code == 302
    assert response.url == reverse("registry:import_preview")
    preview = client.get(response.url)
    assert preview.status_code == 200
    assert "Patients to create" in preview.content.decode()
    assert preview.context["result"].created == 2
    assert not Patient.objects.exists()
    assert len(pending_files(private_upload_dir)) == 1

    done = client.post(reverse("registry:import_confirm"), confirmation(preview))
    assert done.status_code == 302
    assert Patient.objects.count() == 2
    assert Patient.history.first().history_user == admin_user
    assert pending_files(private_upload_dir) == []


def test_a_bad_file_shows_every_problem_and_offers_no_confirmation(client, admin_user, site_a):
    client.force_login(admin_user)
    upload(client, [row(age_years="17"), row(study_id="T-002", circulation="left")])
    page = client.get(reverse("registry:import_preview")).content.decode()
    assert "row 1, column age_years:" in page
    assert "row 2, column circulation: unknown code" in page
    assert 'value="confirm"' not in page
    client.post(reverse("registry:import_confirm"), {"action": "confirm"})
    assert not Patient.objects.exists()


def test_cancelling_deletes_the_upload_and_writes_nothing(
    client, admin_user, site_a, private_upload_dir
):
    client.force_login(admin_user)
    upload(client, [row()])
    client.post(reverse("registry:import_confirm"), {"action": "cancel"})
    assert pending_files(private_upload_dir) == []
    assert not Patient.objects.exists()
    response = client.get(reverse("registry:import_preview"))
    assert response.url == reverse("registry:import_upload")


def test_only_csv_and_xlsx_files_are_accepted(client, admin_user, site_a):
    client.force_login(admin_user)
    response = upload(client, [row()], name="patients.txt")
    assert response.status_code == 200
    assert "Only .csv and .xlsx files" in response.content.decode()


def test_a_file_over_the_size_limit_is_refused(client, admin_user, site_a, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100
    client.force_login(admin_user)
    response = upload(client, [row()])
    assert response.status_code == 200
    assert "larger than" in response.content.decode()


def test_the_create_sites_option_reaches_the_import(client, admin_user, db):
    client.force_login(admin_user)
    upload(client, [row(site="NEW")], create_sites="on")
    assert client.get(reverse("registry:import_preview")).context["result"].sites_created == ["NEW"]


@pytest.mark.parametrize("role", ["nurse", "investigator", "monitor"])
def test_only_registry_admins_may_import(client, request, role, site_a):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("registry:import_upload")).status_code == 403
    assert upload(client, [row()]).status_code == 403
    assert client.post(reverse("registry:import_confirm"), {"action": "confirm"}).status_code == 403


def test_an_investigator_downloads_a_deidentified_export(client, investigator, site_a, tmp_path):
    from registry.interchange.importer import registry_import

    path = tmp_path / "p.csv"
    path.write_text(csv_text([row()]))
    registry_import(file=path, filename="p.csv")
    client.force_login(investigator)
    assert client.get(reverse("registry:export")).status_code == 200
    response = client.post(reverse("registry:export"), {"format": "csv", "identifiable": "on"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    header = b"".join(response.streaming_content).decode().splitlines()[0].split(",")
    assert "study_id" not in header and "pseudo_id" in header
    log = ExportLog.objects.get()
    assert (log.user, log.identifiable, log.via, log.n_patients) == (investigator, False, "web", 1)


def test_an_admin_may_download_an_identifiable_excel_export(client, admin_user, site_a):
    client.force_login(admin_user)
    response = client.post(reverse("registry:export"), {"format": "xlsx", "identifiable": "on"})
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"PK"
    assert ExportLog.objects.get().identifiable


@pytest.mark.parametrize("role", ["nurse", "monitor"])
def test_roles_without_export_rights_see_no_export(client, request, role):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("registry:export")).status_code == 403
    assert client.post(reverse("registry:export"), {"format": "csv"}).status_code == 403


def test_the_data_dictionary_is_shown_and_downloadable_by_any_user(client, nurse):
    client.force_login(nurse)
    page = client.get(reverse("registry:data_dictionary"))
    assert page.status_code == 200 and "mrs_3m" in page.content.decode()
    csv_file = client.get(reverse("registry:data_dictionary"), {"format": "csv"})
    assert csv_file["Content-Disposition"] == 'attachment; filename="data-dictionary.csv"'
    assert io.StringIO(csv_file.content.decode()).readline().startswith("name,section,label")


def test_the_hub_page_offers_each_role_only_its_actions(client, nurse, admin_user):
    client.force_login(nurse)
    page = client.get(reverse("registry:interchange")).content.decode()
    assert reverse("registry:import_upload") not in page
    assert reverse("registry:export") not in page
    client.force_login(admin_user)
    page = client.get(reverse("registry:interchange")).content.decode()
    assert reverse("registry:import_upload") in page and reverse("registry:export") in page


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(reverse("registry:interchange"))
    assert response.status_code == 302 and "login" in response.url


def test_a_forged_session_token_is_ignored(client, admin_user):
    client.force_login(admin_user)
    session = client.session
    session[uploads.SESSION_KEY] = {
        "token": "../../etc/passwd",
        "filename": "x.csv",
        "create_sites": False,
    }
    session.save()
    response = client.get(reverse("registry:import_preview"))
    assert response.url == reverse("registry:import_upload")


def test_a_csv_that_is_not_utf8_gives_the_preview_with_the_problem_not_an_error(
    client, admin_user, site_a
):
    client.force_login(admin_user)
    # Excel's plain "CSV" on a Vietnamese Windows: Windows-1258, not UTF-8.
    content = csv_text([row(stent_device="Nguy\u00ea\u0303n H\u01b0\u0303u")]).encode("cp1258")
    data = {"file": SimpleUploadedFile("patients.csv", content, content_type="text/csv")}
    assert client.post(reverse("registry:import_upload"), data).status_code == 302
    response = client.get(reverse("registry:import_preview"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "the file is not UTF-8 text; save it as CSV UTF-8" in page
    assert 'value="confirm"' not in page
    assert not Patient.objects.exists()


def test_a_fake_xlsx_gives_the_preview_with_the_problem_not_an_error(client, admin_user, site_a):
    client.force_login(admin_user)
    content = b"PK\x03\x04 not a workbook"
    data = {"file": SimpleUploadedFile("patients.xlsx", content)}
    assert client.post(reverse("registry:import_upload"), data).status_code == 302
    response = client.get(reverse("registry:import_preview"))
    assert response.status_code == 200
    assert "not a valid Excel .xlsx file" in response.content.decode()
