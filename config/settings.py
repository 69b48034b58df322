"""Settings of the stroke registry, all driven by environment variables.

Typed helpers read each variable and fail loudly on a malformed value, so a
misconfigured hospital server refuses to start instead of running half-set.
"""

import datetime as dt
import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.db_router import ANALYTICS_ALIAS, analytics_database

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_int_at_least(name: str, default: int, *, minimum: int) -> int:
    value = env_int(name, default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be a whole number >= {minimum}, got {value}")
    return value


def env_count_or(name: str, default: int, **words: object) -> object:
    """A whole number >= 0, or the value of one of the named ``words``; ``default``
    when the variable is unset or empty."""
    raw = (os.environ.get(name) or "").strip()
    if raw in words:
        return words[raw]
    value = env_int(name, default)
    if value < 0:
        choices = " or ".join(["a whole number >= 0", *words])
        raise ImproperlyConfigured(f"{name} must be {choices}, got {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choices(name: str, default: list[str], allowed: set[str]) -> list[str]:
    """A comma-separated list whose items must all be in ``allowed``."""
    values = env_list(name, default)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ImproperlyConfigured(
            f"{name} accepts only {', '.join(sorted(allowed))}; got {', '.join(unknown)}"
        )
    return values


DEBUG = env_bool("DEBUG", False)
# pytest sets REGISTRY_TESTING through the Makefile; importing pytest also counts.
TESTING = env_bool("REGISTRY_TESTING", False) or "pytest" in sys.modules
# A real server: HTTPS-only cookies, HSTS, redirects to HTTPS, compressed static files.
PRODUCTION = not DEBUG and not TESTING

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = "insecure-development-key-never-used-in-production"
    else:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG or TESTING else [])

INSTALLED_APPS = [
    "registry.admin_site.RegistryAdminConfig",  # django.contrib.admin, registry admin only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "bootstrap",
    "simple_history",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
    # Django REST framework itself is not an app here: its template tags (for HTML API
    # pages, not used) would load with every start-up.
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the documentation page's scripts and styles, served here
    "registry",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from gunicorn (after `collectstatic`); runserver serves them itself.
    *(["whitenoise.middleware.WhiteNoiseMiddleware"] if PRODUCTION else []),
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: a signed-in user's pages come in the language of their account.
    "registry.i18n.UserLanguageMiddleware",
    # Nothing the registry answers is kept by a browser or proxy cache (patient data).
    "registry.security.NoStoreMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Django's LoginRequiredMiddleware, saying so when the session has ended.
    "registry.sessions.SignInRequiredMiddleware",
    # After the login check: a signed-in user whose role needs 2FA verifies first.
    "registry.twofactor.TwoFactorMiddleware",
    # Last, as django-axes asks: turns a lockout into a 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "registry.context_processors.registry",
            ],
        },
    },
]

# SQLite in a git-ignored folder is the embedded default; DATABASE_URL switches
# to PostgreSQL (production) with no code change.
VAR_DIR = Path(env_str("REGISTRY_VAR_DIR", str(BASE_DIR / "var")))
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'registry.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
        # A kept connection is checked before a request uses it: after PostgreSQL restarts,
        # the first request of each worker reconnects instead of failing.
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", True),
    )
}
if "postgresql" in DATABASES["default"]["ENGINE"]:
    # No JIT: compiling the study tables' wide read can cost most of its time on a
    # small registry and saves nothing on a large one; set per connection, no extra query.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
# ANALYTICS_DATABASE_URL (optional): a read-only PostgreSQL replica the study tables read
# from, so they never compete with the nurses' writes (config/db_router.py).
_analytics_db = analytics_database(
    env_str("ANALYTICS_DATABASE_URL"), conn_max_age=env_int("DB_CONN_MAX_AGE", 0)
)
if _analytics_db is not None:
    DATABASES[ANALYTICS_ALIAS] = _analytics_db
DATABASE_ROUTERS = ["config.db_router.AnalyticsReplicaRouter"]
# PostgreSQL parallel workers for the study tables' one big read. 0 by default: the
# leader process formats every row anyway, so workers did not make that read faster, and
# they compete with the application when it shares the machine's cores. A number allows that many;
# "server" leaves PostgreSQL's max_parallel_workers_per_gather as it is.
ANALYTICS_PARALLEL_WORKERS = env_count_or("ANALYTICS_PARALLEL_WORKERS", 0, server=None)
# Connections that read the registry together for the study tables on PostgreSQL, each
# a range of patients, all on one exported snapshot (the same data). 2 by default: one
# server process formatting every row leaves the second core idle on a 2-core machine
# (docs/performance.md). 1 reads with the request's connection only. Registries
# under ANALYTICS_SPLIT_MIN_PATIENTS patients (by the span of their ids) read with one.
ANALYTICS_READ_CONNECTIONS = env_int_at_least("ANALYTICS_READ_CONNECTIONS", 2, minimum=1)
ANALYTICS_SPLIT_MIN_PATIENTS = env_int_at_least("ANALYTICS_SPLIT_MIN_PATIENTS", 50_000, minimum=0)

AUTH_USER_MODEL = "registry.User"
# AxesStandaloneBackend refuses a locked-out username/address before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "registry:home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Factories hash a password per user; the slow production hasher would dominate the suite.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("vi", "Tiếng Việt")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Ho_Chi_Minh")
USE_I18N = True
# Day-first dates, 24-hour times and the decimal comma in Vietnamese (config/formats/vi):
# Django's own Vietnamese formats define no input formats.
FORMAT_MODULE_PATH = ["config.formats"]
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# WhiteNoise serves static files from gunicorn. The hashed, compressed storage needs
# `collectstatic` first, so it is used on real servers only, not by tests or runserver.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Sessions end after SESSION_IDLE_MINUTES without a request (each request pushes the
# expiry on) and when the browser closes (the cookie has no expiry date).
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# A form refused by the CSRF check after the session ended goes to the sign-in page and
# back to the form, whose typed values the browser kept (registry/sessions.py).
CSRF_FAILURE_VIEW = "registry.sessions.csrf_failure"

# Uploads (the CSV/xlsx import): refused above this size; kept (mode 0600) until
# confirmed, cancelled or IMPORT_UPLOAD_MAX_AGE_HOURS old in IMPORT_UPLOAD_DIR (default:
# REGISTRY_VAR_DIR/import-uploads, mode 0700), which nothing serves.
IMPORT_MAX_UPLOAD_MB = env_int("IMPORT_MAX_UPLOAD_MB", 10)
IMPORT_UPLOAD_DIR = env_str("IMPORT_UPLOAD_DIR") or str(VAR_DIR / "import-uploads")
# Data freezes loaded as databases of their own for the analytics (registry.freezes): a
# cache, one SQLite file per freeze named by its SHA-256, that may be deleted at any time.
FREEZE_CACHE_DIR = env_str("FREEZE_CACHE_DIR") or str(VAR_DIR / "freeze-cache")
IMPORT_UPLOAD_MAX_AGE_HOURS = env_int_at_least("IMPORT_UPLOAD_MAX_AGE_HOURS", 24, minimum=1)
# Django's cache: the quality page's numbers, which the page computes and its figures
# reuse (analytics.quality.page). A browser asks the figures of any of the server's
# processes, so in production they share one cache, files in CACHE_DIR (default:
# REGISTRY_VAR_DIR/cache; per-site counts and medians, no patient's values). Tests and
# DEBUG keep Django's per-process memory cache unless CACHE_DIR is set.
CACHE_DIR = env_str("CACHE_DIR")
if PRODUCTION or CACHE_DIR:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": CACHE_DIR or str(VAR_DIR / "cache"),
        }
    }
# What an import reads at most: rows after the header (a web upload's; the command
# streams any number), and columns (the interchange's count plus IMPORT_EXTRA_COLUMNS,
# so that a few stray columns are named, not refused wholesale). Over either, the file
# is refused without being read further.
IMPORT_MAX_ROWS = env_int_at_least("IMPORT_MAX_ROWS", 200_000, minimum=1)
IMPORT_EXTRA_COLUMNS = env_int_at_least("IMPORT_EXTRA_COLUMNS", 10, minimum=0)
# The web preview's time budget (reading and checking the file), below gunicorn's
# --timeout; a larger file is imported with `manage.py import_registry` on the server.
IMPORT_PREVIEW_SECONDS = env_int_at_least("IMPORT_PREVIEW_SECONDS", 30, minimum=1)
# Memory a workbook (.xlsx) may take while it is read, in its own process (megabytes).
IMPORT_XLSX_MEMORY_MB = env_int_at_least("IMPORT_XLSX_MEMORY_MB", 1024, minimum=64)

# Days either side of the 3-month date in which the follow-up call is due.
FOLLOWUP_WINDOW_DAYS = env_int("FOLLOWUP_WINDOW_DAYS", 14)

# --- Login throttling (django-axes) ------------------------------------------------
# After AXES_FAILURE_LIMIT failed logins for one username, or from one address, further
# attempts are refused (HTTP 429) for AXES_COOLOFF_MINUTES; each lockout is logged.
# Off under tests unless a test turns it on: the test client's login() has no request.
AXES_ENABLED = env_bool("AXES_ENABLED", not TESTING)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = env_choices(
    "AXES_LOCKOUT_PARAMETERS", ["username", "ip_address"], {"username", "ip_address"}
)
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "registry.security.client_ip"
AXES_HTTP_RESPONSE_CODE = 429
# The security log names the account and address locked out (passwords are always masked).
AXES_SENSITIVE_PARAMETERS: list[str] = []

# --- Reverse proxy ---------------------------------------------------------------------
# Behind nginx (docs/deployment.md) the proxy tells Django the request came over HTTPS and
# from which address. Only trust these headers when a proxy you run sets them.
BEHIND_PROXY = env_bool("BEHIND_PROXY", PRODUCTION)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Two-factor login (TOTP, django-otp) -------------------------------------------------
# Roles (registry.choices.Role codes) whose users must set up and use an authenticator
# app. Anyone who has set up a device is asked for a code too, whatever the role.
OTP_REQUIRED_ROLES = env_choices(
    "OTP_REQUIRED_ROLES", [], {"data_entry", "investigator", "monitor", "site_admin", "admin"}
)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Stroke registry")

# --- HTTP hardening --------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy: everything from this server, no inline script or style, no
# framing. Bootstrap's CSS draws some icons from data: URIs, hence img-src data:.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- REST API (registry/api/, docs/api.md) -----------------------------------------------
# Tokens (Authorization: Bearer) for programs; the signed-in session only for the schema's
# documentation page, with CSRF on every write. JSON only: no HTML API pages.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.authentication.ApiTokenAuthentication",
        "registry.api.authentication.VerifiedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["registry.api.permissions.UsesApi"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stroke registry API",
    "DESCRIPTION": "Sites, patients, case-report form sections, the data dictionary, "
    "the study tables and the quality indicators. Send the header `Authorization: Bearer` "
    "and a token created on your profile page.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # The documentation page's assets from this server (no internet at run time).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# The longest a token may last, in days (its owner sets its expiry up to this).
API_TOKEN_MAX_DAYS = env_int_at_least("API_TOKEN_MAX_DAYS", 365, minimum=1)

# Pre-specified covariates of the multivariable logistic regression of poor
# outcome (keys of the derived exposures); investigators may choose others.
REGRESSION_DEFAULT_COVARIATES = env_list(
    "REGRESSION_DEFAULT_COVARIATES",
    ["age_70_plus", "posterior_circulation", "onset_over_6h", "procedure_over_60min"],
)

# Security events (lockouts, refused 2FA codes, suspicious requests) go to the console,
# which gunicorn/systemd keep in the journal.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "registry": {"handlers": ["console"], "level": "INFO"},
        "axes": {"handlers": ["console"], "level": "WARNING"},
        "django.security": {"handlers": ["console"], "level": "WARNING"},
        # Server errors with their traceback, for the admin (the user sees 500.html only).
        "django.request": {"handlers": ["console"], "level": "ERROR"},
    },
}
SIMPLE_HISTORY_REVERT_DISABLED = True
