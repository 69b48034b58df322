"""Server time of the whole /quality/ page (the HTML and every figure it embeds), in-process.

Usage::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        .venv/bin/python benchmarks/quality_page.py [--repeat 3]

on a cohort of ``benchmarks/make_cohort.py`` (1,000,000 patients over 20 sites for the
target: the whole page within 3 s). The user is an investigator of every site
(``pages.bench_users``: the only rows the script writes; its sessions are signed
cookies, not database rows). Each repetition forgets the page's remembered numbers
first, then requests the page and its 13 figures one after the other, as a browser
does on a first visit: the page computes the numbers, the figures reuse them. The
script prints each URL's median milliseconds, the whole page's median, the time of
the read alone, the process's peak RSS and the load average.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quarter", default="", help="e.g. 2024-Q1 (default: all quarters)")
    args = parser.parse_args()
    _django.setup()
    from django.test import override_settings

    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
        measure(args.repeat, args.quarter)


def measure(repeat: int, quarter: str) -> None:
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from pages import bench_users

    from analytics import quality, quality_figures

    _site, _nurse, investigator = bench_users()
    client = Client(HTTP_HOST="localhost")
    client.force_login(investigator)
    query = f"?quarter={quarter}" if quarter else ""
    started = time.perf_counter()
    frame = quality.read(investigator, None)
    read_ms = (time.perf_counter() - started) * 1000
    print(f"patients read: {len(frame):,} in {read_ms:.0f} ms (one query)")
    del frame
    urls = [reverse("quality:page") + query]
    urls += [
        reverse("quality:figure", args=[name, "svg"]) + query for name in quality_figures.FIGURES
    ]
    times: dict[str, list[float]] = {url: [] for url in urls}
    queries: dict[str, int] = {}
    for _ in range(repeat):
        cache.clear()  # a first visit: nothing remembered
        for url in urls:
            with CaptureQueriesContext(connection) as captured:
                begun = time.perf_counter()
                response = client.get(url)
                times[url].append((time.perf_counter() - begun) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url} answered {response.status_code}")
            queries[url] = len(captured)
    wholes = [sum(times[url][i] for url in urls) for i in range(repeat)]
    for url in urls:
        print(f"{statistics.median(times[url]):8.0f} ms  {queries[url]:2d} queries  {url}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"whole page: median {statistics.median(wholes):.0f} ms of {repeat} "
        f"(each {', '.join(f'{w:.0f}' for w in wholes)}); peak RSS {peak:.0f} MB; "
        f"load {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
