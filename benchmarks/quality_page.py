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

``--server`` measures what a browser waits for instead: gunicorn started as
``docs/deployment.md`` runs it (``--workers 3 --threads 2``; the workers share the
cache, files in a temporary ``CACHE_DIR``, as in production), the page requested over
HTTP, then its 13 figures six at a time, as a browser fetches the images of a page.
After visits that load the libraries into every worker, each repetition empties the
cache first. It prints the page's and the figures' medians and the whole visit's.
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
    parser.add_argument(
        "--server", action="store_true", help="over HTTP from gunicorn, figures in parallel"
    )
    args = parser.parse_args()
    _django.setup()
    if args.server:
        measure_server(args.repeat, args.quarter)
        return
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


WORKERS, THREADS, PARALLEL = 3, 2, 6  # docs/deployment.md; a browser's connections


def measure_server(repeat: int, quarter: str) -> None:
    import shutil
    import subprocess
    import tempfile

    from django.test import Client
    from pages import bench_users

    _site, _nurse, investigator = bench_users()
    client = Client()
    client.force_login(investigator)  # a session in the database the server reads
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    cache_dir = tempfile.mkdtemp(prefix="quality-cache-")
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "config.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={WORKERS}",
            f"--threads={THREADS}",
            "--timeout=300",
        ],
        cwd=_django.ROOT,
        env={**os.environ, "CACHE_DIR": cache_dir},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        visit = _visitor(f"http://127.0.0.1:{port}", cookie, quarter)
        _wait_for(visit)
        pages, figures, wholes = [], [], []
        # Warm-up visits first, so that each worker has computed a page and drawn
        # figures (imported its libraries) as in a server that has run a while.
        for run in range(WORKERS * 2 + repeat):
            shutil.rmtree(cache_dir)
            os.mkdir(cache_dir, 0o700)
            page, figure = visit()
            if run < WORKERS * 2:
                continue
            pages.append(page)
            figures.append(figure)
            wholes.append(page + figure)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(cache_dir, ignore_errors=True)
    each = ", ".join(f"{p:.0f}+{f:.0f}" for p, f in zip(pages, figures, strict=True))
    print(
        f"gunicorn {WORKERS} workers x {THREADS} threads, figures {PARALLEL} at a time: "
        f"page {statistics.median(pages):.0f} ms, its 13 figures "
        f"{statistics.median(figures):.0f} ms; whole visit median "
        f"{statistics.median(wholes):.0f} ms of {repeat} "
        f"(each page + figures: {each}); load {os.getloadavg()}"
    )


def _visitor(base: str, cookie: str, quarter: str):
    """A first visit: the page, then its figures ``PARALLEL`` at a time (ms each)."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from django.urls import reverse

    from analytics import quality_figures

    query = f"?quarter={quarter}" if quarter else ""
    page_url = reverse("quality:page") + query
    figure_urls = [
        reverse("quality:figure", args=[name, "svg"]) + query for name in quality_figures.FIGURES
    ]

    def get(path: str) -> None:
        request = urllib.request.Request(
            base + path, headers={"Cookie": cookie, "Host": "localhost"}
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}")

    def visit() -> tuple[float, float]:
        begun = time.perf_counter()
        get(page_url)
        paged = time.perf_counter()
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(get, figure_urls))
        return (paged - begun) * 1000, (time.perf_counter() - paged) * 1000

    visit.get = get
    return visit


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(visit, seconds: float = 60) -> None:
    """Until the server answers."""
    from django.urls import reverse

    deadline = time.monotonic() + seconds
    while True:
        try:
            visit.get(reverse("login"))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    main()
