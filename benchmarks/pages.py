"""Server time and query count of the nurse's pages and the report page, in-process.

Each page is requested with ``django.test.Client`` (``force_login``: no password
hashing in the timing) inside ``CaptureQueriesContext``; the time is the median
of ``repeat`` requests after one warm-up request (template and plan caches warm,
as on a running server).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

BENCH_SITE = "S002"  # the second-largest site: its study IDs do not sort first


def bench_users():
    """A nurse of ``BENCH_SITE`` and an investigator of every site (created once)."""
    from registry.choices import Role
    from registry.models import Site, User

    site = Site.objects.get(code=BENCH_SITE)
    nurse, _ = User.objects.get_or_create(
        username="bench_nurse", defaults={"role": Role.DATA_ENTRY}
    )
    nurse.sites.set([site])
    investigator, _ = User.objects.get_or_create(
        username="bench_investigator", defaults={"role": Role.INVESTIGATOR}
    )
    investigator.sites.set(Site.objects.all())
    return site, nurse, investigator


def timed(client, method: str, url: str, data=None, repeat: int = 5) -> dict:
    """Median milliseconds, queries and status of ``repeat`` requests (after a warm-up)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call = getattr(client, method)
    make = data if callable(data) else (lambda: data)
    call(url, make())
    times, queries, status = [], [], None
    for _ in range(repeat):
        payload = make()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = call(url, payload)
            times.append((time.perf_counter() - started) * 1000)
        queries.append(len(captured))
        status = response.status_code
        if status >= 400:
            raise RuntimeError(f"{method.upper()} {url} answered {status}")
        last = captured.captured_queries
    return {
        "ms": statistics.median(times),
        "queries": max(queries),
        "status": status,
        "sql": [q["sql"] for q in last],
        "sql_ms": [float(q["time"]) * 1000 for q in last],
    }


def section_post_data(patient, key: str, bump: int) -> dict:
    """The section form's current values as the browser posts them, one value changed."""
    from django.utils import timezone

    from registry.choices import SectionStatus
    from registry.forms import DATE_FORMAT, DATETIME_FORMAT, section_form_class
    from registry.models import SECTIONS_BY_KEY

    model = SECTIONS_BY_KEY[key]
    instance = model.objects.get(patient=patient)
    form = section_form_class(model)(instance=instance)
    data = {}
    for name in model.clinical_fields():
        value = form[name].value()
        if isinstance(value, dt.datetime):
            if timezone.is_aware(value):
                value = timezone.localtime(value)
            value = value.strftime(DATETIME_FORMAT)
        elif isinstance(value, dt.date):
            value = value.strftime(DATE_FORMAT)
        data[name] = "" if value is None else str(value)
    data["nihss_admission"] = str((int(data["nihss_admission"] or 0) + bump) % 43)
    data["version"] = str(instance.version)
    if instance.status == SectionStatus.COMPLETE:
        data["action"] = "complete"
        data["reason_for_change"] = "benchmark"
    return data


def _savable(client, patients):
    """The first of ``patients`` whose admission saves with one value changed: a drawn
    patient may carry a warning (e.g. a follow-up date outside the window) that the
    form asks to confirm, and a refused save is not a save."""
    from django.urls import reverse

    for patient in patients:
        url = reverse("registry:section_edit", args=[patient.pk, "admission"])
        if client.post(url, section_post_data(patient, "admission", 1)).status_code == 302:
            return patient
    raise RuntimeError("no patient's admission saves without a warning to confirm")


def measure_pages(repeat: int = 5, report_url: str | None = None) -> dict[str, dict]:
    """The nurse's list (filtered by site; landing; search; a deep page; a section
    incomplete), overview and section save, and the report page."""
    from django.test import Client
    from django.urls import reverse

    from registry.models import Patient

    site, nurse, investigator = bench_users()
    client = Client(HTTP_HOST="localhost")
    client.force_login(nurse)
    patient = Patient.objects.filter(site=site).order_by("study_id")[10]
    listed = reverse("registry:patient_list")
    fragment = patient.study_id[-6:]  # a fragment of a study ID, as a nurse types it
    results = {
        "patient list": timed(client, "get", listed, {"site": site.pk}, repeat),
        # The nurse's landing page: no query string, so the follow-up panels too.
        "patient list, landing": timed(client, "get", listed, None, repeat),
        "patient list, search": timed(client, "get", listed, {"q": fragment}, repeat),
        "patient list, page 500": timed(client, "get", listed, {"page": 500}, repeat),
        "patient list, follow-up incomplete": timed(
            client, "get", listed, {"incomplete": "followup"}, repeat
        ),
        "patient list, any section incomplete": timed(
            client, "get", listed, {"incomplete": "any"}, repeat
        ),
        "overview": timed(
            client, "get", reverse("registry:patient_detail", args=[patient.pk]), None, repeat
        ),
    }
    saved = _savable(client, Patient.objects.filter(site=site).order_by("study_id")[10:200])
    bump = iter(range(1, 10_000))
    results["section save"] = timed(
        client,
        "post",
        reverse("registry:section_edit", args=[saved.pk, "admission"]),
        lambda: section_post_data(saved, "admission", next(bump)),
        repeat,
    )
    if results["section save"]["status"] != 302:
        raise RuntimeError("the section save was refused: the figure would be a form's")
    if report_url:
        reader = Client(HTTP_HOST="localhost")
        reader.force_login(investigator)
        results["report page"] = timed(reader, "get", report_url, None, max(1, repeat // 2))
    return results
