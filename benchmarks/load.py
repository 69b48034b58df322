"""Load test: 20 nurses on gunicorn + PostgreSQL, over loopback, for a bounded time;
optionally under faults (an administrator's large upload, a PostgreSQL restart).

    python benchmarks/load.py [--nurses 20] [--seconds 60] [--workers 5]
        [--server postgres://postgres@127.0.0.1:5432]
        [--upload-rows 150000 --upload-at 5] [--restart-at 30 [--restart-command CMD]]

Creates a scratch database on the PostgreSQL server, migrates it, collects static files,
creates one site, the nurses (each with a password, signed in through the login form),
a registry administrator and a few patients per nurse, then starts ``gunicorn
config.wsgi`` with DEBUG off (production settings, HTTPS redirects disabled since
loopback is plain HTTP). Each nurse thread loops until the deadline: open the patient
list, a patient, a section form, and save the section with new values (the form's
version number and CSRF token, as a browser does).

Faults, both optional:

- ``--upload-rows N``: ``--upload-at`` seconds in, the administrator uploads an .xlsx of
  N rows (the four required columns) and opens its preview, as in the browser.
- ``--restart-at S``: S seconds in, the PostgreSQL server is restarted once
  (``--restart-command``, default ``pg_ctlcluster --skip-systemctl-redirect VERSION main
  restart`` for the only cluster of /etc/postgresql). A request refused while the database
  is away must answer 503 with the nurse's typed values on the page (counted as
  "refused, values shown"); the nurse then presses "Send again" every second until the
  registry answers, as the page tells her to.

Prints requests per second, p50/p95 latency (all requests, and saves), the refusals and
the errors (any other status, a 503 without the typed values, a failed connection), the
upload's times and answer, the peak memory of a gunicorn worker (with its children),
then checks that every value the last save of each section wrote is what the database
holds (a save refused by a 503 may or may not have reached the database before the
connection broke: its values count as saved either way). Drops the scratch database at
the end. Exit status 1 on any error or lost value.
"""

from __future__ import annotations

import argparse
import html
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
ADMIN = "load_admin"
RESEND_PAUSE_SECONDS = 1.0

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
User.objects.create_user({admin!r}, password={password!r}, role=Role.ADMIN)
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
PROBLEM_ITEM = re.compile(r'<li class="list-group-item[^>]*>([^<]*)</li>')


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


class Stats:
    def __init__(self, clock):
        self.lock = threading.Lock()
        self.clock = clock
        self.times: dict[str, list[float]] = {"page": [], "save": []}
        self.errors: list[str] = []
        self.refused: list[tuple[float, str]] = []  # (seconds into the run, what)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.times.setdefault(kind, []).append(seconds)
            if error:
                self.errors.append(error)

    def refuse(self, what: str) -> None:
        with self.lock:
            self.refused.append((time.monotonic() - self.clock.get("start", 0.0), what))


class Browser:
    """A minimal browser: one keep-alive connection, cookies, no redirect following."""

    def __init__(self, port: int, stats: Stats):
        self.port, self.stats = port, stats
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method, path, form=None, expect=200, kind="page", body=None, ctype=None):
        if form is not None:
            body, ctype = (
                urllib.parse.urlencode(form, doseq=True),
                "application/x-www-form-urlencoded",
            )
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if ctype is not None:
            headers["Content-Type"] = ctype
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
        unavailable = response.status == 503 and expect != 503
        error = (
            None
            if response.status == expect or unavailable
            else f"{method} {path}: {response.status}"
        )
        self.stats.record(kind, elapsed, error)
        if unavailable and method == "GET":
            self.stats.refuse(f"GET {path}")
        return response, text

    def sign_in(self, username: str) -> bool:
        _, page = self.request("GET", "/accounts/login/")
        token = CSRF_INPUT.search(page)
        if token is None:
            return False
        form = {"csrfmiddlewaretoken": token.group(1), "username": username, "password": PASSWORD}
        response, _ = self.request("POST", "/accounts/login/", form, expect=302)
        return response is not None and response.status == 302


def shows_values(page: str, values: dict) -> bool:
    """Whether the 503 page shows each typed value (next to its field's label)."""
    return all(
        f'<dd class="col-sm-8">{html.escape(str(value))}</dd>' in page for value in values.values()
    )


def save(browser, path, form, values, stats, saved, attempted, deadline):
    """Save a section; on a 503, check the typed values are shown and send them again
    (as the page offers) until the registry answers."""
    key = "/".join(path.split("/")[2:4])  # "<patient pk>/<section>"
    while True:
        response, page = browser.request("POST", path, form, expect=302, kind="save")
        if response is None or response.status != 503:
            break
        if shows_values(page, values):
            stats.refuse(f"save {key}: values shown")
        else:
            stats.record("save", 0.0, f"POST {path}: 503 without the typed values")
        attempted.setdefault(key, []).append(values)  # it may have reached the database
        if time.monotonic() > deadline + 30:
            return
        time.sleep(RESEND_PAUSE_SECONDS)
    if response is not None and response.status == 302:
        # The nurse owns these patients: the last successful save is what must be stored.
        saved[key] = values
        attempted.pop(key, None)


def nurse(
    username, patients, port, seconds, clock, barrier, warm, stats, saved, attempted, seed, drawn
):
    rng = random.Random(seed)
    browser = Browser(port, warm)
    if not browser.sign_in(username):
        warm.record("page", 0.0, f"{username}: could not sign in")
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
        response, form_page = browser.request("GET", f"/patients/{pk}/{key}/")
        csrf, version = CSRF_INPUT.search(form_page), VERSION_INPUT.search(form_page)
        if not (csrf and version):
            if response is None or response.status != 503:
                stats.record("page", 0.0, f"no form on /patients/{pk}/{key}/")
            time.sleep(RESEND_PAUSE_SECONDS)  # "wait a few seconds and reload"
            continue
        which = rng.randrange(DRAWN)
        values = {name: drawn[name][which] for name in EDITS[key]}
        form = {"csrfmiddlewaretoken": csrf.group(1), "version": version.group(1)}
        form.update({name: str(value) for name, value in values.items()})
        form["action"] = "save"
        save(browser, f"/patients/{pk}/{key}/", form, values, stats, saved, attempted, deadline)


def workbook(path: Path, rows: int) -> Path:
    """An .xlsx of ``rows`` rows of the required columns, as a spreadsheet would hold."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("patients")
    sheet.append(["study_id", "site", "sex", "age_years"])
    for n in range(rows):
        sheet.append([f"U{n:06d}", "LOAD", "male" if n % 2 else "female", 40 + n % 50])
    book.save(path)
    return path


def multipart(fields: dict, name: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts = []
    for key, value in fields.items():
        disposition = f'Content-Disposition: form-data; name="{key}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def administrator(port, clock, barrier, stats, xlsx: Path, at: float, report: dict):
    """Upload the workbook ``at`` seconds in and open its preview, as in the browser."""
    browser = Browser(port, stats)
    browser.sign_in(ADMIN)
    barrier.wait()
    time.sleep(max(0.0, clock["start"] + at - time.monotonic()))
    _, page = browser.request("GET", "/interchange/import/", kind="upload")
    token = CSRF_INPUT.search(page)
    if token is None:
        report["answer"] = "no upload form"
        return
    body, ctype = multipart(
        {"csrfmiddlewaretoken": token.group(1)}, "file", xlsx.name, xlsx.read_bytes()
    )
    started = time.perf_counter()
    browser.request(
        "POST", "/interchange/import/", expect=302, kind="upload", body=body, ctype=ctype
    )
    report["upload_s"] = time.perf_counter() - started
    started = time.perf_counter()
    response, page = browser.request("GET", "/interchange/import/preview/", kind="upload")
    report["preview_s"] = time.perf_counter() - started
    report["status"] = response.status if response is not None else None
    report["page_kb"] = len(page.encode()) / 1024
    first = PROBLEM_ITEM.search(page)
    report["answer"] = html.unescape(first.group(1)) if first else "no problem listed"
    started = time.perf_counter()
    response, page = browser.request("GET", "/interchange/import/preview/", kind="upload")
    report["reload_s"] = time.perf_counter() - started
    report["reload_status"] = response.status if response is not None else None
    first = PROBLEM_ITEM.search(page)
    report["reload_answer"] = html.unescape(first.group(1)) if first else "no problem listed"


def restarter(clock, barrier, at: float, command: list[str], report: dict):
    barrier.wait()
    time.sleep(max(0.0, clock["start"] + at - time.monotonic()))
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    report["from"] = started - clock["start"]
    report["to"] = time.monotonic() - clock["start"]
    report["status"] = done.returncode
    report["output"] = (done.stdout + done.stderr).strip()[-300:]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def watch_memory(master: int, stop: threading.Event, peak: dict):
    """The largest resident set of one gunicorn worker with its children (the workbook
    reader), sampled every quarter second."""
    while not stop.wait(0.25):
        for worker in children(master):
            total = rss_mb(worker) + sum(rss_mb(child) for child in children(worker))
            peak["worker_mb"] = max(peak.get("worker_mb", 0.0), total)


def default_restart_command() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]


def percentile(values: list[float], q: int) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else 0.0
    )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nurses", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--upload-rows", type=int, default=0, help="rows of the uploaded .xlsx")
    parser.add_argument("--upload-at", type=float, default=5.0)
    parser.add_argument("--restart-at", type=float, default=None)
    parser.add_argument("--restart-command", default=None, help="default: pg_ctlcluster ...")
    parser.add_argument("--log", type=Path, help="keep the application's log in this file")
    return parser.parse_args()


def scratch_env(args, name: str, tmp: Path) -> dict:
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
    return env


def start_gunicorn(env, workers: int, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(PYTHON).with_name("gunicorn")),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--preload",
            "--timeout",
            "60",
            "--log-level",
            "critical",
        ],
        cwd=ROOT,
        env=env,
        stderr=log.open("w"),  # the application's log: one traceback per refused request
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, port


def lost_values(stored: dict, saved: dict, attempted: dict) -> list[str]:
    """Sections whose stored values are neither the last confirmed save nor a refused
    save sent after it."""
    lost = []
    for where, values in saved.items():
        candidates = [values, *attempted.get(where, [])]
        row = stored.get(where)
        if row is None or not any(all(row[f] == v for f, v in c.items()) for c in candidates):
            lost.append(f"{where}: saved {values}, stored {row}")
    return lost


def report(args, elapsed, stats, saved, lost, upload, restart, peak) -> None:
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
    if restart:
        print(
            f"PostgreSQL restart from {restart['from']:.1f} s to {restart['to']:.1f} s "
            f"(exit status {restart['status']})"
        )
    if stats.refused:
        moments = [moment for moment, _ in stats.refused]
        shown = sum(1 for _, what in stats.refused if what.endswith("values shown"))
        pages = len(stats.refused) - shown
        print(
            f"refused with 503 {len(stats.refused)} ({shown} saves with the typed values "
            f"shown, {pages} pages), from {min(moments):.1f} s to {max(moments):.1f} s"
        )
    if upload:
        print(
            f"upload of {args.upload_rows:,} rows: POST {upload.get('upload_s', 0):.1f} s, "
            f"preview {upload.get('preview_s', 0):.1f} s (HTTP {upload.get('status')}, "
            f"{upload.get('page_kb', 0):.0f} KB), reload {upload.get('reload_s', 0):.2f} s "
            f"(HTTP {upload.get('reload_status')})"
        )
        print(f"  preview says: {upload.get('answer')}")
        print(f"  reload says: {upload.get('reload_answer')}")
    print(f"peak memory of a gunicorn worker (with its children) {peak.get('worker_mb', 0):.0f} MB")
    print(f"errors {len(stats.errors)}")
    for error in stats.errors[:10]:
        print(f"  {error}")
    print(f"sections checked {len(saved)}, values lost {len(lost)}")
    for line in lost[:10]:
        print(f"  {line}")


def main() -> int:
    args = parse_args()
    import psycopg

    name = f"registry_load_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="registry-load-"))
    env = scratch_env(args, name, tmp)
    admin = psycopg.connect(f"{args.server}/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    server = None
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        fields = sorted({name for names in EDITS.values() for name in names})
        setup = SETUP.format(
            nurses=args.nurses,
            password=PASSWORD,
            per_nurse=PATIENTS_PER_NURSE,
            admin=ADMIN,
            drawn=DRAWN,
            fields=fields,
        )
        made = json.loads(manage(env, "shell", "-c", setup).strip().splitlines()[-1])
        plan, drawn = made["nurses"], made["drawn"]
        xlsx = workbook(tmp / "patients.xlsx", args.upload_rows) if args.upload_rows else None
        server, port = start_gunicorn(env, args.workers, tmp / "gunicorn.log")

        clock: dict = {}
        warm, stats = Stats(clock), Stats(clock)
        saved, attempted, upload, restart, peak = {}, {}, {}, {}, {}
        parties = len(plan) + 1 + (xlsx is not None) + (args.restart_at is not None)
        barrier = threading.Barrier(parties, action=lambda: clock.update(start=time.monotonic()))
        threads = [
            threading.Thread(
                target=nurse,
                args=(
                    user,
                    pks,
                    port,
                    args.seconds,
                    clock,
                    barrier,
                    warm,
                    stats,
                    saved,
                    attempted,
                    i,
                    drawn,
                ),
                daemon=True,
            )
            for i, (user, pks) in enumerate(plan.items())
        ]
        if xlsx is not None:
            threads.append(
                threading.Thread(
                    target=administrator,
                    args=(port, clock, barrier, Stats(clock), xlsx, args.upload_at, upload),
                    daemon=True,
                )
            )
        if args.restart_at is not None:
            command = (
                args.restart_command.split() if args.restart_command else default_restart_command()
            )
            threads.append(
                threading.Thread(
                    target=restarter,
                    args=(clock, barrier, args.restart_at, command, restart),
                    daemon=True,
                )
            )
        stop = threading.Event()
        watcher = threading.Thread(target=watch_memory, args=(server.pid, stop, peak), daemon=True)
        watcher.start()
        for thread in threads:
            thread.start()
        barrier.wait(timeout=600)  # all signed in and warmed up: the clock starts
        for thread in threads:
            thread.join(timeout=args.seconds + 180)
        elapsed = time.monotonic() - clock["start"]
        stop.set()
        stats.errors[:0] = [f"(warm-up) {e}" for e in warm.errors]

        stored = json.loads(manage(env, "shell", "-c", READ_BACK).strip().splitlines()[-1])
        lost = lost_values(stored, saved, attempted)
        report(args, elapsed, stats, saved, lost, upload, restart, peak)
        logged = (tmp / "gunicorn.log").read_text(errors="replace")
        if args.log:
            args.log.write_text(logged)
        print(
            f"application log: {logged.count(' ERROR django.request: ')} errors logged "
            f"({logged.count('OperationalError')} mentioning OperationalError)"
        )
        return 1 if stats.errors or lost or not saved else 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        admin = psycopg.connect(f"{args.server}/postgres", autocommit=True)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
