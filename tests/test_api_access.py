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
    obj: bool = False  # kwargs name a patient of site A or B
    kwargs: dict = field(default_factory=dict)
    query: str = ""

    def __post_init__(self):
        for name in ("get", "patch"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, needs(getattr(self, name)))


USE_API = access.USE_API
API_URLS: dict[str, ApiEntry] = {
    "api:sites": ApiEntry(get=USE_API),
    "api:patients": ApiEntry(get=USE_API),
    "api:patient": ApiEntry(get=USE_API, obj=True),
    "api:section": ApiEntry(
        get=USE_API,
        patch=access.EDIT_CLINICAL,
        obj=True,
        kwargs={"section_key": "admission"},
    ),
    "api:dictionary": ApiEntry(get=USE_API),
    "api:study_tables": ApiEntry(get=access.VIEW_REPORTS),
    "api:quality_indicators": ApiEntry(get=access.VIEW_QUALITY),
    "api:schema": ApiEntry(get=USE_API),
    # A page for people: without a session or token, the sign-in page (302).
    "api:docs": ApiEntry(get=USE_API),
}
NO_TOKEN = (401,)


def api_url_names() -> set[str]:
    api = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/")
    return {f"api:{pattern.name}" for pattern in api.url_patterns}


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
        if entry.obj:
            kwargs["pk"] = world.objects[("patient", site)]
        url = reverse(name, kwargs=kwargs or None) + entry.query
        for account_name in ACCOUNTS:
            client = _client(account_name, world)
            calls = [("GET", entry.get, None)]
            if entry.patch is not None:
                body = _unchanged(kwargs.get("pk"), kwargs.get("section_key"))
                calls.append(("PATCH", entry.patch, body))
            for method, need, body in calls:
                if method == "GET":
                    response = client.get(url)
                else:
                    response = client.patch(url, body, "application/json")
                where = f"{account_name} {method} {url}"
                wanted = _api_expected(name, need, account_name, site)
                assert response.status_code in wanted, f"{where}: {response.status_code}"
                assert "no-store" in response.get("Cache-Control", ""), where
                if access.ALL_SITES not in access.PERMISSIONS.get(
                    ACCOUNTS[account_name].role, frozenset()
                ):
                    assert leaked(response) == [], f"{where} shows site B's data"


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
