"""Accounts are deactivated, never deleted once they wrote anything; who changed whose
rights is audited; site administrators manage the accounts of their own sites only."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse

from registry import services
from registry.accounts import services as accounts
from registry.choices import Role
from registry.models import Patient, User

from .factories import SiteFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


@pytest.fixture
def superuser(db):
    return UserFactory(username="root_admin", role=Role.ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def site_admin(site_a):
    return UserFactory(username="siteadmin_a", role=Role.SITE_ADMIN, sites=[site_a])


def register_patient(nurse, site) -> Patient:
    return services.patient_create(
        user=nurse, site=site, study_id="A-0100", sex="female", age_years=70
    )


# --- never deleted --------------------------------------------------------------------


def test_deleting_an_account_that_wrote_history_is_refused_and_the_author_stays(nurse, site_a):
    patient = register_patient(nurse, site_a)
    with pytest.raises(ProtectedError):
        nurse.delete()
    record = Patient.history.get(id=patient.pk)
    assert record.history_user_id == nurse.pk
    assert record.history_user.username == "nurse_a"


def test_the_database_itself_refuses_to_lose_the_author_of_a_history_row(nurse, site_a):
    register_patient(nurse, site_a)
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:  # past the ORM, as a console would
            cursor.execute("DELETE FROM registry_user_sites WHERE user_id = %s", [nurse.pk])
            cursor.execute("DELETE FROM registry_user WHERE id = %s", [nurse.pk])
        connection.check_constraints(table_names=["registry_historicalpatient"])
    assert User.objects.filter(pk=nurse.pk).exists()


def test_an_account_named_only_by_the_admin_log_is_not_deleted_either(nurse, superuser):
    LogEntry.objects.create(
        user=nurse,
        content_type=ContentType.objects.get_for_model(User),
        object_id=str(superuser.pk),
        object_repr="x",
        action_flag=CHANGE,
    )
    assert nurse.has_written()
    with pytest.raises(ProtectedError), transaction.atomic():
        User.objects.filter(pk=nurse.pk).delete()
    assert LogEntry.objects.filter(user=nurse).exists()


def test_the_admin_delete_page_refuses_and_deactivates_instead(client, superuser, nurse, site_a):
    register_patient(nurse, site_a)
    client.force_login(superuser)
    delete_url = reverse("admin:registry_user_delete", args=[nurse.pk])
    page = client.get(delete_url)
    assert page.status_code == 200
    assert "Deactivate the account" in page.content.decode()
    client.post(delete_url, {"post": "yes"})
    assert User.objects.filter(pk=nurse.pk).exists()

    url = reverse("admin:registry_user_deactivate", args=[nurse.pk])
    client.post(url, {"reason": "left the hospital"})
    nurse.refresh_from_db()
    assert not nurse.is_active
    latest = User.history.filter(id=nurse.pk).first()
    assert latest.history_change_reason == "deactivated: left the hospital"
    assert latest.history_user == superuser


def test_an_account_that_never_wrote_anything_can_be_deleted_in_the_admin(client, superuser):
    mistake = UserFactory(username="typo_account")
    client.force_login(superuser)
    url = reverse("admin:registry_user_delete", args=[mistake.pk])
    assert "Are you sure" in client.get(url).content.decode()
    client.post(url, {"post": "yes"})
    assert not User.objects.filter(pk=mistake.pk).exists()


def test_the_admin_list_offers_deactivation_not_bulk_deletion(client, superuser, nurse):
    client.force_login(superuser)
    page = client.get(reverse("admin:registry_user_changelist")).content.decode()
    assert "deactivate_selected" in page
    assert "delete_selected" not in page
    client.post(
        reverse("admin:registry_user_changelist"),
        {"action": "deactivate_selected", "_selected_action": [nurse.pk]},
    )
    nurse.refresh_from_db()
    assert not nurse.is_active


# --- the audit of rights ------------------------------------------------------------------


def test_a_role_and_site_change_in_the_admin_is_audited_from_what_to_what(
    client, superuser, nurse, site_a, site_b
):
    client.force_login(superuser)
    url = reverse("admin:registry_user_change", args=[nurse.pk])
    form = client.get(url).context["adminform"].form
    data = {
        key: value
        for key, value in form.initial.items()
        if value is not None and key not in ("password", "groups", "user_permissions")
    }
    data |= {"role": Role.INVESTIGATOR, "sites": [site_a.pk, site_b.pk], "is_active": "on"}
    data["date_joined_0"], data["date_joined_1"] = "2020-01-01", "08:00:00"
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors

    changes = accounts.account_changes(User.objects.filter(pk=nurse.pk))
    described = [(entry.who, change) for entry in changes for change in entry.changes]
    assert ("root_admin", ("Role", "Data entry (study nurse)", "Investigator")) in described
    assert ("root_admin", ("Sites", "A", "A, B")) in described


def test_a_membership_changed_from_the_site_side_is_recorded_on_the_user(nurse, site_a, site_b):
    site_b.users.add(nurse)
    site_b.users.remove(nurse)
    site_a.users.clear()
    entries = accounts.account_changes(User.objects.filter(pk=nurse.pk))
    changes = [change for entry in entries for change in entry.changes]
    assert ("Sites", "A", "A, B") in changes
    assert ("Sites", "A, B", "A") in changes
    assert ("Sites", "A", "") in changes


def test_signing_in_writes_no_history_and_no_password_hash_is_ever_kept(nurse):
    before = User.history.filter(id=nurse.pk).count()
    assert Client().login(username="nurse_a", password=PASSWORD)
    assert User.history.filter(id=nurse.pk).count() == before
    tracked = {f.name for f in User.history.model._meta.fields}
    assert "password" not in tracked and "last_login" not in tracked


def test_the_admin_shows_and_downloads_every_account_change(client, superuser, nurse):
    accounts.account_deactivate(by=superuser, account=nurse, reason="=cmd|' /C calc'!A0")
    client.force_login(superuser)
    page = client.get(reverse("admin:registry_user_audit")).content.decode()
    assert "nurse_a" in page and "deactivated" in page
    download = client.get(reverse("admin:registry_user_audit") + "?format=csv")
    lines = download.content.decode().splitlines()
    assert lines[0] == "when,who,account,action,changes,reason"
    row = next(line for line in lines if "deactivated" in line)
    assert "root_admin,nurse_a,Changed" in row
    assert "Active: Yes → No" in row
    assert "'=cmd" not in row  # the reason's text is one cell, not a formula
    history = client.get(reverse("admin:registry_user_history", args=[nurse.pk]))
    assert history.status_code == 200


# --- site administrators ----------------------------------------------------------------


def test_a_site_admin_creates_a_nurse_in_their_own_site_and_no_other(
    client, site_admin, site_a, site_b
):
    client.force_login(site_admin)
    data = {
        "username": "new_nurse",
        "role": Role.DATA_ENTRY,
        "password1": "a-long-Passphrase-9",
        "password2": "a-long-Passphrase-9",
    }
    response = client.post(reverse("registry:account_create"), data | {"sites": [site_b.pk]})
    assert response.status_code == 200
    assert "sites" in response.context["form"].errors
    assert not User.objects.filter(username="new_nurse").exists()
    client.post(reverse("registry:account_create"), data | {"sites": [site_a.pk]})
    created = User.objects.get(username="new_nurse")
    assert list(created.sites.all()) == [site_a]
    assert created.check_password("a-long-Passphrase-9")
    assert User.history.filter(id=created.pk).first().history_user == site_admin


def test_a_site_admin_gives_no_registry_admin_role_and_leaves_other_sites_accounts_alone(
    client, site_admin, site_a, site_b
):
    assert Role.ADMIN not in accounts.access.roles_grantable_by(site_admin)
    two_sites = UserFactory(username="monitor_ab", role=Role.MONITOR, sites=[site_a, site_b])
    client.force_login(site_admin)
    assert client.get(reverse("registry:account_edit", args=[two_sites.pk])).status_code == 403
    response = client.post(
        reverse("registry:account_active", args=[two_sites.pk]),
        {"action": "deactivate", "reason": "x"},
    )
    assert response.status_code == 403
    two_sites.refresh_from_db()
    assert two_sites.is_active
    listing = client.get(reverse("registry:account_list")).content.decode()
    assert "monitor_ab" in listing  # listed (a member of their site), not changeable


def test_a_deactivated_nurse_is_signed_out_and_cannot_sign_in_again(client, site_admin, nurse):
    nurse_client = Client()
    nurse_client.force_login(nurse)
    assert nurse_client.get(reverse("registry:patient_list")).status_code == 200
    client.force_login(site_admin)
    client.post(
        reverse("registry:account_active", args=[nurse.pk]),
        {"action": "deactivate", "reason": "left the hospital"},
    )
    response = nurse_client.get(reverse("registry:patient_list"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert not Client().login(username="nurse_a", password=PASSWORD)


def test_a_site_admin_cannot_deactivate_themselves_nor_change_their_own_role(
    client, site_admin, site_a
):
    with pytest.raises(accounts.ValidationError):
        accounts.account_deactivate(by=site_admin, account=site_admin, reason="oops")
    client.force_login(site_admin)
    client.post(
        reverse("registry:account_edit", args=[site_admin.pk]),
        {"role": Role.ADMIN, "sites": [site_a.pk], "first_name": "Lan"},
    )
    site_admin.refresh_from_db()
    assert site_admin.role == Role.SITE_ADMIN and site_admin.first_name == "Lan"


def test_a_site_admin_sets_a_new_password_for_a_nurse_who_forgot_hers(client, site_admin, nurse):
    client.force_login(site_admin)
    url = reverse("registry:account_password", args=[nurse.pk])
    new = "another-Passphrase-7"
    client.post(url, {"new_password1": new, "new_password2": new})
    nurse.refresh_from_db()
    assert nurse.check_password(new)
    reason = User.history.filter(id=nurse.pk).first().history_change_reason
    assert reason == "password set by siteadmin_a"


def test_the_django_admin_is_the_registry_administrators_only(client, site_a):
    staff_site_admin = UserFactory(role=Role.SITE_ADMIN, is_staff=True, sites=[site_a])
    client.force_login(staff_site_admin)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "login" in response.url


def test_a_site_admin_reads_the_account_changes_of_their_sites_only(
    client, site_admin, site_a, site_b, superuser
):
    UserFactory(username="nurse_of_b", sites=[site_b])
    moved = UserFactory(username="moved_nurse", sites=[site_a])
    moved.sites.set([site_b])  # once of site A: its history stays readable there
    client.force_login(site_admin)
    page = client.get(reverse("registry:account_audit")).content.decode()
    assert "moved_nurse" in page
    assert "nurse_of_b" not in page
    csv_text = client.get(reverse("registry:account_audit") + "?format=csv").content.decode()
    assert "moved_nurse" in csv_text and "nurse_of_b" not in csv_text


# --- one's own password -----------------------------------------------------------------


def test_a_nurse_changes_her_own_password_and_the_history_says_so_without_the_hash(client, nurse):
    client.force_login(nurse)
    page = client.get(reverse("password_change"))
    assert page.status_code == 200 and "Change your password" in page.content.decode()
    new = "ward-seven-Night-shift"
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302 and response.url == reverse("password_change_done")
    assert client.get(reverse("registry:patient_list")).status_code == 200  # still signed in
    assert Client().login(username="nurse_a", password=new)
    latest = User.history.filter(id=nurse.pk).first()
    assert latest.history_change_reason == "password changed by its owner"
    assert latest.history_user == nurse


def test_every_page_links_to_the_password_change(client, nurse):
    client.force_login(nurse)
    page = client.get(reverse("registry:patient_list")).content.decode()
    assert reverse("password_change") in page


def test_a_second_site_does_not_count_for_the_site_admin_until_given(site_admin):
    other = SiteFactory(code="C")
    assert other.pk not in set(accounts.access.sites_for(site_admin).values_list("pk", flat=True))
