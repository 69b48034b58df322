"""Fixtures of the browser tests: Debian's Chromium driven by Playwright against the live server.

One Chromium runs for the whole session; each test gets a fresh context (cookies, downloads)
and a page sized like a hospital tablet. Every page a journey visits is scanned with axe-core
(shipped inside axe-playwright-python, no network) and must have no serious or critical
violation. Screenshots land in ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import LiveServerThread
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

CHROMIUM = os.environ.get("REGISTRY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# A 10-inch tablet held in landscape, the device nurses use at the bedside.
TABLET = {"width": 1024, "height": 768}
PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's password
BLOCKING_IMPACTS = {"serious", "critical"}
TIMEOUT_MS = 10_000
# A report page recomputes every table: generous on a loaded two-core CI machine.
NAVIGATION_TIMEOUT_MS = 30_000
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    """Browser tests run last, so that no other test runs while Playwright's loop does."""
    items.sort(key=lambda item: HERE in Path(str(item.path)).resolve().parents)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Chromium for the session (the browser tests run last, see above).

    Playwright's sync API keeps an asyncio loop running in the main thread for as long as it is
    started, and Django refuses database calls from a thread with a running loop ("async
    unsafe"): the tests' own factories and the transactional flush would fail. So
    DJANGO_ALLOW_ASYNC_UNSAFE is set exactly while Playwright runs, and restored after, so it
    never leaks into the other tests (nor into a subprocess such as `check --deploy`).
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make browser-deps` (apt-get install -y chromium) installs it."
        )
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


class OneViewAtATimeServer(ThreadedWSGIServer):
    """Django's threaded live server, running one request through Django at a time.

    On SQLite the test database is in memory and every request thread shares the test's one
    connection; two requests at once (the report page's two figure images) can then hang in
    SQLite. Reading sockets stays threaded (Chromium keeps idle connections open); only the
    call into Django is serialized. PostgreSQL gives each thread its own connection.
    """

    def set_app(self, application):
        if not self.connections_override:
            return super().set_app(application)
        lock = threading.Lock()

        def one_at_a_time(environ, start_response):
            with lock:
                response = application(environ, start_response)
                # Read the whole body and close (request_finished) inside the lock too.
                try:
                    return [b"".join(response)]
                finally:
                    if hasattr(response, "close"):
                        response.close()

        return super().set_app(one_at_a_time)


@pytest.fixture(scope="session", autouse=True)
def one_view_at_a_time_live_server():
    """Installed before pytest-django's session ``live_server`` starts its thread."""
    previous = LiveServerThread.server_class
    LiveServerThread.server_class = OneViewAtATimeServer
    yield
    LiveServerThread.server_class = previous


@pytest.fixture(autouse=True)
def warm_live_server(one_view_at_a_time_live_server, live_server):
    """Answer one request before the browser does: the first one imports the analytics stack
    (pandas, scipy, matplotlib), which would otherwise eat a page's timeout. Once a session."""
    if not getattr(live_server, "_registry_warm", False):
        try:
            urllib.request.urlopen(f"{live_server.url}/accounts/login/", timeout=120).read()
        finally:
            live_server._registry_warm = True


@pytest.fixture(autouse=True)
def login_throttling_on(settings):
    """Log in with django-axes switched on, as on a hospital server."""
    settings.AXES_ENABLED = True


class PageProblems:
    """JavaScript errors and Content-Security-Policy refusals seen by a page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"JavaScript error: {exc}"))
        page.on("console", self._console)

    def _console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(f"CSP refusal: {message.text}")


def _artifact_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::")[-1])


@pytest.fixture
def new_context(browser, request) -> Iterator:
    """Factory of browser contexts (a fresh "device"); all are closed after the test.

    The last page of each context is photographed into test-artifacts/ when the test ends,
    passed or failed, and JavaScript errors or CSP refusals fail the test.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    made: list[tuple[BrowserContext, PageProblems]] = []

    def make(**options) -> BrowserContext:
        options.setdefault("viewport", TABLET)
        options.setdefault("accept_downloads", True)
        options.setdefault("locale", "en-GB")
        options.setdefault("timezone_id", "Asia/Ho_Chi_Minh")
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        problems = PageProblems()
        context.on("page", problems.watch)
        made.append((context, problems))
        return context

    yield make

    name = _artifact_name(request.node.nodeid)
    problems_seen: list[str] = []
    for index, (context, problems) in enumerate(made):
        for number, page in enumerate(context.pages):
            if page.is_closed():
                continue
            suffix = f"-{index}-{number}" if len(made) > 1 or len(context.pages) > 1 else ""
            try:
                page.screenshot(path=ARTIFACTS / f"{name}{suffix}-last.png", full_page=True)
            except Exception:  # a crashed page must not hide the test's own failure
                pass
        problems_seen += problems.errors
        context.close()
    assert not problems_seen, "\n".join(problems_seen)


@pytest.fixture
def page(new_context) -> Page:
    """A page in a fresh context, JavaScript on."""
    return new_context().new_page()


def screenshot(
    page: Page, name: str, *, docs: str | None = None, clip_to: str | None = None
) -> Path:
    """A full-page screenshot kept under test-artifacts/ (the journeys' named pictures).

    ``docs`` names the picture the README shows from docs/img/; it is rewritten only when
    REGISTRY_REFRESH_DOCS_IMG=1 (the pages changed), so a plain test run leaves the work tree
    clean. ``clip_to`` (a CSS selector) crops that picture to one part of a long page.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    if docs is None:
        return path
    picture = path
    if clip_to is not None:
        picture = ARTIFACTS / f"{docs}.png"
        top = page.locator(clip_to).evaluate(
            "el => el.getBoundingClientRect().top + window.scrollY"
        )
        width = page.viewport_size["width"]
        page.screenshot(
            path=picture, full_page=True, clip={"x": 0, "y": top, "width": width, "height": 1300}
        )
    if os.environ.get("REGISTRY_REFRESH_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(picture, DOCS_IMG / f"{docs}.png")
    return path


def login(
    page: Page, live_server, username: str, password: str = PASSWORD, *, scan: bool = True
) -> None:
    """Sign in through the login form, as a person does (django-axes sees a real request).

    ``scan=False`` where the page has no JavaScript (axe cannot run there).
    """
    page.goto(f"{live_server.url}/accounts/login/")
    if scan:
        assert_accessible(page)
    page.get_by_label(re.compile(r"^username", re.I)).fill(username)
    page.get_by_label(re.compile(r"^password", re.I)).fill(password)
    page.get_by_role("button", name=re.compile(r"log ?in|sign ?in", re.I)).click()
    page.wait_for_load_state()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


def logout(page: Page) -> None:
    """Sign out with the button of the navigation bar (Django's logout takes a POST)."""
    page.get_by_role("button", name=re.compile(r"log ?out|sign ?out", re.I)).click()
    page.wait_for_load_state()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def patient_table(page: Page):
    """The patient list's table (the list page also shows workflow panels above it)."""
    return page.get_by_role("table", name=re.compile(r"^Patients and the status"))


def open_patient(page: Page, study_id: str) -> None:
    """From the patient list, open a patient by its study ID in the table."""
    patient_table(page).get_by_role("rowheader", name=study_id).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(study_id)


def assert_accessible(page: Page, *, context: str | dict | None = None) -> None:
    """axe-core finds no serious or critical violation on the page as it is now.

    Needs JavaScript in the page's context (axe runs in the page); for a no-JavaScript
    rendering scan a JavaScript context whose page scripts are blocked (see
    ``scripts_blocked``).
    """
    results = Axe().run(page, context=context)
    blocking = [
        violation
        for violation in results.response["violations"]
        if violation.get("impact") in BLOCKING_IMPACTS
    ]
    if blocking:
        lines = [f"Accessibility violations on {page.url}:"]
        for violation in blocking:
            lines.append(f"- [{violation['impact']}] {violation['id']}: {violation['help']}")
            for node in violation["nodes"][:5]:
                lines.append(f"    {node['target']}: {node['html'][:160]}")
        pytest.fail("\n".join(lines))


def scripts_blocked(context: BrowserContext) -> BrowserContext:
    """Refuse the site's JavaScript files: the page renders as without JavaScript."""
    context.route(re.compile(r".*\.m?js(\?.*)?$"), lambda route: route.abort())
    return context


def keyboard_focus_order(page: Page, count: int) -> list[str]:
    """Accessible names of the first ``count`` elements reached with the Tab key."""
    page.locator("body").focus()
    names = []
    for _ in range(count):
        page.keyboard.press("Tab")
        names.append(
            page.evaluate(
                """() => {
                    const el = document.activeElement;
                    if (!el || el === document.body) return "";
                    const label = el.labels && el.labels.length ? el.labels[0].innerText : "";
                    return (el.getAttribute("aria-label") || label || el.innerText
                            || el.value || el.name || el.tagName).trim();
                }"""
            )
        )
    return names
