"""Server time of the whole /quality/ page (the HTML and every figure it embeds), in-process.

Usage::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_i21_bench \\
        .venv/bin/python benchmarks/quality_page.py [--repeat 3]

on a cohort of ``benchmarks/make_cohort.py`` (1,000,000 patients over 20 sites for the
target: the whole page within 3 s). The user is an investigator of every site
(``pages.bench_users``). Each request is timed after one warm-up request; the script
prints the median milliseconds of each URL, the sum (the whole page, figures fetched
one after the other), the read's share, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    from django.test import Client
    from django.urls import reverse
    from pages import bench_users, timed

    from analytics import quality, quality_figures

    _site, _nurse, investigator = bench_users()
    client = Client(HTTP_HOST="localhost")
    client.force_login(investigator)
    query = f"?quarter={args.quarter}" if args.quarter else ""
    started = time.perf_counter()
    frame = quality.read(investigator, None)
    read_ms = (time.perf_counter() - started) * 1000
    print(f"patients read: {len(frame):,} in {read_ms:.0f} ms (one query)")
    urls = [reverse("quality:page") + query]
    urls += [
        reverse("quality:figure", args=[name, "svg"]) + query for name in quality_figures.FIGURES
    ]
    total = 0.0
    for url in urls:
        found = timed(client, "get", url, repeat=args.repeat)
        total += found["ms"]
        print(f"{found['ms']:8.0f} ms  {found['queries']:2d} queries  {url}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"whole page: {total:.0f} ms; peak RSS {peak:.0f} MB; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
