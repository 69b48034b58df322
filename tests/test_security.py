"""Hardened deployment: settings pass `check --deploy`, login throttling, sessions,
the Content-Security-Policy, error pages without tracebacks, and two-factor login."""

import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, SuspiciousOperation, ValidationError
from django.http import HttpResponse
from django.template import loader
from django.test import Client, RequestFactory, override_settings
from django.urls import path, reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from config import urls as project_urls
from registry.choices import Role
from registry.security import client_ip

from .factories import UserFactory

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"


def production_env(tmp_path) -> dict[str, str]:
    """The environment of a real server: DEBUG off, not under tests."""
    env = {k: v for k, v in os.environ.items() if k not in {"REGISTRY_TESTING", "DATABASE_URL"}}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="registry.example",
        DEBUG="0",
        REGISTRY_VAR_DIR=str(tmp_path),
    )
    return env


# --- deployment checks -------------------------------------------------------------------


def test_check_deploy_reports_no_warning_with_debug_off(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_serve_hashed_static_files_over_https_only(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.STORAGES['staticfiles']['BACKEND'], s.SECURE_SSL_REDIRECT, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.X_FRAME_OPTIONS, s.SECURE_PROXY_SSL_HEADER, s.AXES_ENABLED, "
        "'whitenoise.middleware.WhiteNoiseMiddleware' in s.MIDDLEWARE)"
    )
    env = production_env(tmp_path) | {"DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1)[0].endswith("CompressedManifestStaticFilesStorage")
    assert (
        "True True True 31536000 DENY ('HTTP_X_FORWARDED_PROTO', 'https') True True"
        in result.stdout
    )


def test_production_processes_share_one_cache_in_the_var_directory(tmp_path):
    # The quality page's figures, served by any worker, reuse the numbers its page put
    # there: a value one process stores, another process reads.
    code = (
        "import sys, django; django.setup(); from django.core.cache import cache; "
        "from django.conf import settings as s; print(s.CACHES['default']['LOCATION']); "
        "cache.set('k', 'v') if sys.argv[1] == 'set' else print(cache.get('k'))"
    )
    env = production_env(tmp_path) | {"DJANGO_SETTINGS_MODULE": "config.settings"}
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code, step],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        for step in ("set", "get")
    ]
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    assert outputs[1].stdout.split() == [str(tmp_path / "cache"), "v"]
    assert (tmp_path / "cache").stat().st_mode & 0o077 == 0


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True
    )
    assert result.returncode != 0
    assert b"SECRET_KEY must be set" in result.stderr


def test_a_malformed_role_in_otp_required_roles_stops_the_server(tmp_path):
    env = production_env(tmp_path) | {"OTP_REQUIRED_ROLES": "nurse"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True
    )
    assert result.returncode != 0
    assert b"OTP_REQUIRED_ROLES accepts only" in result.stderr


# --- headers and templates -----------------------------------------------------------------


@pytest.mark.django_db
def test_every_response_carries_a_csp_without_inline_script_or_style(client):
    response = client.get(reverse("login"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>"  # inline script
    r"|<style\b"  # style element
    r"|\sstyle=\""  # style attribute
    r"|\son[a-z]+=\"",  # event handler attribute
    re.IGNORECASE,
)


def template_files():
    folders = [BASE_DIR / "templates", *BASE_DIR.glob("*/templates")]
    return sorted({f for folder in folders for f in folder.rglob("*.html")})


def test_no_template_of_the_project_holds_inline_script_style_or_handlers():
    """The CSP would block them in the browser: keep scripts and styles in static files."""
    offenders = {}
    for template in template_files():
        found = INLINE.findall(template.read_text(encoding="utf-8"))
        if found:
            offenders[str(template.relative_to(BASE_DIR))] = found
    assert offenders == {}


# --- login throttling and sessions --------------------------------------------------------


def post_login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


@pytest.mark.django_db
@override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=3)
def test_repeated_failed_logins_lock_the_account_and_the_lockout_is_logged(caplog):
    UserFactory(username="nurse_x", password=PASSWORD)
    client = Client()
    with caplog.at_level(logging.WARNING, logger="axes"):
        for _ in range(2):
            assert post_login(client, "nurse_x", "wrong-password").status_code == 200
        assert post_login(client, "nurse_x", "wrong-password").status_code == 429
        # Even the right password is refused while the lockout lasts.
        response = post_login(Client(), "nurse_x", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in Client().session
    lockouts = [r.getMessage() for r in caplog.records if "Locking out" in r.getMessage()]
    assert lockouts and "nurse_x" in lockouts[0]


@pytest.mark.django_db
@override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=3)
def test_a_successful_login_under_the_limit_resets_the_failure_count():
    UserFactory(username="nurse_y", password=PASSWORD)
    client = Client()
    post_login(client, "nurse_y", "wrong-password")
    post_login(client, "nurse_y", "wrong-password")
    assert post_login(client, "nurse_y", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    post_login(client, "nurse_y", "wrong-password")
    post_login(client, "nurse_y", "wrong-password")
    assert post_login(client, "nurse_y", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_session_cookie_dies_with_the_browser_and_the_session_after_idle_minutes(client):
    UserFactory(username="nurse_z", password=PASSWORD)
    response = post_login(client, "nurse_z", PASSWORD)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["expires"] == "" and cookie["max-age"] == ""
    assert cookie["httponly"]
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST  # each request pushes the expiry on


@pytest.mark.django_db
def test_an_idle_session_past_its_expiry_sends_the_user_back_to_login(client, nurse):
    client.force_login(nurse)
    assert opens(client, reverse("registry:home"))
    Session.objects.update(expire_date=timezone.now() - timezone.timedelta(seconds=1))
    response = client.get(reverse("registry:home"))
    assert response.status_code == 302
    # The sign-in page that says the session ended (registry/sessions.py).
    assert response["Location"].startswith(reverse("session_expired"))


@pytest.mark.parametrize("weak", ["password12", "1234567890123", "stroke", "nurse_a2024"])
@pytest.mark.django_db
def test_weak_passwords_are_refused(weak):
    user = UserFactory.build(username="nurse_a2024")
    with pytest.raises(ValidationError):
        validate_password(weak, user)


@pytest.mark.django_db
def test_a_long_unusual_passphrase_is_accepted():
    validate_password("thrombus-basilar-Otter-42")


def test_throttling_counts_the_proxy_reported_address_only_behind_the_proxy():
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="10.1.2.3")
    with override_settings(BEHIND_PROXY=True):
        assert client_ip(request) == "10.1.2.3"
    with override_settings(BEHIND_PROXY=False):
        assert client_ip(request) == "127.0.0.1"


# --- error pages ------------------------------------------------------------------------------


def boom(request):
    raise RuntimeError("secret detail of patient P-0042")


def forbidden(request):
    raise PermissionDenied("site B only")


def suspicious(request):
    raise SuspiciousOperation("tampered")


def fine(request):
    return HttpResponse("ok")


urlpatterns = [
    path("boom/", boom),
    path("forbidden/", forbidden),
    path("suspicious/", suspicious),
    path("fine/", fine),
    path("accounts/login/", fine, name="login"),
    # The error pages use the site's layout, whose navigation names the project's pages.
    *project_urls.urlpatterns,
]


@pytest.fixture
def signed_in(nurse):
    client = Client(raise_request_exception=False)
    client.force_login(nurse)
    return client


@pytest.mark.parametrize(
    ("url", "status", "heading"),
    [
        ("/boom/", 500, "Server error"),
        ("/forbidden/", 403, "Access denied"),
        ("/suspicious/", 400, "Bad request"),
        ("/no-such-page/", 404, "Not found"),
    ],
)
@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_error_pages_are_the_registrys_own_without_trace_or_data(signed_in, url, status, heading):
    response = signed_in.get(url)
    assert response.status_code == status
    body = response.content.decode()
    assert f"<h1>{heading}</h1>" in body
    for leak in ("Traceback", "P-0042", "site B only", "tampered", "RuntimeError", "nurse_a"):
        assert leak not in body


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_a_server_error_is_logged_with_its_traceback_for_the_admin(signed_in, caplog):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        assert signed_in.get("/boom/").status_code == 500
    record = next(r for r in caplog.records if r.name == "django.request")
    assert record.exc_info and "P-0042" in str(record.exc_info[1])


@pytest.mark.parametrize("name", ["400.html", "403.html", "404.html", "500.html"])
def test_error_templates_need_no_context(name):
    html = loader.get_template(name).render({})
    assert "<h1>" in html and "{{" not in html


# --- two-factor login ------------------------------------------------------------------------


def opens(client, url) -> bool:
    """The page answers (200, or a redirect within the registry) rather than a gate."""
    response = client.get(url)
    if response.status_code == 200:
        return True
    gates = (reverse("login"), reverse("two_factor_setup"), reverse("two_factor_verify"))
    return response.status_code == 302 and not response["Location"].startswith(gates)


def current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


@pytest.mark.django_db
@override_settings(OTP_REQUIRED_ROLES=["data_entry"])
def test_a_nurse_whose_role_requires_2fa_sets_up_a_device_before_anything_else(client, nurse):
    client.force_login(nurse)
    home = reverse("registry:home")
    response = client.get(home)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("two_factor_setup"))

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"<svg" in page.content and b"<script" not in page.content
    device = TOTPDevice.objects.get(user=nurse, confirmed=False)

    refused = client.post(reverse("two_factor_setup"), {"token": "000000", "next": home})
    assert refused.status_code == 200 and b"not valid" in refused.content
    device.refresh_from_db()
    device.throttling_failure_count = 0  # the wrong code above throttles the next try
    device.throttling_failure_timestamp = None
    device.save()

    done = client.post(reverse("two_factor_setup"), {"token": current_code(device), "next": home})
    assert done.status_code == 302 and done["Location"] == home
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert opens(client, home)


@pytest.mark.django_db
@override_settings(OTP_REQUIRED_ROLES=["data_entry"])
def test_a_nurse_with_a_device_must_type_the_current_code_at_each_sign_in(client, nurse):
    device = TOTPDevice.objects.create(user=nurse, name="phone", confirmed=True)
    client.force_login(nurse)
    home = reverse("registry:home")
    response = client.get(home)
    assert response["Location"].startswith(reverse("two_factor_verify"))
    # Another page is refused as well, whatever the URL.
    assert client.get(reverse("admin:index"))["Location"].startswith(reverse("two_factor_verify"))

    wrong = client.post(reverse("two_factor_verify"), {"token": "12345x", "next": home})
    assert wrong.status_code == 200 and b"6 digits" in wrong.content
    assert not opens(client, home)

    ok = client.post(
        reverse("two_factor_verify"), {"token": current_code(device), "next": "https://evil.test/"}
    )
    assert ok.status_code == 302 and ok["Location"] == home  # no open redirect
    assert opens(client, home)


@pytest.mark.django_db
@override_settings(OTP_REQUIRED_ROLES=["data_entry"])
def test_roles_not_listed_sign_in_with_a_password_alone(client, investigator):
    client.force_login(investigator)
    assert opens(client, reverse("registry:home"))


@pytest.mark.django_db
@override_settings(OTP_REQUIRED_ROLES=[])
def test_a_user_who_chose_2fa_is_held_to_it_even_if_no_role_requires_it(client, monitor):
    TOTPDevice.objects.create(user=monitor, name="phone", confirmed=True)
    client.force_login(monitor)
    assert client.get(reverse("registry:home"))["Location"].startswith(reverse("two_factor_verify"))


@pytest.mark.django_db
@override_settings(OTP_REQUIRED_ROLES=["admin"])
def test_a_superuser_counts_as_registry_admin_for_2fa(client):
    boss = UserFactory(username="boss", role=Role.DATA_ENTRY, is_superuser=True, is_staff=True)
    client.force_login(boss)
    assert client.get(reverse("registry:home"))["Location"].startswith(reverse("two_factor_setup"))


@pytest.mark.django_db
def test_two_factor_pages_need_a_signed_in_user(client):
    response = client.get(reverse("two_factor_setup"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
