"""Site isolation and role checks of the REST API, for EVERY API URL, role and site.

The same table as ``tests/test_url_access.py`` (its accounts, its world of two sites, its
``expected()``), with what an API answers instead of the sign-in page: a request
without a token answers 401. Each signed-in account calls with a token of its own
(read and write). Every URL under ``api/`` must have an entry in ``API_URLS``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from django.test import Client
from django.urls import get_resolver, reverse
from django.utils import timezone

from registry import access
from registry.api.services import api_token_create
from registry.models import SECTIONS_BY_KEY, Patient

from . import test_url_access
from .test_url_access import (
    ACCOUNTS,
    LOGIN,
    Needs,
    expected,
    leaked,
    needs,
)


@dataclass
class ApiEntry:
    get: Needs | str | None = None
    patch: Needs | str | None = None  # None: the endpoint takes no PATCH
    post: Needs | str | None = None  # None: the endpoint takes no POST
    data: dict = field(default_factory=dict)  # what the POST sends ({account} formatted)
    obj: str | None = None  # "patient" or "freeze": kwargs name one of site A or B
    kwargs: dict = field(default_factory=dict)
    query: str = ""

    def __post_init__(self):
        for name in ("get", "patch", "post"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, needs(getattr(self, name)))


USE_API = access.USE_API
API_URLS: dict[str, ApiEntry] = {
    "api:sites": ApiEntry(get=USE_API),
    "api:patients": ApiEntry(get=USE_API),
    "api:patient": ApiEntry(get=USE_API, obj="patient"),
    "api:section": ApiEntry(
        get=USE_API,
        patch=access.EDIT_CLINICAL,
        obj="patient",
        kwargs={"section_key": "admission"},
    ),
    "api:dictionary": ApiEntry(get=USE_API),
    "api:study_tables": ApiEntry(get=access.VIEW_REPORTS),
    "api:quality_indicators": ApiEntry(get=access.VIEW_QUALITY),
    # Data freezes: a freeze of site A's rows and one of site B's (by name); each account
    # freezes under a name of its own.
    "api:freezes": ApiEntry(
        get=access.FREEZE,
        post=needs(access.FREEZE, 201),
        data={"name": "api-{account}", "reason": "access test"},
    ),
    "api:freeze": ApiEntry(get=access.FREEZE, obj="freeze"),
    "api:freeze_download": ApiEntry(get=access.FREEZE, obj="freeze"),
    "api:freeze_compare": ApiEntry(get=access.FREEZE, obj="freeze", query="?with=live"),
    "api:schema": ApiEntry(get=USE_API),
    # A page for people: without a session or token, the sign-in page (302).
    "api:docs": ApiEntry(get=USE_API),
}
NO_TOKEN = (401,)


def api_url_names() -> set[str]:
    api = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/")
    return {f"api:{pattern.name}" for pattern in api.url_patterns}


@pytest.fixture(autouse=True)
def freeze_cache(tmp_path, settings):
    settings.FREEZE_CACHE_DIR = str(tmp_path / "freeze-cache")


@pytest.fixture
def world(db):
    """The pages' world (tests/test_url_access.py): users of site A, patients of A and B."""
    return test_url_access.world.__wrapped__(db)


def test_every_api_url_has_an_access_entry():
    assert api_url_names() == set(API_URLS)


def _client(account_name: str, world) -> Client:
    client = Client(raise_request_exception=False)
    if ACCOUNTS[account_name].role is not None:
        _, key = api_token_create(
            user=world.users[account_name],
            name="test",
            expires_at=timezone.now() + dt.timedelta(days=1),
        )
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def _unchanged(patient_pk: int, section_key: str) -> dict:
    """A change that changes nothing (the section's version and status as stored)."""
    section = SECTIONS_BY_KEY[section_key].objects.get(patient_id=patient_pk)
    return {"version": section.version, "values": {}, "complete": section.status == "complete"}


SIGN_IN_PAGES = {"api:docs"}


def _api_expected(name: str, need: Needs, account_name: str, site: str) -> tuple[int, ...]:
    found = expected(need, ACCOUNTS[account_name], site)
    if found == LOGIN:
        return (302,) if name in SIGN_IN_PAGES else NO_TOKEN
    return found


@pytest.mark.parametrize("name", sorted(API_URLS))
def test_each_role_gets_from_the_api_what_the_table_says_and_nothing_of_another_site(name, world):
    entry = API_URLS[name]
    for site in ("A", "B") if entry.obj else ("A",):
        kwargs = dict(entry.kwargs)
        if entry.obj == "freeze":
            kwargs["name"] = world.objects[("freeze", site)]
        elif entry.obj:
            kwargs["pk"] = world.objects[(entry.obj, site)]
        url = reverse(name, kwargs=kwargs or None) + entry.query
        for account_name in ACCOUNTS:
            client = _client(account_name, world)
            calls = [("GET", entry.get, None)]
            if entry.patch is not None:
                body = _unchanged(kwargs.get("pk"), kwargs.get("section_key"))
                calls.append(("PATCH", entry.patch, body))
            if entry.post is not None:
                body = {k: v.format(account=account_name) for k, v in entry.data.items()}
                calls.append(("POST", entry.post, body))
            for method, need, body in calls:
                if method == "GET":
                    response = client.get(url)
                elif method == "PATCH":
                    response = client.patch(url, body, "application/json")
                else:
                    response = client.post(url, body, "application/json")
                where = f"{account_name} {method} {url}"
                wanted = _api_expected(name, need, account_name, site)
                assert response.status_code in wanted, f"{where}: {response.status_code}"
                assert "no-store" in response.get("Cache-Control", ""), where
                if access.ALL_SITES not in access.PERMISSIONS.get(
                    ACCOUNTS[account_name].role, frozenset()
                ):
                    assert leaked(response) == [], f"{where} shows site B's data"


def _report_of_freeze_expected(report_need: str, account_name: str, site: str) -> tuple:
    """A report of a freeze needs the report's permission (403), then ``FREEZE`` and a
    freeze of one's sites (404 otherwise: it does not exist for the user)."""
    account = ACCOUNTS[account_name]
    if account.role is None:
        return NO_TOKEN
    held = access.PERMISSIONS[account.role]
    if report_need not in held:
        return (403,)
    if access.FREEZE not in held or (site != "A" and access.ALL_SITES not in held):
        return (404,)
    return (200,)


@pytest.mark.parametrize(
    "name, need",
    [("api:study_tables", access.VIEW_REPORTS), ("api:quality_indicators", access.VIEW_QUALITY)],
)
def test_a_report_of_a_freeze_answers_each_role_as_the_table_says_and_404_for_another_site(
    name, need, world
):
    for site in ("A", "B"):
        url = reverse(name) + f"?freeze={world.objects[('freeze', site)]}"
        for account_name in ACCOUNTS:
            response = _client(account_name, world).get(url)
            where = f"{account_name} GET {url}"
            wanted = _report_of_freeze_expected(need, account_name, site)
            assert response.status_code in wanted, f"{where}: {response.status_code}"
            if response.status_code == 200:
                assert response.json()["freeze"]["name"] == world.objects[("freeze", site)]


def test_the_freeze_list_of_a_site_a_investigator_holds_only_site_a_freezes(world):
    listed = _client("investigator", world).get(reverse("api:freezes")).json()
    assert [freeze["name"] for freeze in listed] == [world.objects[("freeze", "A")]]
    everyone = _client("admin", world).get(reverse("api:freezes")).json()
    assert {freeze["name"] for freeze in everyone} == {
        world.objects[("freeze", "A")],
        world.objects[("freeze", "B")],
    }


def test_a_site_a_nurse_lists_only_site_a_patients(world):
    client = _client("nurse", world)
    listed = client.get(reverse("api:patients")).json()["results"]
    assert {row["site"] for row in listed} == {"A"}
    everyone = _client("admin", world).get(reverse("api:patients")).json()["results"]
    assert {row["site"] for row in everyone} == {"A", "B"}


def test_the_study_tables_of_another_sites_code_answer_404(world):
    client = _client("investigator", world)
    assert client.get(reverse("api:study_tables"), {"site": "B"}).status_code == 404
    assert client.get(reverse("api:quality_indicators"), {"site": "B"}).status_code == 404


def test_the_signed_in_session_reaches_the_api_but_writes_only_with_the_csrf_token(world):
    patient = Patient.objects.get(pk=world.objects[("patient", "A")])
    url = reverse("api:section", kwargs={"pk": patient.pk, "section_key": "admission"})
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["nurse"])
    assert client.get(url).status_code == 200
    body = _unchanged(patient.pk, "admission")
    refused = client.patch(url, body, "application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    client.get(reverse("profile"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.patch(url, body, "application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200


def test_signed_in_without_the_required_two_factor_check_counts_as_no_one(world, settings):
    settings.OTP_REQUIRED_ROLES = ["data_entry"]
    client = Client()
    client.force_login(world.users["nurse"])
    assert client.get(reverse("api:sites")).status_code == 401
