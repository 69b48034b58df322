"""Site isolation and role checks, proven for EVERY URL of the project.

Every URL pattern (``get_resolver()``, recursively; only ``admin/`` is left to Django's
own staff checks) must have an entry in ``URLS`` below, or the test fails: a new page
cannot ship without saying who may open it. An entry names what each request needs: a
permission of ``registry.access``, ``SIGNED_IN`` or ``PUBLIC``. For each entry and each
account (anonymous, then one signed-in user per role of ``access.PERMISSIONS``, plus a
superuser) the page is requested (GET, and POST where the page takes one) with an object
of site A and one of site B, and the status each account must get is worked out from the
table:

- anonymous users are sent to the login page (unless the page is public);
- another site's object answers 404 (never 403, which would confirm it exists) to anyone
  without ``access.ALL_SITES``;
- a role without the permission gets 403; with it, what the page answers (``needs()``);
- no response to a site-A user names a site-B patient, screening entry or query.

A new role is one account in ``ACCOUNTS``; the entries stay as they are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple

import pytest
from django.core.paginator import Page
from django.db.models import QuerySet
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from registry import access
from registry.choices import Role
from registry.models import DataQuery, Patient, ScreeningEntry

from .factories import SiteFactory, UserFactory, full_patient


@dataclass(frozen=True)
class Account:
    """Who requests: the role whose row of ``access.PERMISSIONS`` must apply (None: not
    signed in), and any other fields of the user."""

    role: Role | None
    user: dict = field(default_factory=dict)


ACCOUNTS: dict[str, Account] = {
    "anonymous": Account(None),
    "nurse": Account(Role.DATA_ENTRY),
    "investigator": Account(Role.INVESTIGATOR),
    "monitor": Account(Role.MONITOR),
    "site_admin": Account(Role.SITE_ADMIN),
    "admin": Account(Role.ADMIN),
    # A superuser counts as a registry admin, whatever role the account carries.
    "superuser": Account(Role.ADMIN, user={"role": Role.DATA_ENTRY, "is_superuser": True}),
}
# What must never reach a user of site A (site B's identifiers and free text).
SITE_MODELS = (Patient, ScreeningEntry, DataQuery)
B_SECRETS = (
    "BSECRET-01",
    "BSECRET-02",
    "BSECRET-03",
    "BSCREEN-77",
    "BQUERY-TEXT",
    "bsecret_user",
)

SIGNED_IN = "signed in"  # any signed-in user, whatever the role
PUBLIC = "public"  # anyone, signed in or not (the login page)


class Needs(NamedTuple):
    """What a request needs, and the statuses it answers to those who have it."""

    what: str  # a permission of registry.access, SIGNED_IN or PUBLIC
    answers: tuple[int, ...]


def needs(what: str, *answers: int) -> Needs:
    """``needs(access.IMPORT, 302)``: what a request needs, and the statuses those who
    have it may get (default 200; several: any of them, e.g. a form that re-renders or
    redirects)."""
    return Needs(what, answers or (200,))


@dataclass
class Entry:
    """How to build a URL's kwargs, and what its GET and POST need."""

    get: Needs | str
    post: Needs | str | None = None  # None: the page takes no POST (not requested)
    # "patient", "screening", "query", "account" (a nurse's), "freeze" (by name): kwargs
    # name a site's object
    obj: str | None = None
    kwargs: dict = field(default_factory=dict)
    query: str = ""
    data: dict = field(default_factory=dict)  # what the POST sends (e.g. which action)

    def __post_init__(self):
        if isinstance(self.get, str):
            self.get = needs(self.get)
        if isinstance(self.post, str):
            self.post = needs(self.post)


URLS: dict[str, Entry] = {
    "login": Entry(get=PUBLIC),
    # The language switcher: a POST only, for the login page too (then the cookie only).
    "language_set": Entry(get=needs(PUBLIC, 405), post=needs(PUBLIC, 302), data={"language": "vi"}),
    "profile": Entry(get=SIGNED_IN, post=needs(SIGNED_IN, 302), data={"language": "en"}),
    # One's own API tokens: a new one is shown on the profile page (200); another
    # user's token, as one that does not exist, answers 404.
    "api_token_create": Entry(
        get=needs(SIGNED_IN, 405),
        post=access.USE_API,
        data={
            "name": "script",
            "expires_on": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
            "read_only": "on",
        },
    ),
    "api_token_revoke": Entry(
        get=needs(SIGNED_IN, 405), post=needs(SIGNED_IN, 404), kwargs={"pk": 999999}
    ),
    "logout": Entry(get=needs(SIGNED_IN, 405), post=needs(SIGNED_IN, 302)),
    # The sign-in page that says the session ended (a signed-in user sees it too).
    "session_expired": Entry(get=PUBLIC),
    "keep_alive": Entry(get=needs(SIGNED_IN, 405), post=SIGNED_IN),
    "two_factor_setup": Entry(get=SIGNED_IN, post=SIGNED_IN),
    "two_factor_verify": Entry(get=needs(SIGNED_IN, 302), post=needs(SIGNED_IN, 302)),
    "registry:home": Entry(get=needs(SIGNED_IN, 302)),
    "registry:patient_list": Entry(get=SIGNED_IN),
    "registry:patient_create": Entry(get=access.EDIT_CLINICAL, post=access.EDIT_CLINICAL),
    "registry:patient_detail": Entry(get=SIGNED_IN, obj="patient"),
    "registry:patient_history": Entry(get=SIGNED_IN, obj="patient"),
    "registry:patient_print": Entry(get=SIGNED_IN, obj="patient"),
    "registry:blank_crf": Entry(get=SIGNED_IN),
    "registry:section_edit": Entry(
        get=access.EDIT_CLINICAL,
        post=access.EDIT_CLINICAL,
        obj="patient",
        kwargs={"section_key": "admission"},
    ),
    "registry:screening_list": Entry(get=SIGNED_IN),
    "registry:screening_create": Entry(get=access.EDIT_CLINICAL, post=access.EDIT_CLINICAL),
    "registry:screening_enrol": Entry(
        get=access.EDIT_CLINICAL, post=access.EDIT_CLINICAL, obj="screening"
    ),
    "registry:followup_worklist": Entry(get=SIGNED_IN),
    "registry:patient_calls": Entry(
        get=SIGNED_IN,
        post=needs(access.EDIT_CLINICAL, 302),
        obj="patient",
        # A valid attempt: the role check cannot hide behind a form error.
        data={
            "action": "attempt",
            "attempt-attempt_date": "2020-08-01",
            "attempt-outcome": "no_answer",
            # Every account logs the same attempt: the repeat is confirmed.
            "attempt-confirm_repeat": "on",
        },
    ),
    "registry:mrs_interview": Entry(
        get=access.EDIT_CLINICAL, post=access.EDIT_CLINICAL, obj="patient"
    ),
    "registry:query_create": Entry(get=access.RAISE_QUERY, post=access.RAISE_QUERY, obj="patient"),
    "registry:patient_lock": Entry(
        get=SIGNED_IN,
        post=access.LOCK,
        obj="patient",
        # An explicit action without a signature: the form comes back (200).
        data={"action": "lock", "reason": "SDV"},
    ),
    "registry:query_list": Entry(get=SIGNED_IN),
    "registry:query_detail": Entry(
        get=SIGNED_IN,
        post=needs(access.ANSWER_QUERY, 200, 302),
        obj="query",
        data={"action": "answer", "text": "checked against the source"},
    ),
    "registry:data_checks": Entry(get=SIGNED_IN),
    "flow:chart": Entry(get=access.VIEW_REPORTS),
    "flow:svg": Entry(get=access.VIEW_REPORTS),
    "flow:png": Entry(get=access.VIEW_REPORTS),
    "registry:interchange": Entry(get=SIGNED_IN),
    "registry:import_upload": Entry(get=access.IMPORT, post=access.IMPORT),
    # Nothing uploaded yet: back to the upload form.
    "registry:import_preview": Entry(get=needs(access.IMPORT, 302)),
    "registry:import_confirm": Entry(get=needs(SIGNED_IN, 405), post=needs(access.IMPORT, 302)),
    # Nothing uploaded yet: back to the upload form.
    "registry:import_diff": Entry(get=needs(access.IMPORT, 302)),
    "registry:export": Entry(get=access.EXPORT, post=access.EXPORT),
    "registry:data_dictionary": Entry(get=SIGNED_IN),
    "registry:export_log": Entry(get=access.AUDIT),
    "password_change": Entry(get=SIGNED_IN, post=SIGNED_IN),
    "password_change_done": Entry(get=SIGNED_IN),
    "registry:account_list": Entry(get=access.MANAGE_USERS),
    "registry:account_create": Entry(get=access.MANAGE_USERS, post=access.MANAGE_USERS),
    "registry:account_audit": Entry(get=access.AUDIT),
    "registry:account_edit": Entry(
        get=access.MANAGE_USERS, post=access.MANAGE_USERS, obj="account"
    ),
    # Without a reason nothing changes: back to the account's page with the message.
    "registry:account_active": Entry(
        get=needs(access.MANAGE_USERS, 302),
        post=needs(access.MANAGE_USERS, 302),
        obj="account",
        data={"action": "deactivate", "reason": ""},
    ),
    "registry:account_password": Entry(
        get=access.MANAGE_USERS, post=access.MANAGE_USERS, obj="account"
    ),
    "analytics:report": Entry(get=access.VIEW_REPORTS),
    # Data freezes: a freeze of site A's rows and one of site B's ("freeze" objects).
    "registry:freeze_list": Entry(get=access.FREEZE, post=access.FREEZE),
    "registry:freeze_detail": Entry(get=access.FREEZE, obj="freeze"),
    "registry:freeze_download": Entry(get=access.FREEZE, obj="freeze"),
    # Without a reason nothing is deleted: the form comes back.
    "registry:freeze_delete": Entry(
        get=access.DELETE_FREEZE, post=access.DELETE_FREEZE, obj="freeze", data={"reason": ""}
    ),
    "analytics:patients": Entry(get=access.VIEW_REPORTS, query="?cell={cell}"),
    "quality:page": Entry(get=access.VIEW_QUALITY),
    "quality:patients": Entry(get=access.VIEW_QUALITY, query="?code=sich&part=denominator"),
    "quality:download": Entry(get=access.VIEW_QUALITY, kwargs={"fmt": "csv"}),
    "quality:figure": Entry(get=access.VIEW_QUALITY, kwargs={"name": "funnel-sich", "fmt": "svg"}),
    "analytics:published": Entry(get=access.VIEW_REPORTS),
    "analytics:download": Entry(get=access.VIEW_REPORTS, kwargs={"table": "table1", "fmt": "csv"}),
    "analytics:figure": Entry(get=access.VIEW_REPORTS, kwargs={"name": "mrs", "fmt": "svg"}),
    "analytics:shift_figure": Entry(
        get=access.VIEW_REPORTS, kwargs={"key": "age_70_plus", "fmt": "svg"}
    ),
}

LOGIN = "login"  # expected: the redirect to the login page


def held(account: Account) -> frozenset[str]:
    return access.PERMISSIONS[account.role] if account.role is not None else frozenset()


def expected(need: Needs, account: Account, site: str) -> tuple[int, ...] | str:
    """What ``account`` must get for a request that needs ``need``, on an object of ``site``
    (the signed-in users belong to site A), worked out from ``access.PERMISSIONS``."""
    if account.role is None:
        return need.answers if need.what == PUBLIC else LOGIN
    if site != "A" and access.ALL_SITES not in held(account):
        return (404,)  # another site's object does not exist for this user, whatever the role
    if need.what in (SIGNED_IN, PUBLIC) or need.what in held(account):
        return need.answers
    return (403,)


def url_names(resolver=None, namespace=None, prefix=""):
    """(name, route) of every URL pattern, recursively, except the admin site's and the
    API's (``api/``: token-authenticated, walked by ``tests/test_api_access.py``)."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if route.startswith(("admin/", "api/")):
                continue
            inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
            yield from url_names(pattern, inner, route)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield name or f"<unnamed {route}>", route


ALL_URLS = sorted(set(url_names()))


def test_every_url_pattern_of_the_project_has_an_access_entry():
    missing = [f"{name} ({route})" for name, route in ALL_URLS if name not in URLS]
    assert missing == [], "add these URLs to URLS in tests/test_url_access.py"
    stale = sorted(set(URLS) - {name for name, _ in ALL_URLS})
    assert stale == [], "these URLS entries name no URL any more"


@dataclass
class World:
    users: dict
    objects: dict  # ("patient", "A") -> pk
    cell: str


@pytest.fixture
def world(db) -> World:
    from registry.models import QueryMessage

    site_a = SiteFactory(code="A", name="Site A")
    site_b = SiteFactory(code="B", name="Site B")
    # Each user of site A, except those who read every site: they belong to none.
    users = {
        name: UserFactory(
            username=f"{name}_a",
            sites=[] if access.ALL_SITES in held(account) else [site_a],
            **({"role": account.role} | account.user),
        )
        for name, account in ACCOUNTS.items()
        if account.role is not None
    }
    patient_a = full_patient(study_id="A-0001", site=site_a)
    full_patient(study_id="A-0002", site=site_a, age_years=75)
    patient_b = full_patient(study_id="BSECRET-01", site=site_b)
    full_patient(study_id="BSECRET-02", site=site_b, age_years=80, sex="female")
    full_patient(study_id="BSECRET-03", site=site_b, age_years=55)
    objects = {("patient", "A"): patient_a.pk, ("patient", "B"): patient_b.pk}
    for code, site, number in (("A", site_a, "A-SCREEN-1"), ("B", site_b, "BSCREEN-77")):
        entry = ScreeningEntry.objects.create(
            site=site, screening_date=dt.date(2020, 6, 1), screening_number=number, eligible=True
        )
        objects[("screening", code)] = entry.pk
    for code, patient, text in (("A", patient_a, "query on A"), ("B", patient_b, "BQUERY-TEXT")):
        query = DataQuery.objects.create(
            patient=patient, field="nihss_admission", raised_by=users["admin"]
        )
        QueryMessage.objects.create(query=query, author=users["admin"], action="raise", text=text)
        objects[("query", code)] = query.pk
    for code, site, name in (("A", site_a, "target_a"), ("B", site_b, "bsecret_user")):
        objects[("account", code)] = UserFactory(username=name, sites=[site]).pk
    from registry.freezes import freeze_create

    for code, site, name in (("A", site_a, "afreeze-1"), ("B", site_b, "bfreeze-77")):
        objects[("freeze", code)] = freeze_create(
            name=name, reason="test", user=None, site=site
        ).name
    from analytics import cells

    cell = next(iter(cells.cells("table1")))
    return World(users=users, objects=objects, cell=cell)


def url_for(name: str, entry: Entry, world: World, site: str) -> str:
    kwargs = dict(entry.kwargs)
    if entry.obj == "freeze":
        kwargs["name"] = world.objects[(entry.obj, site)]
    elif entry.obj:
        kwargs["pk"] = world.objects[(entry.obj, site)]
    return reverse(name, kwargs=kwargs or None) + entry.query.format(cell=world.cell)


def client_for(name: str, world: World) -> Client:
    client = Client(raise_request_exception=False)
    if ACCOUNTS[name].role is not None:
        client.force_login(world.users[name])
    return client


def leaked(response) -> list[str]:
    if response.streaming:
        body = b"".join(response.streaming_content)
    else:
        body = response.content
    text = body.decode("utf-8", "replace")
    return [secret for secret in B_SECRETS if secret in text]


def site_of(obj) -> str | None:
    """The site code of a registry record (patient, screening entry, query), else None."""
    for path in ("site", "patient.site", "query.patient.site"):
        target = obj
        for attr in path.split("."):
            target = getattr(target, attr, None)
        if target is not None and hasattr(target, "code"):
            return target.code
    if isinstance(obj, dict):
        return obj.get("site__code") or obj.get("patient__site__code")
    return None


def other_site_records(response) -> list:
    """Records of site B in the template context (what a page could list or count)."""
    found = []
    # A ContextList of Contexts, or one Context (whose items are its dicts).
    contexts = response.context or []
    dicts = [d for c in contexts for d in (c.dicts if hasattr(c, "dicts") else [c])]
    for values in dicts:
        for value in values.values():
            if isinstance(value, Page):
                value = value.object_list
            if isinstance(value, QuerySet) and value.model in SITE_MODELS:
                value = list(value[:500])
            if isinstance(value, list | tuple):
                found += [item for item in value if site_of(item) == "B"]
            elif site_of(value) == "B":
                found.append(value)
    return found


def check(name, method, url, expected: tuple[int, ...] | str, world: World, data=None):
    client = client_for(name, world)
    response = client.get(url) if method == "GET" else client.post(url, data or {})
    where = f"{name} {method} {url}"
    if expected == LOGIN:
        assert response.status_code == 302, where
        assert response["Location"].startswith(reverse("login")), where
        return
    assert response.status_code in expected, f"{where}: {response.status_code}, not {expected}"
    assert "no-store" in response.get("Cache-Control", ""), f"{where} may be cached"
    if access.ALL_SITES not in held(ACCOUNTS[name]):
        assert leaked(response) == [], f"{where} shows site B's data"
        assert other_site_records(response) == [], f"{where} lists or counts site B's records"


@pytest.mark.parametrize("name", sorted(URLS))
def test_each_role_gets_what_the_table_says_and_nothing_of_another_site(name, world):
    entry = URLS[name]
    sites = ("A", "B") if entry.obj else ("A",)
    for site in sites:
        url = url_for(name, entry, world, site)
        for method, need in (("GET", entry.get), ("POST", entry.post)):
            if need is None:
                continue
            for account_name, account in ACCOUNTS.items():
                check(
                    account_name,
                    method,
                    url,
                    expected(need, account, site),
                    world,
                    entry.data,
                )


def test_every_role_of_the_table_is_walked_and_every_entry_names_a_known_permission():
    assert set(access.PERMISSIONS) == set(Role), "each role needs its row in access.PERMISSIONS"
    walked = {account.role for account in ACCOUNTS.values()}
    assert set(Role) <= walked, "add an account of the new role to ACCOUNTS"
    known = access.ALL_PERMISSIONS | {SIGNED_IN, PUBLIC}
    for name, entry in URLS.items():
        for need in (entry.get, entry.post):
            assert need is None or need.what in known, f"{name}: {need.what!r}"


def test_the_checks_do_see_another_sites_records_when_a_page_shows_them(world):
    """The detectors are not blind: the admin's patient list does show site B."""
    response = client_for("admin", world).get(reverse("registry:patient_list"))
    assert other_site_records(response)
    assert leaked(response)
