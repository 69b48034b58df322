"""The API's patient list at scale: the first page and a page far down the cursor, for a
site's nurse and for the registry administrator. Reads only (no request is logged: the
views' queryset and pagination are called directly), so it can run on a read-only
benchmark database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m DEBUG=1 \
        .venv/bin/python benchmarks/api_patients.py

Prints seconds per page and the peak RSS.
"""

from __future__ import annotations

import base64
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from rest_framework.test import APIRequestFactory, force_authenticate  # noqa: E402

from registry.api.views import PatientList  # noqa: E402
from registry.models import Site, User  # noqa: E402


def page(user, url: str) -> dict:
    request = APIRequestFactory().get(url, HTTP_HOST="127.0.0.1")
    force_authenticate(request, user=user)
    view = PatientList()
    view.setup(request)
    view.request = view.initialize_request(request)
    view.format_kwarg = None
    queryset = view.filter_queryset(view.get_queryset())
    rows = view.paginate_queryset(queryset)
    data = view.get_serializer(rows, many=True).data
    return {"results": data, "next": view.paginator.get_next_link()}


def timed(label: str, user, url: str) -> dict:
    start = time.perf_counter()
    body = page(user, url)
    print(f"{label:<40} {time.perf_counter() - start:6.3f} s  {len(body['results'])} rows")
    return body


def main() -> None:
    # The cohort's nurse (one site) and its investigator (every site, 20 on bench_1m).
    nurse = User.objects.filter(role="data_entry").order_by("pk").first()
    investigator = User.objects.filter(role="investigator").order_by("pk").first()
    sites = Site.objects.count()
    print(f"{sites} sites; nurse {nurse.username} of {nurse.sites.count()} site(s)")
    for label, user in (
        ("nurse", nurse),
        (f"investigator ({investigator.sites.count()} sites)", investigator),
    ):
        body = timed(f"{label}: first page", user, "/api/v1/patients/?page_size=100")
        for _ in range(3):
            body = timed(f"{label}: next page", user, body["next"])
        far = base64.b64encode(b"p=900000").decode()
        timed(f"{label}: page after id 900000", user, f"/api/v1/patients/?cursor={far}")
        timed(f"{label}: incomplete=followup", user, "/api/v1/patients/?incomplete=followup")
        timed(f"{label}: q=0999", user, "/api/v1/patients/?q=0999")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
