"""Server time and query count of the consistency-checks page (/checks/), in-process.

Usage::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        .venv/bin/python benchmarks/checks_page.py [--repeat 3]

on a cohort of ``benchmarks/make_cohort.py`` (1,000,000 patients over 20 sites for the
target). It writes nothing: the view is called with a ``RequestFactory`` request of the
existing users ``bench_investigator`` (every site) and ``bench_nurse`` (one site) of
``pages.bench_users``, so no session or last-login is saved. Each page is timed after one
warm-up request; the script prints the median milliseconds, the queries, the findings
listed, and the process's peak RSS with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402


def timed_page(user, params: dict, repeat: int) -> dict:
    """Median milliseconds and queries of the checks page for ``user`` with ``params``."""
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from registry.workflow.views import data_checks

    def get():
        request = RequestFactory().get("/checks/", params)
        request.user = user
        return data_checks(request)

    get()
    times, queries = [], []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = get()
            times.append((time.perf_counter() - started) * 1000)
        queries.append(len(captured))
    page = response.content.decode()
    return {
        "ms": statistics.median(times),
        "queries": max(queries),
        "findings": page.count('class="registry-finding-'),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    _django.setup()
    from registry.models import Patient, User

    investigator = User.objects.get(username="bench_investigator")
    nurse = User.objects.get(username="bench_nurse")
    middle = Patient.objects.filter(site__code="S001").order_by("study_id")[60_000].study_id
    cases = {
        "investigator, first page": (investigator, {}),
        "investigator, site S020": (investigator, {"site": "S020"}),
        "investigator, S001 after 60,000 patients": (investigator, {"at": "S001", "after": middle}),
        "investigator, warnings only": (investigator, {"kind": "warning"}),
        "investigator, a rare rule": (investigator, {"code": "mrs_6_without_death_date"}),
        "nurse, first page": (nurse, {}),
    }
    for name, (user, params) in cases.items():
        found = timed_page(user, params, args.repeat)
        print(
            f"{found['ms']:8.0f} ms  {found['queries']:2d} queries  "
            f"{found['findings']:3d} findings  {name}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
