"""Site isolation and role checks, proven for EVERY URL of the project.

Every URL pattern (``get_resolver()``, recursively; only ``admin/`` is left to Django's
own staff checks) must have an entry in ``URLS`` below, or the test fails: a new page
cannot ship without saying who may open it. For each entry and each role (anonymous,
nurse / investigator / monitor of site A, registry admin) the page is requested (GET,
and POST where the page takes one) with an object of site A and one of site B:

- anonymous users are sent to the login page;
- another site's object answers 404 (never 403, which would confirm it exists);
- a forbidden action answers 403;
- no response to a site-A user names a site-B patient, screening entry or query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from django.core.paginator import Page
from django.db.models import QuerySet
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from registry.choices import Role
from registry.models import DataQuery, Patient, ScreeningEntry

from .factories import SiteFactory, UserFactory, full_patient

ROLES = ("anonymous", "nurse", "investigator", "monitor", "admin")
SIGNED_IN = ROLES[1:]
# What must never reach a user of site A (site B's identifiers and free text).
SITE_MODELS = (Patient, ScreeningEntry, DataQuery)
B_SECRETS = ("BSECRET-01", "BSECRET-02", "BSECRET-03", "BSCREEN-77", "BQUERY-TEXT")


def codes(spec: str) -> dict[str, tuple[int, ...]]:
    """``"200 403 403 200"`` → acceptable statuses for nurse, investigator, monitor, admin.

    ``200|302`` accepts either (e.g. a form that re-renders or redirects).
    """
    parts = spec.split()
    assert len(parts) == 4, spec
    return {
        role: tuple(int(c) for c in part.split("|"))
        for role, part in zip(SIGNED_IN, parts, strict=True)
    }


@dataclass
class Entry:
    """How to build a URL's kwargs, and what each signed-in role must get."""

    get: str
    post: str | None = None  # None: the page takes no POST (not requested)
    obj: str | None = None  # "patient", "screening", "query": kwargs name a site's object
    kwargs: dict = field(default_factory=dict)
    query: str = ""
    public: bool = False  # open to anonymous users (the login page)
    data: dict = field(default_factory=dict)  # what the POST sends (e.g. which action)


ANY_SIGNED_IN = "200 200 200 200"
EDITORS = "200 403 403 200"
REPORTERS = "403 200 200 200"
EXPORTERS = "403 200 403 200"
ADMIN_ONLY = "403 403 403 200"
FORM = "200|302"

URLS: dict[str, Entry] = {
    "login": Entry(get=ANY_SIGNED_IN, public=True),
    "logout": Entry(get="405 405 405 405", post="302 302 302 302"),
    "two_factor_setup": Entry(get=ANY_SIGNED_IN, post=ANY_SIGNED_IN),
    "two_factor_verify": Entry(get="302 302 302 302", post="302 302 302 302"),
    "registry:home": Entry(get="302 302 302 302"),
    "registry:patient_list": Entry(get=ANY_SIGNED_IN),
    "registry:patient_create": Entry(get=EDITORS, post=EDITORS),
    "registry:patient_detail": Entry(get=ANY_SIGNED_IN, obj="patient"),
    "registry:patient_history": Entry(get=ANY_SIGNED_IN, obj="patient"),
    "registry:section_edit": Entry(
        get=EDITORS, post=EDITORS, obj="patient", kwargs={"section_key": "admission"}
    ),
    "registry:screening_list": Entry(get=ANY_SIGNED_IN),
    "registry:screening_create": Entry(get=EDITORS, post=EDITORS),
    "registry:screening_enrol": Entry(get=EDITORS, post=EDITORS, obj="screening"),
    "registry:followup_worklist": Entry(get=ANY_SIGNED_IN),
    "registry:patient_calls": Entry(
        get=ANY_SIGNED_IN,
        post="302 403 403 302",
        obj="patient",
        # A valid attempt: the role check cannot hide behind a form error.
        data={
            "action": "attempt",
            "attempt-attempt_date": "2020-08-01",
            "attempt-outcome": "no_answer",
        },
    ),
    "registry:mrs_interview": Entry(get=EDITORS, post=EDITORS, obj="patient"),
    "registry:query_create": Entry(get=REPORTERS, post=REPORTERS, obj="patient"),
    "registry:patient_lock": Entry(get=ANY_SIGNED_IN, post=REPORTERS, obj="patient"),
    "registry:query_list": Entry(get=ANY_SIGNED_IN),
    "registry:query_detail": Entry(
        get=ANY_SIGNED_IN,
        post="200|302 403 403 200|302",
        obj="query",
        data={"action": "answer", "text": "checked against the source"},
    ),
    "registry:data_checks": Entry(get=ANY_SIGNED_IN),
    "flow:chart": Entry(get=REPORTERS),
    "flow:svg": Entry(get=REPORTERS),
    "registry:interchange": Entry(get=ANY_SIGNED_IN),
    "registry:import_upload": Entry(get=ADMIN_ONLY, post=ADMIN_ONLY),
    "registry:import_preview": Entry(get="403 403 403 302"),
    "registry:import_confirm": Entry(get="405 405 405 405", post="403 403 403 302"),
    "registry:export": Entry(get=EXPORTERS, post=EXPORTERS),
    "registry:data_dictionary": Entry(get=ANY_SIGNED_IN),
    "analytics:report": Entry(get=REPORTERS),
    "analytics:patients": Entry(get=REPORTERS, query="?cell={cell}"),
    "analytics:published": Entry(get=REPORTERS),
    "analytics:download": Entry(get=REPORTERS, kwargs={"table": "table1", "fmt": "csv"}),
    "analytics:figure": Entry(get=REPORTERS, kwargs={"name": "mrs", "fmt": "svg"}),
}


def url_names(resolver=None, namespace=None, prefix=""):
    """(name, route) of every URL pattern, recursively, except the admin site's."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if route.startswith("admin/"):
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
    users = {
        "nurse": UserFactory(username="nurse_a", role=Role.DATA_ENTRY, sites=[site_a]),
        "investigator": UserFactory(
            username="investigator_a", role=Role.INVESTIGATOR, sites=[site_a]
        ),
        "monitor": UserFactory(username="monitor_a", role=Role.MONITOR, sites=[site_a]),
        "admin": UserFactory(username="registry_admin", role=Role.ADMIN),
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
    from analytics import cells

    cell = next(iter(cells.cells("table1")))
    return World(users=users, objects=objects, cell=cell)


def url_for(name: str, entry: Entry, world: World, site: str) -> str:
    kwargs = dict(entry.kwargs)
    if entry.obj:
        kwargs["pk"] = world.objects[(entry.obj, site)]
    return reverse(name, kwargs=kwargs or None) + entry.query.format(cell=world.cell)


def client_for(role: str, world: World) -> Client:
    client = Client(raise_request_exception=False)
    if role != "anonymous":
        client.force_login(world.users[role])
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


def check(role, method, url, expected: tuple[int, ...], world: World, data=None):
    client = client_for(role, world)
    response = client.get(url) if method == "GET" else client.post(url, data or {})
    where = f"{role} {method} {url}"
    if role == "anonymous":
        assert response.status_code == 302, where
        assert response["Location"].startswith(reverse("login")), where
        return
    assert response.status_code in expected, f"{where}: {response.status_code}, not {expected}"
    if role != "admin":
        assert leaked(response) == [], f"{where} shows site B's data"
        assert other_site_records(response) == [], f"{where} lists or counts site B's records"


@pytest.mark.parametrize("name", sorted(URLS))
def test_each_role_gets_what_the_table_says_and_nothing_of_another_site(name, world):
    entry = URLS[name]
    sites = ("A", "B") if entry.obj else ("A",)
    for site in sites:
        url = url_for(name, entry, world, site)
        for method, spec in (("GET", entry.get), ("POST", entry.post)):
            if spec is None:
                continue
            expected = codes(spec)
            for role in ROLES:
                if role == "anonymous" and entry.public:
                    continue
                if site == "B" and role not in ("anonymous", "admin"):
                    # Another site's object does not exist for this user, whatever the role.
                    check(role, method, url, (404,), world, entry.data)
                else:
                    check(role, method, url, expected.get(role, ()), world, entry.data)


def test_the_checks_do_see_another_sites_records_when_a_page_shows_them(world):
    """The detectors are not blind: the admin's patient list does show site B."""
    response = client_for("admin", world).get(reverse("registry:patient_list"))
    assert other_site_records(response)
    assert leaked(response)
