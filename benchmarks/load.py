"""Load test: 20 nurses on gunicorn + PostgreSQL, over loopback, for a bounded time.

    python benchmarks/load.py [--nurses 20] [--seconds 60] [--workers 5]
        [--server postgres://postgres@127.0.0.1:5432]

Creates a scratch database on the PostgreSQL server, migrates it, collects static files,
creates one site, the nurses (each with a password, signed in through the login form)
and a few patients per nurse, then starts ``gunicorn config.wsgi`` with DEBUG off
(production settings, HTTPS redirects disabled since loopback is plain HTTP). Each nurse
thread loops until the deadline: open the patient list, a patient, a section form, and
save the section with new values (the form's version number and CSRF token, as a browser
does). Prints requests per second, p50/p95 latency (all requests, and saves), errors
(any status other than the expected one, or a failed connection), then checks that
every value the last save of each section wrote is what the database holds. Drops the
scratch database at the end. Exit status 1 on any error or lost value.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PASSWORD = "load-test-Passphrase-42"
PATIENTS_PER_NURSE = 5

# Section saves: each writes these fields (others blank) with the values of one of
# DRAWN synthetic patients (registry.synthetic), as a nurse might type them.
EDITS = {"admission": ("nihss_admission", "premorbid_mrs"), "complications": ("discharge_mrs",)}
DRAWN = 1000

SETUP = """
import json
import numpy as np
from registry import synthetic
from registry.choices import Role
from registry.models import Patient, Site, User
site, _ = Site.objects.get_or_create(code="LOAD", defaults={{"name": "Load-test hospital"}})
plan = {{}}
for n in range({nurses}):
    user = User.objects.create_user(f"load_nurse_{{n:02d}}", password={password!r},
                                    role=Role.DATA_ENTRY)
    user.sites.set([site])
    pks = []
    for k in range({per_nurse}):
        p = Patient.objects.create(study_id=f"L{{n:02d}}-{{k}}", site=site, sex="female",
                                   age_years=60 + k)
        pks.append(p.pk)
    plan[user.username] = pks
cohort = synthetic.draw(np.random.default_rng(0), {drawn})
drawn = {{name: cohort.python(name) for name in {fields!r}}}
print(json.dumps({{"nurses": plan, "drawn": drawn}}))
"""

READ_BACK = """
import json
from registry.models import SECTIONS_BY_KEY
out = {}
for key, model in SECTIONS_BY_KEY.items():
    for row in model.objects.values("patient_id", *model.clinical_fields()):
        out[f"{row.pop('patient_id')}/{key}"] = row
print(json.dumps(out, default=str))
"""

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
VERSION_INPUT = re.compile(r'name="version" value="(\d+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env, *args) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


class Browser:
    """A minimal browser: one keep-alive connection, cookies, no redirect following."""

    def __init__(self, port: int, stats: Stats):
        self.port, self.stats = port, stats
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method, path, form=None, expect=200, kind="page"):
        body = urllib.parse.urlencode(form) if form is not None else None
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.stats.record(kind, time.perf_counter() - started, f"{method} {path}: {exc}")
            return None, ""
        elapsed = time.perf_counter() - started
        for header in response.msg.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        error = None if response.status == expect else f"{method} {path}: {response.status}"
        self.stats.record(kind, elapsed, error)
        return response, text


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {"page": [], "save": []}
        self.errors: list[str] = []

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.times[kind].append(seconds)
            if error:
                self.errors.append(error)


def nurse(username, patients, port, seconds, clock, barrier, warm_stats, stats, saved, seed, drawn):
    rng = random.Random(seed)
    browser = Browser(port, warm_stats)
    _, page = browser.request("GET", "/accounts/login/", kind="page")
    token = CSRF_INPUT.search(page)
    if token is None:
        warm_stats.record("page", 0.0, f"{username}: no login form")
        barrier.wait()
        return
    browser.request(
        "POST",
        "/accounts/login/",
        {"csrfmiddlewaretoken": token.group(1), "username": username, "password": PASSWORD},
        expect=302,
    )
    # Warm-up, untimed: each gunicorn worker imports the views on its first requests.
    browser.request("GET", "/patients/")
    browser.request("GET", f"/patients/{patients[0]}/")
    browser.request("GET", f"/patients/{patients[0]}/{next(iter(EDITS))}/")
    barrier.wait()
    browser.stats = stats
    deadline = clock["start"] + seconds
    while time.monotonic() < deadline:
        browser.request("GET", "/patients/")
        pk = rng.choice(patients)
        browser.request("GET", f"/patients/{pk}/")
        key = rng.choice(list(EDITS))
        _, form_page = browser.request("GET", f"/patients/{pk}/{key}/")
        csrf, version = CSRF_INPUT.search(form_page), VERSION_INPUT.search(form_page)
        if not (csrf and version):
            stats.record("page", 0.0, f"no form on /patients/{pk}/{key}/")
            continue
        which = rng.randrange(DRAWN)
        values = {name: drawn[name][which] for name in EDITS[key]}
        form = {"csrfmiddlewaretoken": csrf.group(1), "version": version.group(1)}
        form.update({name: str(value) for name, value in values.items()})
        form["action"] = "save"
        response, _ = browser.request(
            "POST", f"/patients/{pk}/{key}/", form, expect=302, kind="save"
        )
        if response is not None and response.status == 302:
            # The nurse owns these patients: the last successful save is what must be stored.
            saved[f"{pk}/{key}"] = values


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if values else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nurses", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    import psycopg

    name = f"registry_load_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="registry-load-"))
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY_TESTING"}
    env.update(
        DATABASE_URL=f"{args.server}/{name}",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        BEHIND_PROXY="0",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_HSTS_SECONDS="0",
        STATIC_ROOT=str(tmp / "static"),
        REGISTRY_VAR_DIR=str(tmp),
        DB_CONN_MAX_AGE="60",
    )
    admin = psycopg.connect(f"{args.server}/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    server = None
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        fields = sorted({name for names in EDITS.values() for name in names})
        setup = SETUP.format(
            nurses=args.nurses,
            password=PASSWORD,
            per_nurse=PATIENTS_PER_NURSE,
            drawn=DRAWN,
            fields=fields,
        )
        made = json.loads(manage(env, "shell", "-c", setup).strip().splitlines()[-1])
        plan, drawn = made["nurses"], made["drawn"]

        port = free_port()
        server = subprocess.Popen(
            [
                str(Path(PYTHON).with_name("gunicorn")),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--preload",
                "--timeout",
                "120",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

        warm_stats, stats, saved, clock = Stats(), Stats(), {}, {}
        barrier = threading.Barrier(
            len(plan) + 1, action=lambda: clock.update(start=time.monotonic())
        )
        threads = [
            threading.Thread(
                target=nurse,
                args=(user, pks, port, args.seconds, clock, barrier, warm_stats, stats, saved, i),
                kwargs={"drawn": drawn},
                daemon=True,
            )
            for i, (user, pks) in enumerate(plan.items())
        ]
        for thread in threads:
            thread.start()
        barrier.wait(timeout=600)  # all signed in and warmed up: the clock starts
        for thread in threads:
            thread.join(timeout=args.seconds + 120)
        elapsed = time.monotonic() - clock["start"]
        stats.errors[:0] = [f"(warm-up) {e}" for e in warm_stats.errors]

        stored = json.loads(manage(env, "shell", "-c", READ_BACK).strip().splitlines()[-1])
        lost = [
            f"{where}: saved {values}, stored {stored.get(where)}"
            for where, values in saved.items()
            if stored.get(where) is None
            or any(stored[where][field] != value for field, value in values.items())
        ]
        everything = stats.times["page"] + stats.times["save"]
        print(f"nurses {args.nurses}, gunicorn workers {args.workers}, {elapsed:.1f} s")
        print(f"requests {len(everything)}  ({len(everything) / elapsed:.1f} req/s)")
        print(
            f"latency all   p50 {percentile(everything, 50) * 1000:.0f} ms  "
            f"p95 {percentile(everything, 95) * 1000:.0f} ms"
        )
        saves = stats.times["save"]
        print(
            f"latency saves p50 {percentile(saves, 50) * 1000:.0f} ms  "
            f"p95 {percentile(saves, 95) * 1000:.0f} ms  ({len(saves)} saves)"
        )
        print(f"errors {len(stats.errors)}")
        for error in stats.errors[:10]:
            print(f"  {error}")
        print(f"sections checked {len(saved)}, values lost {len(lost)}")
        for line in lost[:10]:
            print(f"  {line}")
        return 1 if stats.errors or lost or not saved else 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
