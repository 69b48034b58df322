"""The site administrator: the users and the data of their own sites, nothing of another
site's; the registry administrator (the code "admin") keeps every site."""

import csv
import io

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from registry import access
from registry.choices import Role
from registry.interchange.exporter import registry_export
from registry.interchange.importer import registry_import
from registry.models import ExportLog, Patient

from .factories import UserFactory, full_patient
from .interchange_rows import row, write_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_sites(site_a, site_b):
    full_patient(study_id="A-0001", site=site_a)
    full_patient(study_id="B-0001", site=site_b)
    full_patient(study_id="B-0002", site=site_b)


@pytest.fixture
def site_admin_a(site_a):
    return UserFactory(username="siteadmin_a", role=Role.SITE_ADMIN, sites=[site_a])


def study_ids(content: bytes) -> list[str]:
    return [r["study_id"] for r in csv.DictReader(io.StringIO(content.decode()))]


def test_a_site_administrator_opens_no_patient_of_another_site(client, two_sites, site_admin_a):
    client.force_login(site_admin_a)
    other = Patient.objects.get(study_id="B-0001")
    assert client.get(reverse("registry:patient_detail", args=[other.pk])).status_code == 404
    listing = client.get(reverse("registry:patient_list")).content.decode()
    assert "A-0001" in listing and "B-0001" not in listing


def test_the_identifiable_export_of_a_site_administrator_holds_their_site_only(
    two_sites, site_admin_a, site_a, site_b
):
    result = registry_export(user=site_admin_a, fmt="csv", deidentified=False)
    assert study_ids(result.content) == ["A-0001"]
    log = ExportLog.objects.get()
    assert log.identifiable and list(log.sites.all()) == [site_a]
    with pytest.raises(PermissionDenied):
        registry_export(user=site_admin_a, fmt="csv", site=site_b, deidentified=False)


def test_the_registry_administrator_reads_every_site_whatever_sites_the_account_lists(
    two_sites, site_a
):
    registry_admin = UserFactory(role=Role.ADMIN, sites=[site_a])
    content = registry_export(user=registry_admin, fmt="csv", deidentified=False).content
    assert study_ids(content) == ["A-0001", "B-0001", "B-0002"]


def test_a_site_administrator_imports_into_their_own_site_only(two_sites, site_admin_a, tmp_path):
    rows = [row(study_id="A-0002", site="A"), row(study_id="B-0009", site="B")]
    rows.append(row(study_id="B-0001", site="A", age_years=70))  # another site's patient
    result = registry_import(file=write_csv(tmp_path, rows), user=site_admin_a, filename="p.csv")
    messages = [str(problem) for problem in result.problems]
    assert "row 2, column site: 'B' is not one of your sites (A)." in messages
    assert (
        "row 3, column study_id: B-0001 is the study ID of a patient of a site that is not yours."
        in messages
    )
    assert not Patient.objects.filter(study_id__in=["A-0002", "B-0009"]).exists()
    assert Patient.objects.get(study_id="B-0001").site.code == "B"


def test_a_site_administrator_creates_no_site(site_admin_a, tmp_path, client):
    path = write_csv(tmp_path, [row(site="NEW")])
    result = registry_import(file=path, user=site_admin_a, filename="p.csv", create_sites=True)
    assert [str(p) for p in result.problems] == [
        "row 1, column site: 'NEW' is not one of your sites (A)."
    ]
    client.force_login(site_admin_a)
    form = client.get(reverse("registry:import_upload")).context["form"]
    assert "create_sites" not in form.fields


def test_the_role_table_gives_the_site_administrator_everything_but_all_sites_and_the_admin():
    held = access.PERMISSIONS[Role.SITE_ADMIN]
    assert access.ALL_SITES not in held and access.ADMINISTER not in held
    assert {access.MANAGE_USERS, access.AUDIT, access.EXPORT_IDENTIFIABLE} <= held
    assert access.PERMISSIONS[Role.ADMIN] == access.ALL_PERMISSIONS
