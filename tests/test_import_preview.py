"""An import preview that shows every change, and a confirmation that writes exactly it."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from registry.interchange.importer import registry_import
from registry.models import Patient

from .interchange_rows import row, write_csv
from .test_interchange_views import confirmation, pending_files, private_upload_dir, upload

pytestmark = pytest.mark.django_db
__all__ = ["private_upload_dir"]  # the fixture, used by name

CHANGED = {
    "sex": "female",
    "age_years": "71",
    "onset_time": "2020-06-01T07:00",
    "door_time": "2020-06-01T11:30",
    "nihss_admission": "9",
    "dwi_aspects": "6",
}


@pytest.fixture
def stored(tmp_path, site_a, admin_user):
    registry_import(file=write_csv(tmp_path, [row(), row(study_id="T-002")]), user=admin_user)
    return Patient.objects.get(study_id="T-002")


def test_the_dry_run_lists_every_field_with_the_stored_and_the_new_value(tmp_path, stored, capsys):
    path = write_csv(tmp_path, [row(), row(study_id="T-002", **CHANGED)], name="fix.csv")
    call_command("import_registry", str(path), "--dry-run")
    out = capsys.readouterr().out
    assert "row 2, study_id T-002: field sex: male \u2192 female" in out
    assert "row 2, study_id T-002: field age_years: 63 \u2192 71" in out
    assert "field onset_time: 2020-06-01T08:00 \u2192 2020-06-01T07:00 [completed section]" in out
    assert "field door_time: 2020-06-01T12:00 \u2192 2020-06-01T11:30 [completed section]" in out
    assert "field nihss_admission: " in out and "\u2192 9 [completed section]" in out
    assert "field dwi_aspects: " in out and "\u2192 6 [completed section]" in out
    assert "study_id T-001" not in out  # unchanged: not listed


def test_the_web_preview_lists_each_change_and_offers_the_whole_diff(
    client, admin_user, stored, private_upload_dir
):
    client.force_login(admin_user)
    upload(client, [row(), row(study_id="T-002", **CHANGED)])
    preview = client.get(reverse("registry:import_preview"))
    html = preview.content.decode()
    changes = preview.context["result"].changes
    assert [c.study_id for c in changes] == ["T-002"]
    assert {f.field for f in changes[0].fields} == set(CHANGED)
    assert "completed section" in html and "Download every change (CSV)" in html
    diff = client.get(reverse("registry:import_diff")).content.decode()
    assert diff.splitlines()[0] == "row,study_id,field,stored,new,completed_section,locked"
    assert "2,T-002,sex,male,female,0,0" in diff
    assert "2,T-002,nihss_admission," in diff


def test_confirming_refuses_a_file_that_changed_after_the_preview(
    client, admin_user, stored, private_upload_dir
):
    client.force_login(admin_user)
    upload(client, [row(), row(study_id="T-002", **CHANGED)])
    preview = client.get(reverse("registry:import_preview"))
    (path,) = pending_files(private_upload_dir)
    path.write_bytes(path.read_bytes().replace(b"female", b"male"))
    response = client.post(reverse("registry:import_confirm"), confirmation(preview), follow=True)
    assert "The file is not the one previewed" in response.content.decode()
    assert Patient.objects.get(study_id="T-002").sex == "male"
    assert Patient.objects.get(study_id="T-002").age_years == 63


def test_confirming_refuses_when_the_registry_changed_since_the_preview(
    client, admin_user, stored, private_upload_dir
):
    client.force_login(admin_user)
    upload(client, [row(), row(study_id="T-002", **CHANGED)])
    preview = client.get(reverse("registry:import_preview"))
    Patient.objects.filter(study_id="T-002").update(age_years=80)
    response = client.post(reverse("registry:import_confirm"), confirmation(preview))
    assert response.status_code == 200
    assert "the registry changed since the preview" in response.content.decode()
    assert response.context["result"].changes[0].fields[1].stored == 80
    assert Patient.objects.get(study_id="T-002").age_years == 80


def test_a_reimport_that_changes_nothing_says_so(client, admin_user, stored, capsys, tmp_path):
    path = write_csv(tmp_path, [row(), row(study_id="T-002")], name="same.csv")
    call_command("import_registry", str(path), "--dry-run")
    assert "Nothing to change: every patient is stored with these values." in (
        capsys.readouterr().out
    )
    client.force_login(admin_user)
    upload(client, [row(), row(study_id="T-002")])
    html = client.get(reverse("registry:import_preview")).content.decode()
    assert "Nothing to change" in html
    assert 'value="confirm"' not in html
